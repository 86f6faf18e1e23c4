//! What the reaper sees of the cluster: Argo CD Applications and Namespaces labelled
//! `flotilla.dev/env` (the ApplicationSet's `env-<env>`, the env chart's child Applications
//! and the env's Namespace). Only labelled objects are ever listed, so only they can ever be
//! deleted; one list of each per sweep, however many envs there are.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams};
use kube::core::ObjectMeta;
use kube::{Api, Client};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The label naming the env an object belongs to.
pub const ENV_LABEL: &str = "flotilla.dev/env";

/// Which kind of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Application,
    Namespace,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Application => "Application",
            Kind::Namespace => "Namespace",
        }
    }
}

/// One labelled object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub kind: Kind,
    pub name: String,
    /// Its `flotilla.dev/env` label.
    pub env: String,
    pub created: Option<OffsetDateTime>,
}

impl Object {
    /// `Application argocd/env-pr-acme-ping-7`, `Namespace pr-acme-ping-7`.
    pub fn describe(&self, argocd_namespace: &str) -> String {
        match self.kind {
            Kind::Application => format!("Application {argocd_namespace}/{}", self.name),
            Kind::Namespace => format!("Namespace {}", self.name),
        }
    }
}

/// The Kubernetes API, as far as the reaper uses it.
#[derive(Clone)]
pub struct Cluster {
    applications: Api<DynamicObject>,
    namespaces: Api<Namespace>,
    argocd_namespace: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("argocd_namespace", &self.argocd_namespace)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    pub fn new(client: Client, argocd_namespace: &str) -> Cluster {
        let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "applications");
        Cluster {
            applications: Api::namespaced_with(client.clone(), argocd_namespace, &resource),
            namespaces: Api::all(client),
            argocd_namespace: argocd_namespace.to_owned(),
        }
    }

    pub fn argocd_namespace(&self) -> &str {
        &self.argocd_namespace
    }

    /// Every labelled Application and Namespace.
    pub async fn objects(&self) -> Result<Vec<Object>, String> {
        let labelled = ListParams::default().labels(ENV_LABEL);
        let applications = self
            .applications
            .list(&labelled)
            .await
            .map_err(|e| format!("list the Applications in {}: {e}", self.argocd_namespace))?;
        let namespaces = self
            .namespaces
            .list(&labelled)
            .await
            .map_err(|e| format!("list the Namespaces: {e}"))?;
        let mut objects: Vec<Object> = applications
            .items
            .iter()
            .filter_map(|app| object(Kind::Application, &app.metadata))
            .collect();
        objects.extend(
            namespaces
                .items
                .iter()
                .filter_map(|ns| object(Kind::Namespace, &ns.metadata)),
        );
        Ok(objects)
    }

    /// Deletes `object` (one the list returned, so labelled); gone already is fine.
    pub async fn delete(&self, object: &Object) -> Result<(), String> {
        let params = DeleteParams::background();
        let result = match object.kind {
            Kind::Application => self
                .applications
                .delete(&object.name, &params)
                .await
                .map(|_| ()),
            Kind::Namespace => self
                .namespaces
                .delete(&object.name, &params)
                .await
                .map(|_| ()),
        };
        match result {
            Ok(()) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
            Err(e) => Err(format!(
                "delete {}: {e}",
                object.describe(&self.argocd_namespace)
            )),
        }
    }
}

fn object(kind: Kind, meta: &ObjectMeta) -> Option<Object> {
    let env = meta.labels.as_ref()?.get(ENV_LABEL)?.clone();
    let created = meta
        .creation_timestamp
        .as_ref()
        .and_then(|t| OffsetDateTime::parse(&t.0.to_string(), &Rfc3339).ok());
    Some(Object {
        kind,
        name: meta.name.clone()?,
        env,
        created,
    })
}
