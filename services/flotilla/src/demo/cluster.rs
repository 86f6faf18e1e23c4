//! The cluster the demo plays, since none runs on this machine: what Argo CD, an Argo CD
//! PostSync hook, Argo Rollouts and users would do, in answer to the fleet's events.
//!
//! - `env.requested`: "Argo CD" runs ping at each env's version (examples/ping's router,
//!   in-process, on its own loopback port), reachable through the demo's ingress at
//!   `FLOTILLA_ENV_URL` (`http://127.0.0.1:<port>/envs/{env}`); then "the PostSync hook" reports
//!   each app to sync-watcher's `POST /report/{env}/{app}`.
//! - `env.teardown.requested`: "Argo CD" prunes the env: its ping stops.
//! - `release.requested`: "Argo Rollouts" starts the canary at the release's version on the
//!   canary's address (the one Prometheus scrapes), and "users" send it 20 requests a second.
//! - `canary.promoted` / `canary.aborted`: production runs the new version / the canary stops.
//! - `release.rolled_back`: production runs the restored version.
//!
//! How ping behaves at a version is the demo's to say (the good change answers
//! `{"value":"pong"}`, the bad one fails a share of requests): see [`Behaviours`]. What
//! runs (pings, the ingress, the users) is in [`super::pods`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::demo::pods::{
    self, Behaviour, Behaviours, Ping, Routes, Served, TRAFFIC_PER_SECOND, Traffic,
};
use crate::demo::seen::Seen;

/// The cluster the demo plays.
pub struct Cluster {
    http: reqwest::Client,
    /// sync-watcher's report route: `<base>/report`.
    reports: String,
    ingress: Served,
    routes: Routes,
    /// By env id, `production` and `canary`.
    pings: HashMap<String, Ping>,
    /// Where the canary answers, scraped by Prometheus.
    canary_addr: SocketAddr,
    behaviours: Behaviours,
    traffic: Option<Traffic>,
}

impl Cluster {
    /// Serves the ingress and runs production at `version`.
    pub async fn start(
        canary_addr: SocketAddr,
        behaviours: Behaviours,
        production: &str,
    ) -> Result<Cluster, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("the HTTP client: {e}"))?;
        let routes = Routes::default();
        let ingress = pods::ingress(routes.clone(), http.clone()).await?;
        let mut cluster = Cluster {
            http,
            reports: String::new(),
            ingress,
            routes,
            pings: HashMap::new(),
            canary_addr,
            behaviours,
            traffic: None,
        };
        cluster.run("production", production, None).await?;
        Ok(cluster)
    }

    /// Where PostSync reports go: the fleet's HTTP server.
    pub fn report_to(&mut self, fleet: SocketAddr) {
        self.reports = format!("http://{fleet}/report");
    }

    /// FLOTILLA_ENV_URL: where each env answers, through the ingress.
    pub fn env_url(&self) -> String {
        format!("http://{}/envs/{{env}}", self.ingress.addr)
    }

    /// The URL of `path` in env `env`, through the ingress.
    pub fn url(&self, env: &str, path: &str) -> String {
        format!("http://{}/envs/{env}/{path}", self.ingress.addr)
    }

    /// What the cluster does about `seen`: one line per thing done, and who did it.
    pub async fn observe(&mut self, seen: &Seen) -> Vec<(&'static str, String)> {
        let result = match seen.event_type.as_str() {
            "env.requested" => self.sync(seen).await,
            "env.teardown.requested" => Ok(self.prune(&seen.key).await),
            "release.requested" => self.start_canary(seen).await,
            "canary.promoted" => self.promote(seen).await,
            "canary.aborted" => Ok(self.abort().await),
            "release.rolled_back" => self.roll_back(seen).await,
            _ => Ok(Vec::new()),
        };
        result.unwrap_or_else(|why| vec![("demo", format!("could not play the cluster: {why}"))])
    }

    /// Argo CD syncs the env, then its PostSync hook reports every app.
    async fn sync(&mut self, seen: &Seen) -> Result<Vec<(&'static str, String)>, String> {
        let env = seen.key.clone();
        let mut lines = Vec::new();
        let apps = seen.data["apps"].as_array().cloned().unwrap_or_default();
        for app in &apps {
            let name = app["name"].as_str().unwrap_or_default();
            let version = app["version"].as_str().unwrap_or_default();
            if name == "ping" {
                let behaviour = self.run(&env, version, None).await?;
                lines.push((
                    "argo cd",
                    format!(
                        "synced: ping {version} {} at {}",
                        behaviour.describe(),
                        self.url(&env, "ping")
                    ),
                ));
            }
            let answer = self.report(&env, name).await;
            lines.push(("hook", format!("{name} succeeded: {answer}")));
        }
        Ok(lines)
    }

    /// `POST /report/{env}/{app}` as the hook does, retried while sync-watcher cannot answer.
    async fn report(&self, env: &str, app: &str) -> String {
        let url = format!("{}/{env}/{app}", self.reports);
        let body = serde_json::json!({"status": "succeeded", "message": "the demo's ping answers"});
        let mut last = String::new();
        for _ in 0..10 {
            match self.http.post(&url).json(&body).send().await {
                Ok(answer) if !answer.status().is_server_error() => {
                    return format!("POST /report/{env}/{app} answered {}", answer.status());
                }
                Ok(answer) => last = format!("answered {}", answer.status()),
                Err(e) => last = e.without_url().to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        format!("POST /report/{env}/{app} failed: {last}")
    }

    async fn prune(&mut self, env: &str) -> Vec<(&'static str, String)> {
        match self.stop_ping(env).await {
            Some(version) => vec![("argo cd", format!("pruned: ping {version} stopped"))],
            None => Vec::new(),
        }
    }

    /// Argo Rollouts starts the canary; users start sending it requests.
    async fn start_canary(&mut self, seen: &Seen) -> Result<Vec<(&'static str, String)>, String> {
        if seen.text("app") != "ping" {
            return Ok(Vec::new());
        }
        let version = seen.text("version").to_owned();
        self.stop_traffic().await;
        self.stop_ping("canary").await;
        let behaviour = self.run("canary", &version, Some(self.canary_addr)).await?;
        self.traffic = Some(Traffic::start(self.http.clone(), self.canary_addr));
        Ok(vec![
            (
                "rollouts",
                format!(
                    "canary: ping {version} {} at http://{}",
                    behaviour.describe(),
                    self.canary_addr
                ),
            ),
            (
                "users",
                format!("{TRAFFIC_PER_SECOND} requests a second to the canary"),
            ),
        ])
    }

    /// The canary's version becomes production's; the canary stops.
    async fn promote(&mut self, seen: &Seen) -> Result<Vec<(&'static str, String)>, String> {
        let traffic = self.stop_traffic().await;
        let version = seen.text("version").to_owned();
        self.stop_ping("canary").await;
        self.stop_ping("production").await;
        self.run("production", &version, None).await?;
        Ok(vec![(
            "rollouts",
            format!("promoted: production runs ping {version}{traffic}"),
        )])
    }

    async fn abort(&mut self) -> Vec<(&'static str, String)> {
        let traffic = self.stop_traffic().await;
        self.stop_ping("canary").await;
        let production = self
            .pings
            .get("production")
            .map(|p| p.version.clone())
            .unwrap_or_default();
        vec![(
            "rollouts",
            format!("aborted: canary stopped{traffic}; production still runs ping {production}"),
        )]
    }

    async fn roll_back(&mut self, seen: &Seen) -> Result<Vec<(&'static str, String)>, String> {
        let restored = seen.text("restoredVersion").to_owned();
        let runs = self.pings.get("production").map(|p| p.version.as_str());
        if runs == Some(restored.as_str()) {
            return Ok(vec![(
                "argo cd",
                format!("synced production: it runs ping {restored} already"),
            )]);
        }
        self.stop_ping("production").await;
        self.run("production", &restored, None).await?;
        Ok(vec![(
            "argo cd",
            format!("synced production: ping {restored}"),
        )])
    }

    /// Runs ping as `name` at `version`, on `addr` or a free port; an env already running that
    /// version is left as it is.
    async fn run(
        &mut self,
        name: &str,
        version: &str,
        addr: Option<SocketAddr>,
    ) -> Result<Behaviour, String> {
        let behaviour = self.behaviours.of(version);
        if self.pings.get(name).is_some_and(|p| p.version == version) {
            return Ok(behaviour);
        }
        self.stop_ping(name).await;
        let addr = addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let ping = Ping::start(version, behaviour, addr).await?;
        self.routes
            .write()
            .map_err(|_| "the ingress routes are poisoned")?
            .insert(name.to_owned(), ping.served.addr);
        self.pings.insert(name.to_owned(), ping);
        Ok(behaviour)
    }

    /// Stops ping `name`; what it ran.
    async fn stop_ping(&mut self, name: &str) -> Option<String> {
        let ping = self.pings.remove(name)?;
        if let Ok(mut routes) = self.routes.write() {
            routes.remove(name);
        }
        ping.served.stop().await;
        Some(ping.version)
    }

    /// Stops the users; `, after N requests (M answered 5xx)` for the line that says so.
    async fn stop_traffic(&mut self) -> String {
        let Some(traffic) = self.traffic.take() else {
            return String::new();
        };
        let (sent, failed) = traffic.stop().await;
        format!(", after {sent} users' requests ({failed} answered 5xx)")
    }

    /// Stops every ping, the users and the ingress.
    pub async fn stop(mut self) {
        self.stop_traffic().await;
        let names: Vec<String> = self.pings.keys().cloned().collect();
        for name in names {
            self.stop_ping(&name).await;
        }
        self.ingress.stop().await;
    }
}
