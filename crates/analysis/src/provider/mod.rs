//! The providers that take real measurements over HTTP: `prometheus`, `web`, and the
//! `flotilla-mannwhitney` judge. [`HttpProvider`] dispatches on the metric's provider.

pub mod mannwhitney;
pub mod prometheus;
pub mod web;

use futures::future::BoxFuture;

use crate::error::ProviderError;
use crate::metric::{Metric, ProviderSpec};
use crate::run::Provider;
use crate::value::Value;

/// One HTTP client for verified TLS and one for `insecure: true`, shared by every measurement.
#[derive(Debug, Clone)]
pub struct HttpProvider {
    secure: reqwest::Client,
    insecure: reqwest::Client,
}

impl HttpProvider {
    pub fn new() -> Result<Self, ProviderError> {
        let build = |insecure: bool| {
            reqwest::Client::builder()
                .danger_accept_invalid_certs(insecure)
                .build()
                .map_err(|e| ProviderError::Config(format!("building the HTTP client: {e}")))
        };
        Ok(HttpProvider {
            secure: build(false)?,
            insecure: build(true)?,
        })
    }

    pub(crate) fn client(&self, insecure: bool) -> &reqwest::Client {
        if insecure {
            &self.insecure
        } else {
            &self.secure
        }
    }
}

impl Provider for HttpProvider {
    fn measure<'a>(&'a self, metric: &'a Metric) -> BoxFuture<'a, Result<Value, ProviderError>> {
        Box::pin(async move {
            match &metric.provider {
                ProviderSpec::Prometheus(spec) => prometheus::measure(self, spec).await,
                ProviderSpec::Web(spec) => web::measure(self, spec).await,
                ProviderSpec::MannWhitney(spec) => mannwhitney::measure(self, spec).await,
            }
        })
    }
}

/// Go's `net/http` error text, roughly: `Get "http://x/": <cause>`, with reqwest's causes.
pub(crate) fn request_error(method: &str, url: &str, err: &reqwest::Error) -> ProviderError {
    let mut cause = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        cause = format!("{cause}: {s}");
        source = s.source();
    }
    if err.is_timeout() {
        cause = format!("{cause} (Client.Timeout exceeded while awaiting headers)");
    }
    let m = method
        .chars()
        .next()
        .map(|c| c.to_string())
        .unwrap_or_default()
        + &method[1..].to_lowercase();
    ProviderError::Request(format!("{m} \"{url}\": {cause}"))
}
