//! The resources a fake server serves.

/// One kind of object the fake serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    /// Empty for the core group (`/api/v1`).
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    /// Whether `/status` exists and main writes leave `status` alone.
    pub status_subresource: bool,
}

impl Resource {
    pub fn new(group: &str, version: &str, kind: &str, plural: &str) -> Resource {
        Resource {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.to_owned(),
            namespaced: true,
            status_subresource: true,
        }
    }

    pub fn cluster_scoped(mut self) -> Resource {
        self.namespaced = false;
        self
    }

    pub fn without_status_subresource(mut self) -> Resource {
        self.status_subresource = false;
        self
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn job() -> Resource {
        Resource::new("batch", "v1", "Job", "jobs")
    }

    pub fn pod() -> Resource {
        Resource::new("", "v1", "Pod", "pods")
    }

    pub fn namespace() -> Resource {
        Resource::new("", "v1", "Namespace", "namespaces").cluster_scoped()
    }

    /// Argo CD's Application: its CRD declares `subresources: {}`, so no `/status`, and the
    /// controller writes status through the main resource.
    pub fn argo_application() -> Resource {
        Resource::new("argoproj.io", "v1alpha1", "Application", "applications")
            .without_status_subresource()
    }

    /// Argo Rollouts' Rollout (with a status subresource).
    pub fn argo_rollout() -> Resource {
        Resource::new("argoproj.io", "v1alpha1", "Rollout", "rollouts")
    }

    /// Argo Rollouts' AnalysisRun (with a status subresource).
    pub fn argo_analysis_run() -> Resource {
        Resource::new("argoproj.io", "v1alpha1", "AnalysisRun", "analysisruns")
    }
}
