//! The HTTP side: one fallback handler that splits API paths and dispatches.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::path::{self, Target};
use crate::select::{Filter, Selector};
use crate::store::{ApiError, Fake};

pub(crate) fn router(fake: Fake) -> Router {
    Router::new().fallback(handle).with_state(fake)
}

/// The query of a request, parsed (never matched as a raw string).
struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn handle(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    fake.record(format!("{method} {uri}"));
    let query = Query(
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
    );
    let result = match path::parse(uri.path(), fake.resources()) {
        None => Err(ApiError::no_such_path()),
        Some(Target::Version) => Ok(ok(json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"
        }))),
        Some(Target::GroupVersion { group, version }) => discovery(&fake, &group, &version),
        Some(Target::Object {
            resource,
            namespace,
            name,
            subresource,
        }) => {
            let request = Request {
                fake: &fake,
                index: resource,
                namespace: namespace.unwrap_or_default(),
                subresource,
                query,
                headers,
                body,
            };
            match name {
                None => request.collection(&method),
                Some(name) => request.object(&method, &name),
            }
        }
    };
    result.unwrap_or_else(|e| (status_code(e.code), axum::Json(e.body)).into_response())
}

struct Request<'a> {
    fake: &'a Fake,
    index: usize,
    namespace: String,
    subresource: Option<String>,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
}

impl Request<'_> {
    fn collection(&self, method: &Method) -> Result<Response, ApiError> {
        match *method {
            Method::GET
                if self
                    .query
                    .get("watch")
                    .is_some_and(|w| w == "true" || w == "1") =>
            {
                Ok(self.watch())
            }
            Method::GET => {
                let (items, rv) = self.fake.api_list(self.index, &self.filter());
                let resource = &self.fake.resources()[self.index];
                Ok(ok(json!({
                    "kind": format!("{}List", resource.kind),
                    "apiVersion": resource.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()},
                    "items": items,
                })))
            }
            Method::POST => {
                let object = self.json()?;
                let created = self.fake.api_create(self.index, &self.namespace, object)?;
                Ok((StatusCode::CREATED, axum::Json(created)).into_response())
            }
            _ => Err(not_allowed(method)),
        }
    }

    fn object(&self, method: &Method, name: &str) -> Result<Response, ApiError> {
        let status_only = match self.subresource.as_deref() {
            None => false,
            Some("status") => true,
            Some("log") if *method == Method::GET => return self.log(name),
            Some(_) => return Err(ApiError::no_such_path()),
        };
        let resource = &self.fake.resources()[self.index];
        if status_only && !resource.status_subresource {
            return Err(ApiError::no_such_path());
        }
        match *method {
            Method::GET => Ok(ok(self.fake.api_get(self.index, &self.namespace, name)?)),
            Method::PUT => {
                let body = self.json()?;
                let expected = body["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_owned);
                let updated = self.fake.api_update(
                    self.index,
                    &self.namespace,
                    name,
                    status_only,
                    expected.as_deref(),
                    |object| {
                        *object = body;
                        Ok(())
                    },
                )?;
                Ok(ok(updated))
            }
            Method::PATCH => {
                let body = self.json()?;
                let json_patch = self
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|t| t.starts_with("application/json-patch+json"));
                let updated = self.fake.api_update(
                    self.index,
                    &self.namespace,
                    name,
                    status_only,
                    None,
                    |object| {
                        if json_patch {
                            let patch: json_patch::Patch =
                                serde_json::from_value(body).map_err(|e| {
                                    ApiError::new(
                                        400,
                                        "BadRequest",
                                        format!("not a JSON patch: {e}"),
                                        json!({}),
                                    )
                                })?;
                            json_patch::patch(object, &patch).map_err(|e| {
                                ApiError::new(
                                    422,
                                    "Invalid",
                                    format!("the patch did not apply: {e}"),
                                    json!({}),
                                )
                            })
                        } else {
                            json_patch::merge(object, &body);
                            Ok(())
                        }
                    },
                )?;
                Ok(ok(updated))
            }
            Method::DELETE => {
                let orphan = self.body_json()["propagationPolicy"].as_str() == Some("Orphan")
                    || self.query.get("propagationPolicy") == Some("Orphan");
                Ok(ok(self.fake.api_delete(
                    self.index,
                    &self.namespace,
                    name,
                    orphan,
                )?))
            }
            _ => Err(not_allowed(method)),
        }
    }

    fn watch(&self) -> Response {
        let rv: u64 = self
            .query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let timeout = self
            .query
            .get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(300), Duration::from_secs);
        let filter = self.filter();
        // "0" or none: start now, with the current objects as ADDED first (as "Any" would).
        let (start, initial) = if rv == 0 {
            let (items, rv) = self.fake.api_list(self.index, &filter);
            (rv, items)
        } else {
            (rv, Vec::new())
        };
        let body = crate::watch::body(self.fake, self.index, filter, start, timeout, initial);
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }

    fn log(&self, name: &str) -> Result<Response, ApiError> {
        let text = self
            .fake
            .log(&self.namespace, name)
            .ok_or_else(|| ApiError::not_found(&self.fake.resources()[self.index], name))?;
        let text = match self
            .query
            .get("tailLines")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => {
                let lines: Vec<&str> = text.lines().collect();
                let mut tail = lines[lines.len().saturating_sub(n)..].join("\n");
                if !tail.is_empty() {
                    tail.push('\n');
                }
                tail
            }
            None => text,
        };
        Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            Body::from(text),
        )
            .into_response())
    }

    fn filter(&self) -> Filter {
        Filter {
            namespace: Some(self.namespace.clone()).filter(|ns| !ns.is_empty()),
            labels: Selector::parse(self.query.get("labelSelector").unwrap_or("")),
            fields: Selector::parse(self.query.get("fieldSelector").unwrap_or("")),
        }
    }

    fn json(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::new(
                400,
                "BadRequest",
                format!("the body is not JSON: {e}"),
                json!({}),
            )
        })
    }

    fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn discovery(fake: &Fake, group: &str, version: &str) -> Result<Response, ApiError> {
    let resources: Vec<Value> = fake
        .resources()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(|r| {
            let main = json!({
                "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            });
            let status = r.status_subresource.then(|| json!({
                "name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"],
            }));
            std::iter::once(main).chain(status)
        })
        .collect();
    if resources.is_empty() {
        return Err(ApiError::no_such_path());
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Ok(ok(json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources
    })))
}

fn ok(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

fn not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        format!("{method} is not supported here"),
        json!({}),
    )
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
