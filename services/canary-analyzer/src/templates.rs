//! The analysis templates a release names, read from `FLOTILLA_ANALYSIS_DIR`: every `*.yaml` /
//! `*.yml` file (several documents a file allowed), each `AnalysisTemplate` or
//! `ClusterAnalysisTemplate` found by its `metadata.name`. Read at each release, so an edited
//! template counts from the next release on without a restart.

use std::path::{Path, PathBuf};

use flotilla_analysis::Template;

/// Where templates come from.
#[derive(Debug, Clone, Default)]
pub struct Library {
    dir: Option<PathBuf>,
}

impl Library {
    pub fn new(dir: Option<PathBuf>) -> Library {
        Library { dir }
    }

    /// The template `name` (a `ClusterAnalysisTemplate` when `cluster_scope`), or why not.
    pub fn find(&self, name: &str, cluster_scope: bool) -> Result<Template, String> {
        let Some(dir) = &self.dir else {
            return Err(format!(
                "no template {name}: FLOTILLA_ANALYSIS_DIR is not set and there is no cluster"
            ));
        };
        let kind = if cluster_scope {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        };
        let mut broken = Vec::new();
        for path in yaml_files(dir)? {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    broken.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            for document in documents(&text) {
                match Template::from_yaml(document) {
                    Ok(template) if template.name == name && template.kind == kind => {
                        return Ok(template);
                    }
                    Ok(_) => {}
                    // Another template's mistake is only worth naming when ours is missing.
                    Err(e) => broken.push(format!("{}: {e}", path.display())),
                }
            }
        }
        let mut why = format!("no {kind} named {name} in {}", dir.display());
        if !broken.is_empty() {
            why.push_str(&format!(" (unreadable: {})", broken.join("; ")));
        }
        Err(why)
    }
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The YAML documents of `text`, split at `---` lines; empty ones (comments only) left out.
fn documents(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" {
            out.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    out.push(&text[start..]);
    out.into_iter()
        .filter(|doc| {
            doc.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: web-status
spec:
  metrics:
  - name: status
    successCondition: result == \"ok\"
    provider:
      web:
        url: http://127.0.0.1:1/status
";

    #[test]
    fn templates_are_found_by_name_and_kind_across_documents() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster = WEB
            .replace("kind: AnalysisTemplate", "kind: ClusterAnalysisTemplate")
            .replace("web-status", "cluster-status");
        std::fs::write(
            dir.path().join("all.yaml"),
            format!("# two\n---\n{WEB}---\n{cluster}"),
        )
        .expect("write");
        std::fs::write(dir.path().join("notes.txt"), "kind: nothing").expect("write");
        let library = Library::new(Some(dir.path().to_owned()));
        assert_eq!(
            library.find("web-status", false).expect("found").name,
            "web-status"
        );
        assert_eq!(
            library.find("cluster-status", true).expect("found").kind,
            "ClusterAnalysisTemplate"
        );
        let missing = library
            .find("cluster-status", false)
            .expect_err("wrong kind");
        assert!(
            missing.contains("no AnalysisTemplate named cluster-status"),
            "{missing}"
        );
    }

    #[test]
    fn a_broken_file_is_named_when_the_template_is_missing() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("bad.yaml"), "kind: [").expect("write");
        let why = Library::new(Some(dir.path().to_owned()))
            .find("web-status", false)
            .expect_err("missing");
        assert!(why.contains("bad.yaml"), "{why}");
        let why = Library::new(None)
            .find("web-status", false)
            .expect_err("no dir");
        assert!(why.contains("FLOTILLA_ANALYSIS_DIR"), "{why}");
    }
}
