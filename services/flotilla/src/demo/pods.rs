//! What the played cluster runs: pings (examples/ping's router, in-process, each on its own
//! loopback port, as a pod would be), the ingress in front of the envs' pings, and the users
//! sending a canary requests.

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

/// Users' requests to a canary, a second.
pub const TRAFFIC_PER_SECOND: u64 = 20;

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

    pub fn describe(self) -> String {
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

    pub fn of(&self, version: &str) -> Behaviour {
        let sha7 = version.rsplit('-').next().unwrap_or_default();
        self.0.get(sha7).copied().unwrap_or(Behaviour::PRODUCTION)
    }
}

/// An HTTP server of the demo's, stopped gracefully (then cut off after 2 s: a client holding a
/// connection open must not hold the demo up).
pub struct Served {
    pub addr: SocketAddr,
    stop: CancellationToken,
    serving: JoinHandle<()>,
}

impl Served {
    async fn start(addr: SocketAddr, app: Router) -> Result<Served, String> {
        let listener = bind(addr).await?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let serving = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
        });
        Ok(Served {
            addr,
            stop,
            serving,
        })
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(2), &mut self.serving)
            .await
            .is_err()
        {
            self.serving.abort();
        }
    }
}

/// One running ping.
pub struct Ping {
    pub version: String,
    pub served: Served,
}

impl Ping {
    /// ping at `version` as `behaviour` says, on `addr` (port 0: a free one); its metrics carry
    /// the version.
    pub async fn start(
        version: &str,
        behaviour: Behaviour,
        addr: SocketAddr,
    ) -> Result<Ping, String> {
        let settings = ping::Settings {
            answer: behaviour.answer,
            error_rate: behaviour.error_rate,
            extra_latency: Duration::ZERO,
            app_version: Some(version.to_owned()),
        };
        Ok(Ping {
            version: version.to_owned(),
            served: Served::start(addr, ping::router(settings)).await?,
        })
    }
}

/// Which address each env's ping answers on.
pub type Routes = Arc<RwLock<HashMap<String, SocketAddr>>>;

/// The ingress: `GET /envs/{env}/{path}` answered by that env's ping.
pub async fn ingress(routes: Routes, http: reqwest::Client) -> Result<Served, String> {
    let app = Router::new()
        .route("/envs/{env}/{*path}", get(forward))
        .with_state((routes, http));
    Served::start(SocketAddr::from(([127, 0, 0, 1], 0)), app)
        .await
        .map_err(|e| format!("the ingress: {e}"))
}

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

/// The users sending requests to a canary.
pub struct Traffic {
    stop: CancellationToken,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    running: JoinHandle<()>,
}

impl Traffic {
    pub fn start(http: reqwest::Client, canary: SocketAddr) -> Traffic {
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

    /// Stops the users: how many requests they sent, and how many failed.
    pub async fn stop(self) -> (u64, u64) {
        self.stop.cancel();
        let _ = self.running.await;
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_behaves_as_its_commit_says_and_any_other_answers_pong() {
        let bad = Behaviour {
            answer: Answer::Json,
            error_rate: 0.25,
        };
        let behaviours = Behaviours::default().with("2222222bbbb", bad);
        assert_eq!(behaviours.of("v20260101120000-2222222"), bad);
        assert_eq!(
            behaviours.of("v20240101000000-0000000"),
            Behaviour::PRODUCTION
        );
        assert_eq!(
            bad.describe(),
            r#"answers {"value":"pong"}, 25% of requests a 500"#
        );
    }
}
