//! `POST /report/{env}/{app}`: what an Argo CD PostSync hook Job calls when an app's post-sync
//! checks ran (the seed's workflow-reporter). The report is stored in the env's registry record,
//! for the current change, so every replica and a restarted one see it; then the tracker hears.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use flotilla_env::{Registry, State as EnvState};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::tracker::{Input, Tracker, with_report};

/// The longest message kept from a report.
const MAX_MESSAGE: usize = 2000;

/// What the route needs.
#[derive(Clone)]
pub struct Reports {
    pub registry: Registry,
    pub tracker: Tracker,
    /// The bearer token reports must carry, when set.
    pub token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    status: String,
    #[serde(default)]
    message: String,
}

/// The route, to serve beside the probes.
pub fn routes(reports: Reports) -> Router {
    Router::new()
        .route("/report/{env}/{app}", post(report))
        .with_state(reports)
}

async fn report(
    State(reports): State<Reports>,
    Path((env, app)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(token) = &reports.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return answer(StatusCode::UNAUTHORIZED, "a bearer token is required");
        }
    }
    let body: Body = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                &format!(
                    "the body must be {{\"status\":\"succeeded\"|\"failed\",\"message\":\"..\"}}: {e}"
                ),
            );
        }
    };
    let succeeded = match body.status.as_str() {
        "succeeded" => true,
        "failed" => false,
        other => {
            return answer(
                StatusCode::BAD_REQUEST,
                &format!("status must be \"succeeded\" or \"failed\", not {other:?}"),
            );
        }
    };
    let message: String = body.message.chars().take(MAX_MESSAGE).collect();
    let record = match reports.registry.get(&env).await {
        Ok(record) => record,
        Err(e) => {
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the registry: {e}"),
            );
        }
    };
    let Some(record) = record.filter(|r| !r.state.is_going_away()) else {
        return answer(StatusCode::NOT_FOUND, &format!("no env {env}"));
    };
    if !record.apps.iter().any(|a| a.name == app) {
        return answer(
            StatusCode::NOT_FOUND,
            &format!("env {env} has no app {app}"),
        );
    }
    let change_id = record.change_id.clone();
    let stored = reports
        .registry
        .update(&env, |current| {
            let current =
                current.filter(|r| r.change_id == change_id && r.state == EnvState::Requested)?;
            Some(with_report(current, &app, succeeded, &message))
        })
        .await;
    if let Err(e) = stored {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the registry: {e}"),
        );
    }
    tracing::info!(env = %env, app = %app, change_id = %change_id, succeeded, message = %message, "report received");
    let input = Input::Report {
        env: env.clone(),
        app: app.clone(),
        change_id: change_id.clone(),
        succeeded,
        message,
    };
    if let Err(e) = reports.tracker.send(input).await {
        return answer(StatusCode::SERVICE_UNAVAILABLE, &e);
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({"env": env, "app": app, "change_id": change_id, "status": body.status})),
    )
        .into_response()
}

fn answer(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({"error": error}))).into_response()
}
