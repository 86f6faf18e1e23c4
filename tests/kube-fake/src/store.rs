//! The store: objects keyed by resource/namespace/name, a global resourceVersion, the history
//! watches replay, and the scripting API tests drive the cluster with.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use crate::resource::Resource;

mod api;

/// One write, as watches see it.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub resource: usize,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub object: Value,
}

/// What open watches are told besides changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    None,
    /// End every watch stream.
    Close,
    /// Send `ERROR 410 Expired` on every watch stream, then end it.
    Expire,
}

/// An API error: the HTTP code and its `Status` body.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub code: u16,
    pub body: Value,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>, details: Value) -> ApiError {
        ApiError {
            code,
            body: crate::status(code, reason, &message.into(), details),
        }
    }

    pub fn not_found(resource: &Resource, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", resource.plural),
            json!({"name": name, "group": resource.group, "kind": resource.plural}),
        )
    }

    pub fn no_such_path() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
            json!({}),
        )
    }
}

type Hook = Arc<dyn Fn(Fake, Value) + Send + Sync>;
/// A watch's start: the history to replay, the live changes, and the signals.
pub(crate) type Subscription = (
    Vec<Arc<Change>>,
    broadcast::Receiver<Arc<Change>>,
    watch::Receiver<Signal>,
);
type Key = (usize, String, String);

struct State {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: Vec<Arc<Change>>,
    /// History holds every change with a resourceVersion above this.
    floor: u64,
    logs: HashMap<(String, String), String>,
    requests: Vec<String>,
    next_uid: u64,
}

struct Inner {
    resources: Vec<Resource>,
    state: Mutex<State>,
    changes: broadcast::Sender<Arc<Change>>,
    signals: watch::Sender<Signal>,
    writes: watch::Sender<u64>,
    hooks: Mutex<Vec<(usize, Hook)>>,
}

/// The fake cluster's store and scripting API. Cheap to clone.
#[derive(Clone)]
pub struct Fake {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Fake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fake").finish_non_exhaustive()
    }
}

impl Fake {
    pub(crate) fn new(resources: Vec<Resource>) -> Fake {
        Fake {
            inner: Arc::new(Inner {
                resources,
                state: Mutex::new(State {
                    objects: BTreeMap::new(),
                    rv: 1,
                    history: Vec::new(),
                    floor: 1,
                    logs: HashMap::new(),
                    requests: Vec::new(),
                    next_uid: 1,
                }),
                changes: broadcast::channel(4096).0,
                signals: watch::channel(Signal::None).0,
                writes: watch::channel(0).0,
                hooks: Mutex::new(Vec::new()),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn resources(&self) -> &[Resource] {
        &self.inner.resources
    }

    fn index(&self, resource: &Resource) -> usize {
        self.inner
            .resources
            .iter()
            .position(|r| r == resource)
            .unwrap_or_else(|| panic!("{} is not served by this fake", resource.plural))
    }

    // ---- scripting: the test acting as a controller ----

    /// The object, if stored.
    pub fn get(&self, resource: &Resource, namespace: &str, name: &str) -> Option<Value> {
        let key = (self.index(resource), namespace.to_owned(), name.to_owned());
        self.state().objects.get(&key).cloned()
    }

    /// Every stored object of `resource`.
    pub fn list(&self, resource: &Resource) -> Vec<Value> {
        let index = self.index(resource);
        self.state()
            .objects
            .iter()
            .filter(|((r, _, _), _)| *r == index)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Creates or replaces `object` whole, status included (no subresource rules: this is
    /// the controller writing). Returns the stored object.
    pub fn put(&self, resource: &Resource, object: Value) -> Value {
        let index = self.index(resource);
        let mut state = self.state();
        let object = self.complete(&mut state, index, object, None);
        let key = key_of(index, &object);
        let kind = if state.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.write(&mut state, index, key, kind, Some(object))
    }

    /// Merges `patch` (RFC 7386) into the object as a controller would; `None` if absent.
    pub fn merge(
        &self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Option<Value> {
        let index = self.index(resource);
        let key = (index, namespace.to_owned(), name.to_owned());
        let mut state = self.state();
        let mut object = state.objects.get(&key)?.clone();
        json_patch::merge(&mut object, patch);
        Some(self.write(&mut state, index, key, "MODIFIED", Some(object)))
    }

    /// Merges `status` into the object's status.
    pub fn merge_status(
        &self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> Option<Value> {
        self.merge(resource, namespace, name, &json!({ "status": status }))
    }

    /// Deletes the object (no garbage collection: the test decides).
    pub fn remove(&self, resource: &Resource, namespace: &str, name: &str) -> Option<Value> {
        let index = self.index(resource);
        let key = (index, namespace.to_owned(), name.to_owned());
        let mut state = self.state();
        let object = state.objects.get(&key)?.clone();
        Some(self.write(&mut state, index, key, "DELETED", Some(object)))
    }

    /// The log `GET .../pods/NAME/log` answers.
    pub fn set_log(&self, namespace: &str, pod: &str, text: &str) {
        self.state()
            .logs
            .insert((namespace.to_owned(), pod.to_owned()), text.to_owned());
    }

    /// Every request served so far: `METHOD /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }

    /// Calls `hook` with a handle and the stored object after each API create of `resource`.
    pub fn on_create(
        &self,
        resource: &Resource,
        hook: impl Fn(Fake, Value) + Send + Sync + 'static,
    ) {
        let index = self.index(resource);
        self.inner
            .hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((index, Arc::new(hook)));
    }

    /// Ends every open watch (clients re-watch from their last resourceVersion).
    pub fn close_watches(&self) {
        self.inner.signals.send_replace(Signal::Close);
    }

    /// Sends `ERROR 410 Expired` on every open watch (clients relist).
    pub fn expire_watches(&self) {
        self.inner.signals.send_replace(Signal::Expire);
    }

    /// Forgets the history: watches from any older resourceVersion get 410 Expired.
    pub fn compact(&self) {
        let mut state = self.state();
        state.floor = state.rv;
        state.history.clear();
    }

    /// Resolves at the next write to the store.
    pub fn changed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut writes = self.inner.writes.subscribe();
        writes.mark_unchanged();
        async move {
            let _ = writes.changed().await;
        }
    }

    // ---- the API server's side ----

    pub(crate) fn record(&self, request: String) {
        self.state().requests.push(request);
    }

    pub(crate) fn log(&self, namespace: &str, pod: &str) -> Option<String> {
        let state = self.state();
        let index = self
            .inner
            .resources
            .iter()
            .position(|r| r.plural == "pods" && r.group.is_empty())?;
        state
            .objects
            .get(&(index, namespace.to_owned(), pod.to_owned()))?;
        Some(
            state
                .logs
                .get(&(namespace.to_owned(), pod.to_owned()))
                .cloned()
                .unwrap_or_default(),
        )
    }

    /// Fills in what the API server sets: kind, apiVersion, namespace, uid, creationTimestamp,
    /// a name from generateName.
    fn complete(
        &self,
        state: &mut State,
        index: usize,
        mut object: Value,
        namespace: Option<&str>,
    ) -> Value {
        let resource = &self.inner.resources[index];
        if !object.is_object() {
            object = json!({});
        }
        object["kind"] = json!(resource.kind);
        object["apiVersion"] = json!(resource.api_version());
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let meta = &mut object["metadata"];
        if resource.namespaced {
            if let Some(ns) = namespace {
                meta["namespace"] = json!(ns);
            } else if meta["namespace"].as_str().is_none_or(str::is_empty) {
                meta["namespace"] = json!("default");
            }
        }
        state.next_uid += 1;
        let serial = state.next_uid;
        if meta["name"].as_str().is_none_or(str::is_empty)
            && let Some(prefix) = meta["generateName"].as_str()
        {
            meta["name"] = json!(format!("{prefix}{serial:05x}"));
        }
        if meta["uid"].as_str().is_none() {
            meta["uid"] = json!(format!("00000000-0000-4000-8000-{serial:012x}"));
        }
        if meta["creationTimestamp"].as_str().is_none() {
            let now = time::OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let stamp = now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            meta["creationTimestamp"] = json!(stamp);
        }
        object
    }

    /// Stores (or, for `DELETED`, removes) the object under a new resourceVersion and tells
    /// watches; returns what was written.
    fn write(
        &self,
        state: &mut State,
        index: usize,
        key: Key,
        kind: &'static str,
        object: Option<Value>,
    ) -> Value {
        state.rv += 1;
        let rv = state.rv;
        let mut object = object.unwrap_or_else(|| json!({}));
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        if kind == "DELETED" {
            state.objects.remove(&key);
        } else {
            state.objects.insert(key, object.clone());
        }
        let change = Arc::new(Change {
            rv,
            resource: index,
            kind,
            object: object.clone(),
        });
        state.history.push(change.clone());
        // Sent under the lock, so every receiver sees changes in resourceVersion order.
        let _ = self.inner.changes.send(change);
        self.inner.writes.send_modify(|n| *n += 1);
        object
    }
}

fn key_of(index: usize, object: &Value) -> Key {
    let meta = &object["metadata"];
    (
        index,
        meta["namespace"].as_str().unwrap_or("").to_owned(),
        meta["name"].as_str().unwrap_or("").to_owned(),
    )
}
