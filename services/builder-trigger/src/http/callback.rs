//! `POST /callbacks/builds/{id}`: where CI runs report their result.
//!
//! A run waits for its callback in the replica that started it, but a CI system calls back
//! whichever replica the Service sends it to. A replica that has no such run hands the callback
//! to the others over core NATS (`flotilla-control.builder-trigger.callback.<id>`); the one
//! waiting checks the token and answers, the others stay silent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use flotilla_bus::Tasks;
use flotilla_proto::v1::Image;
use futures::StreamExt;
use serde::Deserialize;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::sync::{OnceCell, oneshot};

use crate::run::{self, Outcome, Status};

/// What a CI run reports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallbackBody {
    /// `succeeded` or `failed`.
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub log_url: String,
    #[serde(default)]
    pub images: Vec<CallbackImage>,
}

/// An image the CI run built.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallbackImage {
    pub name: String,
    #[serde(rename = "ref")]
    pub reference: String,
    #[serde(default)]
    pub digest: String,
}

impl CallbackBody {
    pub fn outcome(self) -> Outcome {
        let status = if self.status == "succeeded" {
            Status::Succeeded
        } else {
            let first = self.message.lines().next().unwrap_or("");
            Status::Failed(if first.is_empty() {
                "the CI run reported failure".to_owned()
            } else {
                format!("the CI run reported failure: {first}")
            })
        };
        Outcome {
            status,
            excerpt: run::last_lines(&self.message),
            log_url: self.log_url,
            images: self
                .images
                .into_iter()
                .map(|i| Image {
                    name: i.name,
                    r#ref: i.reference,
                    digest: i.digest,
                })
                .collect(),
        }
    }
}

/// Where replicas hand each other callbacks; the run id follows.
pub const FORWARD_PREFIX: &str = "flotilla-control.builder-trigger.callback";

/// How long a forwarded callback waits for the replica that has the run.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs waiting for their callback. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Callbacks {
    waiting: Arc<Mutex<HashMap<String, Entry>>>,
    secret: Option<Arc<str>>,
    /// The NATS connection callbacks are forwarded over, once attached.
    bus: Arc<OnceCell<async_nats::Client>>,
}

/// What the replica holding a run answered a forwarded callback.
#[derive(Debug, Serialize, Deserialize)]
struct Forwarded {
    status: u16,
    text: String,
}

/// A callback's fate in one replica.
enum Local {
    /// No run of this replica waits under the id.
    NotHere,
    Answer(StatusCode, String),
}

#[derive(Debug)]
struct Entry {
    token: String,
    result: oneshot::Sender<CallbackBody>,
}

/// A run's registration: its token, and where its callback arrives.
#[derive(Debug)]
pub struct Waiting {
    pub token: String,
    pub result: oneshot::Receiver<CallbackBody>,
}

impl Callbacks {
    pub fn new(secret: Option<String>) -> Callbacks {
        Callbacks {
            waiting: Arc::default(),
            secret: secret.map(Arc::from),
            bus: Arc::default(),
        }
    }

    /// Starts taking callbacks forwarded by other replicas (in a background task of the
    /// process), and forwarding theirs. Once per process; later calls do nothing. Without it
    /// callbacks reach local runs only.
    pub async fn attach(&self, client: &async_nats::Client, tasks: &Tasks) {
        if self.bus.get().is_some() {
            return;
        }
        let requests = match client.subscribe(format!("{FORWARD_PREFIX}.>")).await {
            Ok(requests) => requests,
            Err(e) => {
                tracing::warn!(error = %e, "callbacks reach this replica's own runs only");
                return;
            }
        };
        if self.bus.set(client.clone()).is_err() {
            return;
        }
        let callbacks = self.clone();
        let client = client.clone();
        tasks.spawn("callback-forwarding", |stop| async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = callbacks.answer_forwarded(client, requests) => {}
            }
            Ok::<(), std::convert::Infallible>(())
        });
    }

    async fn answer_forwarded(
        self,
        client: async_nats::Client,
        mut requests: async_nats::Subscriber,
    ) {
        while let Some(request) = requests.next().await {
            let Some(reply) = request.reply.clone() else {
                continue;
            };
            let id = request
                .subject
                .as_str()
                .strip_prefix(FORWARD_PREFIX)
                .and_then(|rest| rest.strip_prefix('.'))
                .unwrap_or_default();
            let bearer = request
                .headers
                .as_ref()
                .and_then(|h| h.get(header::AUTHORIZATION.as_str()))
                .map(|v| v.as_str().to_owned());
            // Only the replica holding the run answers; the first answer is the one taken.
            let Local::Answer(status, text) = self.deliver(id, bearer.as_deref(), &request.payload)
            else {
                continue;
            };
            let answer = Forwarded {
                status: status.as_u16(),
                text,
            };
            let Ok(payload) = serde_json::to_vec(&answer) else {
                continue;
            };
            if let Err(e) = client.publish(reply, payload.into()).await {
                tracing::warn!(run = %id, error = %e, "cannot answer a forwarded callback");
            }
        }
    }

    /// Hands a callback this replica has no run for to the one that has; `None` when none
    /// answers (or callbacks are not forwarded).
    async fn forward(
        &self,
        id: &str,
        bearer: Option<&str>,
        body: Bytes,
    ) -> Option<(StatusCode, String)> {
        let client = self.bus.get()?;
        // Run ids are DNS labels; anything else cannot name a subject token, nor a run.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return None;
        }
        let mut headers = async_nats::HeaderMap::new();
        if let Some(bearer) = bearer {
            headers.insert(header::AUTHORIZATION.as_str(), bearer);
        }
        let request = async_nats::Request::new()
            .payload(body)
            .headers(headers)
            .timeout(Some(FORWARD_TIMEOUT));
        let reply = client
            .send_request(format!("{FORWARD_PREFIX}.{id}"), request)
            .await
            .ok()?;
        let answer: Forwarded = serde_json::from_slice(&reply.payload).ok()?;
        Some((StatusCode::from_u16(answer.status).ok()?, answer.text))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for run `id`'s callback, with a new random token.
    pub fn register(&self, id: &str) -> Waiting {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = oneshot::channel();
        self.lock().insert(
            id.to_owned(),
            Entry {
                token: token.clone(),
                result: tx,
            },
        );
        Waiting { token, result: rx }
    }

    /// Stops waiting for run `id`.
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/callbacks/builds/{id}", post(receive))
            .with_state(self.clone())
    }

    fn authorized(&self, entry: &Entry, authorization: Option<&str>) -> bool {
        let Some(given) = authorization.and_then(|v| v.strip_prefix("Bearer ")) else {
            return false;
        };
        let given = given.trim().as_bytes();
        let run_token: bool = given.ct_eq(entry.token.as_bytes()).into();
        let secret: bool = self
            .secret
            .as_deref()
            .is_some_and(|s| given.ct_eq(s.as_bytes()).into());
        run_token || secret
    }
}

async fn receive(
    State(callbacks): State<Callbacks>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match callbacks.deliver(&id, bearer, &body) {
        Local::Answer(status, text) => (status, text),
        Local::NotHere => callbacks
            .forward(&id, bearer, body)
            .await
            .unwrap_or_else(|| {
                (
                    StatusCode::NOT_FOUND,
                    format!("no run is waiting for a callback as {id}\n"),
                )
            }),
    }
}

impl Callbacks {
    /// Delivers a callback to run `id` if it waits in this replica.
    fn deliver(&self, id: &str, authorization: Option<&str>, body: &[u8]) -> Local {
        let mut waiting = self.lock();
        let Some(entry) = waiting.get(id) else {
            return Local::NotHere;
        };
        if !self.authorized(entry, authorization) {
            return Local::Answer(
                StatusCode::UNAUTHORIZED,
                "missing or wrong Authorization: Bearer token\n".to_owned(),
            );
        }
        let report: CallbackBody = match serde_json::from_slice(body) {
            Ok(report) => report,
            Err(e) => {
                return Local::Answer(
                    StatusCode::BAD_REQUEST,
                    format!("malformed callback: {e}\n"),
                );
            }
        };
        if report.status != "succeeded" && report.status != "failed" {
            return Local::Answer(
                StatusCode::BAD_REQUEST,
                format!(
                    "status must be \"succeeded\" or \"failed\", not {:?}\n",
                    report.status
                ),
            );
        }
        let Some(entry) = waiting.remove(id) else {
            return Local::NotHere;
        };
        drop(waiting);
        tracing::info!(run = %id, status = %report.status, "CI run called back");
        if entry.result.send(report).is_err() {
            return Local::Answer(StatusCode::NOT_FOUND, format!("run {id} stopped waiting\n"));
        }
        Local::Answer(StatusCode::ACCEPTED, "accepted\n".to_owned())
    }
}
