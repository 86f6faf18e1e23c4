//! A fake Kubernetes API server for Flotilla's tests: HTTP on 127.0.0.1, pointed at by an
//! ordinary `kube::Config`, so the code under test takes its production path.
//!
//! It is a test double and nothing more: it never runs in a shipped binary and proves nothing
//! about a real cluster. What it serves follows what kube-rs 5 was measured to need
//! (`../shared/notes/kube-fake.md`):
//!
//! - any resource registered as a [`Resource`] (group, version, plural, kind, scope, whether it
//!   has a status subresource), stored as JSON in one store keyed by
//!   resource/namespace/name, with a global `resourceVersion` bumped on every write;
//! - get, list (with `metadata.resourceVersion`), create (201; `AlreadyExists`), replace
//!   (`Conflict` on a stale resourceVersion), merge / strategic / apply patches (RFC 7386) and
//!   JSON patches (`Invalid` when an op fails), delete (with owner-reference garbage collection
//!   unless orphaned), `/status` with real status-subresource semantics (main writes keep the
//!   status, status writes change only the status; 404 where the resource has none, like Argo
//!   CD's Application);
//! - watches from a resourceVersion: history replayed, then live events, newline-delimited;
//!   `ERROR 410 Expired` for a version older than the kept history; open until
//!   `timeoutSeconds`;
//! - label (`k=v`, `k!=v`, `k`) and field (`metadata.name`, `metadata.namespace`) selectors;
//! - pod logs (`/pods/NAME/log`, `tailLines`), `/version`, and `APIResourceList` discovery for
//!   each registered group version;
//! - errors as full `Status` bodies with `reason`.
//!
//! The test scripts the cluster through [`Fake`]: seed and change objects "as a controller",
//! hook creations ([`Fake::on_create`]), and the ready-made Job controller in [`jobs`]
//! ("this Job succeeds after 300 ms with this log").
//!
//! Not served: streaming lists (`sendInitialEvents`), watch bookmarks, pagination (`limit` is
//! ignored), server-side apply's field ownership, admission, finalizers, authentication.

mod path;
mod resource;
mod select;
mod server;
mod store;
mod watch;

pub mod jobs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use resource::Resource;
pub use store::Fake;

/// A running fake API server; it stops when dropped. Derefs to its [`Fake`] store.
pub struct FakeKube {
    fake: Fake,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl FakeKube {
    /// Serves `resources` on a random loopback port.
    pub async fn start(resources: impl IntoIterator<Item = Resource>) -> FakeKube {
        let fake = Fake::new(resources.into_iter().collect());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the fake API server");
        let addr = listener.local_addr().expect("the bound address");
        let router = server::router(fake.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeKube { fake, addr, task }
    }

    /// Jobs, Pods (with logs) and Namespaces: what builders and env reapers use.
    pub async fn batch() -> FakeKube {
        FakeKube::start([Resource::job(), Resource::pod(), Resource::namespace()]).await
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client config for this server: plain HTTP, no auth, namespace `default`.
    pub fn config(&self) -> kube::Config {
        let url = self.url().parse().expect("a valid URL");
        kube::Config::new(url)
    }

    /// A client for this server.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config()).expect("a client for a plain HTTP URL")
    }

    pub fn fake(&self) -> &Fake {
        &self.fake
    }
}

impl std::ops::Deref for FakeKube {
    type Target = Fake;

    fn deref(&self) -> &Fake {
        &self.fake
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.fake.close_watches();
        self.task.abort();
    }
}

/// Waits up to `within` for `probe` to return `Some`, checking on every write to the store.
pub async fn eventually<T>(
    fake: &Fake,
    within: Duration,
    mut probe: impl FnMut(&Fake) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let changed = fake.changed();
        if let Some(found) = probe(fake) {
            return Some(found);
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return probe(fake);
        }
    }
}

/// `{"kind":"Status",...}` for an error answer.
pub(crate) fn status(code: u16, reason: &str, message: &str, details: Value) -> Value {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "details": details,
    })
}

#[doc(hidden)]
pub fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Fake>();
    is::<Arc<FakeKube>>();
}
