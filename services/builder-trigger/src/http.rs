//! The `http` backend: a CI system's API starts each run, and the result comes back on a
//! callback or from a status URL.
//!
//! A run is started by one request made from a template (URL, method, headers, JSON body) whose
//! strings may hold placeholders: every variable of the run without its `FLOTILLA_` prefix,
//! lowercased (`{{repo}}`, `{{sha}}`, `{{version}}`, `{{app}}`, `{{change_id}}`, `{{pr}}`,
//! `{{ref}}`, `{{image}}`, `{{pipeline_image}}`, `{{env}}`, `{{env_url}}`, ...), plus
//! `{{build_id}}`, `{{callback_url}}`, `{{callback_token}}` and `{{token}}` (the API token).
//! Placeholders are replaced inside JSON strings, so values never break the body's syntax.
//!
//! - `"result": "callback"` (the default): the CI run reports with
//!   `POST <callback_url>` = `<FLOTILLA_CALLBACK_URL>/callbacks/builds/<build id>`, body
//!   `{"status":"succeeded"|"failed","message":..,"log_url":..,"images":[{"name","ref","digest"}]}`,
//!   and `Authorization: Bearer <callback_token>` (a random token per run) or the shared
//!   `FLOTILLA_CALLBACK_SECRET`. Answers: 202 taken, 401 wrong token, 404 no run waiting under
//!   that id, 400 malformed body.
//! - `"result": {"poll": {"url": .., "status": "/status/phase", ..}}`: the status URL is read
//!   every `interval`; `{{id}}` in it is the value at the `id` JSON pointer of the start
//!   request's answer (e.g. `/metadata/name` of an Argo Workflow).
//!
//! A run that does not report within its timeout fails. A run waits for its callback in the
//! replica that started it; `FLOTILLA_CALLBACK_URL` may reach any replica, which hands the
//! callback to that one over core NATS. A callback for a run no replica waits on gets 404.

mod callback;
mod poll;
mod redact;
pub mod template;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::args::{Args, env, nonblank};
use crate::error::Error;
use crate::run::{Cancel, Kind, Outcome, Run, Status};

pub use callback::{CallbackBody, Callbacks};
pub use poll::Poll;
pub use redact::Redact;
pub use template::Template;

/// The `http` backend's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub build: Template,
    /// `None`: tests pass at once.
    pub test: Option<Template>,
    /// The CI API token, for `{{token}}`.
    pub token: Option<String>,
    /// This worker's URL as the CI system reaches it.
    pub callback_url: Option<String>,
    /// Accepted on every callback besides the run's own token.
    pub callback_secret: Option<String>,
}

impl Settings {
    pub fn from_args(args: &Args) -> Result<Settings, Error> {
        let build = args.http_build_request.as_deref().ok_or_else(|| {
            Error::Config(format!(
                "{} is not set: the http backend needs the request that starts a build",
                env::HTTP_BUILD_REQUEST
            ))
        })?;
        let build = Template::load(build, env::HTTP_BUILD_REQUEST)?;
        let test = args
            .http_test_request
            .as_deref()
            .map(|t| Template::load(t, env::HTTP_TEST_REQUEST))
            .transpose()?;
        let token = match (&args.http_token, &args.http_token_file) {
            (Some(token), _) => nonblank(Some(token)),
            (None, Some(file)) => Some(
                flotilla_env::secret::read_one(env::HTTP_TOKEN_FILE, file)
                    .map_err(|e| Error::Config(e.to_string()))?,
            ),
            (None, None) => None,
        };
        let settings = Settings {
            build,
            test,
            token,
            callback_url: nonblank(args.callback_url.as_deref())
                .map(|u| u.trim_end_matches('/').to_owned()),
            callback_secret: nonblank(args.callback_secret.as_deref()),
        };
        settings.check()?;
        Ok(settings)
    }

    /// Callback templates need somewhere to call back.
    fn check(&self) -> Result<(), Error> {
        let templates = std::iter::once(&self.build).chain(self.test.as_ref());
        for template in templates {
            if template.result == ResultMode::Callback && self.callback_url.is_none() {
                return Err(Error::Config(format!(
                    "{} is not set: requests with \"result\": \"callback\" need this worker's URL as the CI system reaches it",
                    env::CALLBACK_URL
                )));
            }
        }
        Ok(())
    }
}

/// How a run's result is learnt.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultMode {
    /// The CI run calls `{{callback_url}}`.
    #[default]
    Callback,
    /// A status URL is read until it says the run is over.
    Poll(Poll),
}

/// Runs builds and tests through a CI system's API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Backend {
    settings: Arc<Settings>,
    client: reqwest::Client,
    callbacks: Callbacks,
}

impl Backend {
    pub fn new(settings: Settings) -> Result<Backend, Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let callbacks = Callbacks::new(settings.callback_secret.clone());
        Ok(Backend {
            settings: Arc::new(settings),
            client,
            callbacks,
        })
    }

    /// Forwards callbacks for runs waiting in other replicas over `client`, and takes theirs.
    pub async fn attach(&self, client: &async_nats::Client, tasks: &flotilla_bus::Tasks) {
        self.callbacks.attach(client, tasks).await;
    }

    /// `POST /callbacks/builds/{id}`, to serve on the worker's HTTP address.
    pub fn callback_routes(&self) -> axum::Router {
        self.callbacks.router()
    }

    pub fn runs_tests(&self) -> bool {
        self.settings.test.is_some()
    }

    /// The request that would start `run` (`METHOD url`), `None` for tests when none is
    /// configured; the reason when the template cannot be filled in.
    pub fn request_line(&self, run: &Run) -> Option<String> {
        let template = self.template(run)?;
        Some(
            match template.render(&template::values(&run.vars, &run.id)) {
                Ok(request) => format!("{} {}", request.method, self.redact([]).url(&request.url)),
                Err(e) => format!("(cannot make the start request: {e})"),
            },
        )
    }

    /// The request template of `run`: the build's or the test's, or the hook's own; `None`
    /// for tests when none is configured (they pass) and for a hook without a request.
    fn template<'a>(&'a self, run: &'a Run) -> Option<&'a Template> {
        match run.kind {
            Kind::Build => Some(&self.settings.build),
            Kind::Test => self.settings.test.as_ref(),
            Kind::Hook => run.exec.as_ref().and_then(|e| e.request.as_ref()),
        }
    }

    pub async fn run(&self, run: &Run, cancel: &Cancel) -> Outcome {
        let Some(template) = self.template(run) else {
            return match run.kind {
                Kind::Hook => Outcome::failed("the hook has no request for the http backend"),
                _ => Outcome::new(Status::Succeeded),
            };
        };
        let mut values = template::values(&run.vars, &run.id);
        if let Some(token) = &self.settings.token {
            values.insert("token".into(), token.clone());
        }
        // Registered before the request: a fast CI system may call back before it answers.
        let waiting = match (&template.result, &self.settings.callback_url) {
            (ResultMode::Callback, Some(base)) => {
                let waiting = self.callbacks.register(&run.id);
                values.insert(
                    "callback_url".into(),
                    format!("{base}/callbacks/builds/{}", run.id),
                );
                values.insert("callback_token".into(), waiting.token.clone());
                Some(waiting)
            }
            _ => None,
        };
        let mut redact = self.redact([values.get("callback_token").map_or("", String::as_str)]);
        if let Ok(request) = template.render(&values) {
            redact = redact.with_url(&request.url);
        }
        let work = async {
            let answer = match self.start(template, &values, &redact).await {
                Ok(answer) => answer,
                Err(outcome) => return outcome,
            };
            match (&template.result, waiting) {
                (ResultMode::Poll(poll), _) => {
                    self.poll(template, poll, &values, &answer, &redact).await
                }
                (ResultMode::Callback, Some(waiting)) => match waiting.result.await {
                    Ok(body) => body.outcome(),
                    Err(_) => Outcome::failed("another attempt of this run took over its callback"),
                },
                (ResultMode::Callback, None) => Outcome::failed(format!(
                    "{} is not set, so no callback can reach this worker",
                    env::CALLBACK_URL
                )),
            }
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(run.timeout, work) => outcome
                .unwrap_or_else(|_| Outcome::new(Status::TimedOut(run.timeout))),
            why = cancel.cancelled() => Outcome::new(Status::Cancelled(format!(
                "{why}; the CI run was left alone (this backend cannot cancel it)"
            ))),
        };
        self.callbacks.forget(&run.id);
        redacted(outcome, &redact)
    }

    /// Redacts this backend's secrets (the API token, the callback secret) and `more`.
    fn redact<'a>(&'a self, more: impl IntoIterator<Item = &'a str>) -> Redact {
        let settings = &self.settings;
        Redact::new(
            settings
                .token
                .as_deref()
                .into_iter()
                .chain(settings.callback_secret.as_deref())
                .chain(more),
        )
    }

    /// Sends the start request; `Err` is the failed outcome.
    async fn start(
        &self,
        template: &Template,
        values: &BTreeMap<String, String>,
        redact: &Redact,
    ) -> Result<Value, Outcome> {
        let request = template
            .render(values)
            .map_err(|e| Outcome::failed(format!("cannot make the start request: {e}")))?;
        // Only ever shown redacted: the URL may carry the API token.
        let url = redact.url(&request.url);
        let mut attempt = 1;
        loop {
            match self.send(request.clone()).await {
                Ok(answer) => {
                    tracing::info!(%url, attempt, "CI run requested");
                    return Ok(answer);
                }
                // Unreachable or overloaded: asked again a little later, within the timeout.
                Err(e) if e.transient && attempt < START_ATTEMPTS => {
                    let error = redact.text(&e.message);
                    tracing::warn!(%url, attempt, %error, "the CI system did not answer; asking again");
                    tokio::time::sleep(START_RETRY * attempt).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Outcome::failed(format!(
                        "the CI system at {url} did not take the run: {}",
                        redact.text(&e.message)
                    )));
                }
            }
        }
    }

    /// Sends `request`; the answer's JSON (`null` when it has none) or why it failed.
    async fn send(&self, request: template::Request) -> Result<Value, SendError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            SendError::permanent(format!("`{}` is not an HTTP method", request.method))
        })?;
        let mut builder = self.client.request(method, &request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        // reqwest's errors name the URL unredacted: callers name it themselves, redacted.
        let response = builder.send().await.map_err(|e| SendError {
            message: error_chain(&e.without_url()),
            transient: true,
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| SendError {
            message: error_chain(&e.without_url()),
            transient: true,
        })?;
        if !status.is_success() {
            let excerpt: String = text.chars().take(512).collect();
            return Err(SendError {
                message: format!("answered {status}: {excerpt}"),
                transient: matches!(status.as_u16(), 429 | 502 | 503 | 504),
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// `outcome` as it may be logged and published: without the run's secrets in its summary,
/// excerpt or log URL (a CI system may echo a request, token included).
fn redacted(mut outcome: Outcome, redact: &Redact) -> Outcome {
    outcome.status = match outcome.status {
        Status::Failed(why) => Status::Failed(redact.text(&why)),
        Status::Cancelled(why) => Status::Cancelled(redact.text(&why)),
        other => other,
    };
    for line in &mut outcome.excerpt {
        *line = redact.text(line);
    }
    outcome.log_url = redact.url(&outcome.log_url);
    outcome
}

/// Attempts at the start request when the CI system is unreachable or overloaded.
const START_ATTEMPTS: u32 = 3;
/// Wait before the second attempt; the third waits twice as long.
const START_RETRY: Duration = Duration::from_secs(1);

/// Why a request failed, and whether asking again may help.
#[derive(Debug)]
struct SendError {
    message: String,
    /// No answer, or 429 / 502 / 503 / 504.
    transient: bool,
}

impl SendError {
    fn permanent(message: String) -> SendError {
        SendError {
            message,
            transient: false,
        }
    }
}

/// A JSON value as text: strings unquoted, anything else as JSON.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An error with its causes, which reqwest keeps apart ("error sending request: connection
/// refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests;
