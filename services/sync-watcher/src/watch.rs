//! The Application watch: one kube-runtime watcher on the Argo CD namespace's Applications
//! labelled `flotilla.dev/env`, every change handed to the tracker. No polling: a broken watch
//! resumes from its last resourceVersion, or relists when the server says it is too old (410),
//! and the relist hands the tracker every Application again.

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use crate::app::{AppStatus, ENV_LABEL};
use crate::tracker::{Input, Tracker};

/// Argo CD's Application, as a dynamic resource: no CRD types to keep in step with Argo CD.
pub fn applications(client: Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "applications");
    Api::namespaced_with(client, namespace, &resource)
}

/// Watches until `stop`, telling `tracker` of every env Application's status.
pub async fn run(
    api: Api<DynamicObject>,
    tracker: Tracker,
    stop: CancellationToken,
) -> Result<(), String> {
    let config = watcher::Config::default().labels(ENV_LABEL);
    let mut events = watcher(api, config).default_backoff().boxed();
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            event = events.next() => event,
        };
        let input = match event {
            None => return Err("the Application watch ended".into()),
            Some(Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object))) => {
                status(&object).map(Input::App)
            }
            Some(Ok(watcher::Event::Delete(object))) => status(&object).map(|s| Input::AppGone {
                env: s.env,
                app: s.app,
            }),
            Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => None,
            Some(Err(e)) => {
                // Backed off and retried by the watcher.
                tracing::warn!(error = %e, "Application watch interrupted; resuming");
                None
            }
        };
        if let Some(input) = input {
            tracker.send(input).await?;
        }
    }
}

fn status(object: &DynamicObject) -> Option<AppStatus> {
    let value = serde_json::to_value(object).ok()?;
    AppStatus::from_object(&value)
}
