//! Argo's web provider (metricproviders/webmetric/webmetric.go): one HTTP request; a 2xx JSON
//! answer is narrowed by `jsonPath` (default `{$}`), a non-JSON answer is the body as a string.

use std::time::Duration;

use crate::error::ProviderError;
use crate::jsonpath::JsonPath;
use crate::provider::{HttpProvider, request_error};
use crate::spec::WebSpec;
use crate::value::Value;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn measure(http: &HttpProvider, spec: &WebSpec) -> Result<Value, ProviderError> {
    let method = if spec.method.is_empty() {
        "GET"
    } else {
        spec.method.as_str()
    };
    if !spec.body.is_empty() && spec.json_body.is_some() {
        return Err(ProviderError::Config(
            "use either Body or JSONBody; both cannot exists for WebMetric payload".into(),
        ));
    }
    if (!spec.body.is_empty() || spec.json_body.is_some()) && method == "GET" {
        return Err(ProviderError::Config(
            "Body/JSONBody can only be used with POST or PUT WebMetric Method types".into(),
        ));
    }
    let path = JsonPath::parse(&spec.json_path).map_err(ProviderError::Config)?;
    let timeout = if spec.timeout_seconds <= 0 {
        DEFAULT_TIMEOUT
    } else {
        Duration::from_secs(spec.timeout_seconds as u64)
    };
    let m = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|e| ProviderError::Config(e.to_string()))?;
    let mut req = http
        .client(spec.insecure)
        .request(m, &spec.url)
        .timeout(timeout);
    for h in &spec.headers {
        req = req.header(h.key.as_str(), h.value.as_str());
    }
    if !spec.body.is_empty() {
        req = req.body(spec.body.clone());
    } else if let Some(json) = &spec.json_body {
        req = req
            .header("Content-Type", "application/json")
            .body(json.to_string());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| request_error(method, &spec.url, &e))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(ProviderError::Status(status));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| ProviderError::Response(format!("Received no bytes in response: {e}")))?;
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Err(_) => Ok(Value::Str(String::from_utf8_lossy(&body).into_owned())),
        Ok(doc) => {
            let found = path.first(&doc).map_err(|e| {
                if e.starts_with("result of web metric") {
                    ProviderError::Response(e)
                } else {
                    ProviderError::Response(format!("Could not find JSONPath in body: {e}"))
                }
            })?;
            Ok(Value::from_json(&found))
        }
    }
}
