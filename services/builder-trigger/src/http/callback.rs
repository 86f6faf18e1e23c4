//! `POST /callbacks/builds/{id}`: where CI runs report their result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use flotilla_proto::v1::Image;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use crate::backend::{self, Outcome, Status};

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
            excerpt: backend::last_lines(&self.message),
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

/// Runs waiting for their callback. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Callbacks {
    waiting: Arc<Mutex<HashMap<String, Entry>>>,
    secret: Option<Arc<str>>,
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
        }
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

    fn authorized(&self, entry: &Entry, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
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
    let mut waiting = callbacks.lock();
    let Some(entry) = waiting.get(&id) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no run is waiting for a callback as {id}\n"),
        );
    };
    if !callbacks.authorized(entry, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong Authorization: Bearer token\n".to_owned(),
        );
    }
    let report: CallbackBody = match serde_json::from_slice(&body) {
        Ok(report) => report,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("malformed callback: {e}\n"),
            );
        }
    };
    if report.status != "succeeded" && report.status != "failed" {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "status must be \"succeeded\" or \"failed\", not {:?}\n",
                report.status
            ),
        );
    }
    let Some(entry) = waiting.remove(&id) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no run is waiting as {id}\n"),
        );
    };
    drop(waiting);
    tracing::info!(run = %id, status = %report.status, "CI run called back");
    if entry.result.send(report).is_err() {
        return (StatusCode::NOT_FOUND, format!("run {id} stopped waiting\n"));
    }
    (StatusCode::ACCEPTED, "accepted\n".to_owned())
}
