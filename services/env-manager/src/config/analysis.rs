//! `FLOTILLA_ANALYSIS`: which analyses (Argo Rollouts templates) each app's releases run.

use flotilla_proto::v1::Analysis;

use super::env;
use crate::error::Error;

/// Which analyses the releases of each app run (`FLOTILLA_ANALYSIS`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalysisMap {
    apps: Vec<(String, Vec<Analysis>)>,
}

impl AnalysisMap {
    /// Parses `APP=TEMPLATE[+TEMPLATE],...`; `*` matches every app not named.
    pub fn parse(text: &str) -> Result<AnalysisMap, Error> {
        let mut apps = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || {
                Error::Config(format!(
                    "{}: {entry:?} is not APP=TEMPLATE[+TEMPLATE]",
                    env::ANALYSIS
                ))
            };
            let (app, templates) = entry.split_once('=').ok_or_else(bad)?;
            let templates: Vec<Analysis> = templates
                .split('+')
                .map(str::trim)
                .map(|t| match t.strip_prefix("cluster:") {
                    Some(name) => (name.trim(), true),
                    None => (t, false),
                })
                .map(|(name, cluster_scope)| {
                    (!name.is_empty()).then(|| Analysis {
                        template: name.to_owned(),
                        cluster_scope,
                        ..Default::default()
                    })
                })
                .collect::<Option<_>>()
                .ok_or_else(bad)?;
            if app.trim().is_empty() {
                return Err(bad());
            }
            apps.push((app.trim().to_owned(), templates));
        }
        Ok(AnalysisMap { apps })
    }

    /// The analyses of `app`'s releases: its own entry, else `*`'s, else none.
    pub fn for_app(&self, app: &str) -> Vec<Analysis> {
        let find = |name: &str| self.apps.iter().find(|(a, _)| a == name);
        find(app)
            .or_else(|| find("*"))
            .map(|(_, analyses)| analyses.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyses_are_named_per_app_with_a_default_for_the_rest() {
        let map =
            AnalysisMap::parse("ping=success-rate+latency, *=cluster:error-rate").expect("valid");
        let ping: Vec<_> = map
            .for_app("ping")
            .into_iter()
            .map(|a| a.template)
            .collect();
        assert_eq!(ping, ["success-rate", "latency"]);
        let other = map.for_app("web");
        assert_eq!(other.len(), 1);
        assert!(other[0].cluster_scope && other[0].template == "error-rate");
        assert!(AnalysisMap::default().for_app("ping").is_empty());
        for bad in ["ping", "=x", "ping=", "ping=a+"] {
            assert!(AnalysisMap::parse(bad).is_err(), "{bad:?}");
        }
    }
}
