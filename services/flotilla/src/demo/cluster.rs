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
//! `{"value":"pong"}`, the bad one fails a share of requests): see [`Behaviours`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ping::Answer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::demo::seen::Seen;

/// Users' requests to a canary, a second.
const TRAFFIC_PER_SECOND: u64 = 20;

/// How ping answers at a version.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    pub answer: Answer,
    pub error_rate: f64,
}

impl Behaviour {
    pub const PRODUCTION: Behaviour = Behaviour {
        answer: Answer::Text,
        error_rate: 0.0,
    };

    fn describe(self) -> String {
        let answer = match self.answer {
            Answer::Text => "pong",
            Answer::Json => r#"{"value":"pong"}"#,
        };
        if self.error_rate > 0.0 {
            format!(
                "answers {answer}, {:.0}% of requests a 500",
                self.error_rate * 100.0
            )
        } else {
            format!("answers {answer}")
        }
    }
}

/// ping's behaviour per commit: a version `v<time>-<sha7>` behaves as its commit says; any
/// other (production's first version) answers `pong`.
#[derive(Debug, Default)]
pub struct Behaviours(HashMap<String, Behaviour>);

impl Behaviours {
    pub fn with(mut self, sha: &str, behaviour: Behaviour) -> Behaviours {
        self.0.insert(sha.chars().take(7).collect(), behaviour);
        self
    }

    fn of(&self, version: &str) -> Behaviour {
        let sha7 = version.rsplit('-').next().unwrap_or_default();
        self.0.get(sha7).copied().unwrap_or(Behaviour::PRODUCTION)
    }
}

/// Which address each env's ping answers on, for the ingress.
type Routes = Arc<RwLock<HashMap<String, SocketAddr>>>;

/// One running ping.
struct Ping {
    version: String,
    stop: CancellationToken,
    served: JoinHandle<()>,
}

/// The users sending requests to a canary.
struct Traffic {
    stop: CancellationToken,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    running: JoinHandle<()>,
}

/// The cluster the demo plays.
pub struct Cluster {
    http: reqwest::Client,
    /// sync-watcher's report route: `<base>/report`.
    reports: String,
    ingress: SocketAddr,
    routes: Routes,
    ingress_stop: CancellationToken,
    ingress_served: JoinHandle<()>,
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("the ingress: {e}"))?;
        let ingress = listener
            .local_addr()
            .map_err(|e| format!("the ingress: {e}"))?;
        let app = Router::new()
            .route("/envs/{env}/{*path}", get(forward))
            .with_state((routes.clone(), http.clone()));
        let ingress_stop = CancellationToken::new();
        let stop = ingress_stop.clone();
        let ingress_served = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        let mut cluster = Cluster {
            http,
            reports: String::new(),
            ingress,
            routes,
            ingress_stop,
            ingress_served,
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
        format!("http://{}/envs/{{env}}", self.ingress)
    }

    /// The URL of `path` in env `env`, through the ingress.
    pub fn url(&self, env: &str, path: &str) -> String {
        format!("http://{}/envs/{env}/{path}", self.ingress)
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
            Some(ping) => vec![("argo cd", format!("pruned: ping {} stopped", ping.version))],
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
        let listener = bind(addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))).await?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let settings = ping::Settings {
            answer: behaviour.answer,
            error_rate: behaviour.error_rate,
            extra_latency: Duration::ZERO,
            app_version: Some(version.to_owned()),
        };
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let served = tokio::spawn(async move {
            let _ = axum::serve(listener, ping::router(settings))
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
        });
        self.routes
            .write()
            .map_err(|_| "the ingress routes are poisoned")?
            .insert(name.to_owned(), addr);
        let ping = Ping {
            version: version.to_owned(),
            stop,
            served,
        };
        self.pings.insert(name.to_owned(), ping);
        Ok(behaviour)
    }

    async fn stop_ping(&mut self, name: &str) -> Option<Ping> {
        let mut ping = self.pings.remove(name)?;
        if let Ok(mut routes) = self.routes.write() {
            routes.remove(name);
        }
        ping.stop.cancel();
        // Bounded: a client holding a connection open must not hold the demo up.
        if tokio::time::timeout(Duration::from_secs(2), &mut ping.served)
            .await
            .is_err()
        {
            ping.served.abort();
        }
        Some(ping)
    }

    /// Stops the users; `, after N requests (M answered 5xx)` for the line that says so.
    async fn stop_traffic(&mut self) -> String {
        let Some(traffic) = self.traffic.take() else {
            return String::new();
        };
        traffic.stop.cancel();
        let _ = traffic.running.await;
        format!(
            ", after {} users' requests ({} answered 5xx)",
            traffic.sent.load(Ordering::Relaxed),
            traffic.failed.load(Ordering::Relaxed)
        )
    }

    /// Stops every ping, the users and the ingress.
    pub async fn stop(mut self) {
        self.stop_traffic().await;
        let names: Vec<String> = self.pings.keys().cloned().collect();
        for name in names {
            self.stop_ping(&name).await;
        }
        self.ingress_stop.cancel();
        if tokio::time::timeout(Duration::from_secs(2), &mut self.ingress_served)
            .await
            .is_err()
        {
            self.ingress_served.abort();
        }
    }
}

impl Traffic {
    fn start(http: reqwest::Client, canary: SocketAddr) -> Traffic {
        let stop = CancellationToken::new();
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (stopped, counted, errors) = (stop.clone(), sent.clone(), failed.clone());
        let running = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(1000 / TRAFFIC_PER_SECOND));
            let url = format!("http://{canary}/ping");
            loop {
                tokio::select! {
                    () = stopped.cancelled() => return,
                    _ = every.tick() => {}
                }
                let answer = http.get(&url).send().await;
                counted.fetch_add(1, Ordering::Relaxed);
                if !answer.is_ok_and(|a| a.status().is_success()) {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Traffic {
            stop,
            sent,
            failed,
            running,
        }
    }
}

/// Binds `addr`, retrying a little: the canary's address is freed by the last canary a moment
/// before the next one takes it.
async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    let mut last = None;
    for _ in 0..20 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "listen on {addr}: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// The ingress: `GET /envs/{env}/{path}` answered by that env's ping.
async fn forward(
    State((routes, http)): State<(Routes, reqwest::Client)>,
    Path((env, path)): Path<(String, String)>,
) -> Response {
    let addr = routes.read().ok().and_then(|r| r.get(&env).copied());
    let Some(addr) = addr else {
        return (StatusCode::NOT_FOUND, format!("no env {env} runs here\n")).into_response();
    };
    match http.get(format!("http://{addr}/{path}")).send().await {
        Ok(answer) => {
            let status =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = answer
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/plain")
                .to_owned();
            let body = answer.bytes().await.unwrap_or_default();
            (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{env}: {e}\n")).into_response(),
    }
}
