//! A release as canary-analyzer keeps it: what `release.requested` said, checked, in the form
//! stored in its lease record (so a replica that takes a release over needs nothing else).

use std::collections::BTreeMap;

use flotilla_proto::v1::{Canary, Release};
use serde::{Deserialize, Serialize};

/// One analysis a release names: an (Cluster)AnalysisTemplate and args of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub template: String,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    #[serde(default)]
    pub cluster_scope: bool,
}

/// A release to judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The id canary events are keyed by: `<app>-<version>` unless the release names one.
    pub release: String,
    pub change_id: String,
    pub app: String,
    pub version: String,
    #[serde(default)]
    pub previous_version: String,
    #[serde(default)]
    pub repo: String,
    #[serde(default)]
    pub sha: String,
    #[serde(default)]
    pub analysis: Vec<Named>,
}

impl Job {
    /// Checks a `release.requested`: an app and a version are needed to judge anything.
    pub fn from_proto(release: Release) -> Result<Job, String> {
        if release.app.trim().is_empty() || release.version.trim().is_empty() {
            return Err("the release names no app or no version".into());
        }
        if let Some(bad) = release
            .analysis
            .iter()
            .find(|a| a.template.trim().is_empty())
        {
            return Err(format!(
                "the release names an analysis without a template: {bad:?}"
            ));
        }
        let id = if release.release.is_empty() {
            format!("{}-{}", release.app, release.version)
        } else {
            release.release
        };
        let change_id = if release.change_id.is_empty() {
            format!("{}-{}", release.app, release.version)
        } else {
            release.change_id
        };
        Ok(Job {
            release: id,
            change_id,
            app: release.app,
            version: release.version,
            previous_version: release.previous_version,
            repo: release.repo,
            sha: release.sha,
            analysis: release
                .analysis
                .into_iter()
                .map(|a| Named {
                    template: a.template,
                    args: a.args.into_iter().collect(),
                    cluster_scope: a.cluster_scope,
                })
                .collect(),
        })
    }

    /// The lease bucket's key of this release: KV keys allow fewer characters than versions.
    pub fn key(&self) -> String {
        flotilla_bus::subject::sanitize_key(&self.release)
    }

    /// A canary event about this release, with what env-manager needs to finish the job.
    pub fn canary(&self) -> Canary {
        Canary {
            release: self.release.clone(),
            change_id: self.change_id.clone(),
            app: self.app.clone(),
            version: self.version.clone(),
            previous_version: self.previous_version.clone(),
            repo: self.repo.clone(),
            sha: self.sha.clone(),
            ..Default::default()
        }
    }

    /// The args every template gets from the release (those it declares are used; its own
    /// defaults fill the rest), then the release's args for that analysis, which win.
    pub fn args(&self, named: &Named, namespace: &str) -> Vec<(String, String)> {
        let mut args = vec![
            ("app".to_owned(), self.app.clone()),
            ("version".to_owned(), self.version.clone()),
            ("previous-version".to_owned(), self.previous_version.clone()),
            ("namespace".to_owned(), namespace.to_owned()),
        ];
        // An empty previous version (a first release) is no value: the template's default, or
        // its missing-arg error, says more than an empty string would.
        args.retain(|(_, value)| !value.is_empty());
        args.extend(named.args.iter().map(|(k, v)| (k.clone(), v.clone())));
        args
    }
}

#[cfg(test)]
mod tests {
    use flotilla_proto::v1::Analysis;

    use super::*;

    #[test]
    fn a_release_is_keyed_app_version_and_its_args_win_over_the_releases() {
        let job = Job::from_proto(Release {
            change_id: "ping-v2".into(),
            app: "ping".into(),
            version: "v2".into(),
            analysis: vec![Analysis {
                template: "web-status".into(),
                args: [("namespace".to_owned(), "prod".to_owned())].into(),
                cluster_scope: false,
            }],
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(job.release, "ping-v2");
        let args = job.args(&job.analysis[0], "default");
        // Later values win when bound; no previous version given, none passed.
        assert_eq!(
            args,
            [
                ("app".to_owned(), "ping".to_owned()),
                ("version".to_owned(), "v2".to_owned()),
                ("namespace".to_owned(), "default".to_owned()),
                ("namespace".to_owned(), "prod".to_owned()),
            ]
        );
        assert!(Job::from_proto(Release::default()).is_err());
    }
}
