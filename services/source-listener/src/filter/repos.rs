//! Per-repository rules: the branch that counts as the default one, the label a pull request
//! needs before it gets a preview, and the paths whose changes matter.
//!
//! ```yaml
//! repos:
//!   - repo: acme/ping               # owner/name; a glob such as acme/* matches several
//!     defaultBranch: trunk          # overrides the default branch the provider reports
//!     previewLabel: preview         # pull requests get a preview only with this label
//!     paths: ["src/**", "Cargo.*"]  # a branch push matters when it changes one of these...
//!     ignorePaths: ["docs/**"]      # ...and the change is not only under these
//! ```
//!
//! The first entry whose `repo` matches applies; write specific entries before globs.

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use flotilla_proto::v1;

/// GitHub lists at most this many commits of a push; a push with as many may have had more, whose
/// files are unknown.
const GITHUB_COMMIT_LIMIT: usize = 2048;

/// One entry of `repos:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RepoSpec {
    pub repo: String,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub preview_label: Option<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub ignore_paths: Vec<String>,
}

/// The compiled `repos:` entries, in file order.
#[derive(Debug, Default)]
pub struct Repos {
    rules: Vec<RepoRule>,
}

#[derive(Debug)]
struct RepoRule {
    repo: GlobMatcher,
    default_branch: Option<String>,
    preview_label: Option<String>,
    paths: Option<GlobSet>,
    ignore_paths: Option<GlobSet>,
}

impl RepoSpec {
    /// Checks the entry and compiles its globs. The error is the reason alone.
    fn compile(self) -> Result<RepoRule, String> {
        let repo = self.repo.trim();
        if repo.is_empty() || !repo.contains('/') {
            return Err(format!(
                "`repo: {repo}` is not owner/name (a glob such as acme/* is fine)"
            ));
        }
        // Providers treat owner and repository names case-insensitively.
        let repo = GlobBuilder::new(repo)
            .case_insensitive(true)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("`repo: {repo}`: {e}"))?
            .compile_matcher();
        let text = |value: Option<String>, field: &str| -> Result<Option<String>, String> {
            match value.map(|v| v.trim().to_owned()) {
                Some(v) if v.is_empty() => Err(format!("`{field}` is empty")),
                other => Ok(other),
            }
        };
        Ok(RepoRule {
            repo,
            default_branch: text(self.default_branch, "defaultBranch")?,
            preview_label: text(self.preview_label, "previewLabel")?,
            paths: globs(&self.paths, "paths")?,
            ignore_paths: globs(&self.ignore_paths, "ignorePaths")?,
        })
    }
}

/// Compiles path globs; `*` stays within a directory, `**` crosses them, as in `.gitignore`.
fn globs(patterns: &[String], field: &str) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let pattern = pattern.trim().trim_start_matches('/');
        // `docs/` means everything under docs, as a reader of the file would expect.
        let pattern = match pattern.strip_suffix('/') {
            Some(dir) => format!("{dir}/**"),
            None => pattern.to_owned(),
        };
        let glob = GlobBuilder::new(&pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("`{field}`: {e}"))?;
        set.add(glob);
    }
    set.build().map(Some).map_err(|e| format!("`{field}`: {e}"))
}

impl Repos {
    /// Compiles the entries; the error names the entry (by position and repo) and the reason.
    pub fn compile(specs: Vec<RepoSpec>) -> Result<Repos, (String, String)> {
        let mut rules = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let name = format!("repos[{i}] ({})", spec.repo.trim());
            rules.push(spec.compile().map_err(|reason| (name, reason))?);
        }
        Ok(Repos { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn find(&self, repo: &str) -> Option<&RepoRule> {
        self.rules.iter().find(|rule| rule.repo.is_match(repo))
    }

    /// Applies the repository's rules to a push: sets its default branch, and returns why the
    /// push is to be ignored when none of the paths it changed matter.
    pub fn push(&self, push: &mut v1::Push) -> Option<String> {
        let rule = self.find(&push.repo)?;
        if let Some(branch) = &rule.default_branch {
            push.default_branch.clone_from(branch);
        }
        if push.branch.is_empty() || (rule.paths.is_none() && rule.ignore_paths.is_none()) {
            return None;
        }
        // Only a push whose every changed file is known can be shown not to matter.
        if push.commits.is_empty()
            || push.commits_truncated
            || push.commits.len() >= GITHUB_COMMIT_LIMIT
        {
            return None;
        }
        let mut changed = push
            .commits
            .iter()
            .flat_map(|c| c.added.iter().chain(&c.modified).chain(&c.removed))
            .peekable();
        let first = changed.peek().cloned()?;
        if changed.any(|path| rule.matters(path)) {
            return None;
        }
        Some(format!(
            "push to `{}` of {} changes no path that matters (e.g. `{first}`; see `paths` and \
             `ignorePaths`)",
            push.branch, push.repo
        ))
    }

    /// Returns why a pull request event is to be ignored under the repository's preview label,
    /// if it has one. `closed` always passes, so a preview is torn down; `unlabeled` passes when
    /// the preview label itself was removed.
    pub fn pull_request(&self, pr: &v1::PullRequest) -> Option<String> {
        let label = self.find(&pr.repo)?.preview_label.as_deref()?;
        let is_label = |name: &str| name.eq_ignore_ascii_case(label);
        let passes = match pr.action.as_str() {
            "closed" => true,
            "labeled" | "unlabeled" => is_label(&pr.label),
            _ => pr.labels.iter().any(|name| is_label(name)),
        };
        if passes {
            return None;
        }
        Some(match pr.action.as_str() {
            "labeled" | "unlabeled" => format!(
                "label `{}` of {}#{} is not the preview label `{label}`",
                pr.label, pr.repo, pr.number
            ),
            _ => format!(
                "{}#{} does not carry the preview label `{label}`",
                pr.repo, pr.number
            ),
        })
    }
}

impl RepoRule {
    fn matters(&self, path: &str) -> bool {
        let wanted = self.paths.as_ref().is_none_or(|set| set.is_match(path));
        let ignored = self
            .ignore_paths
            .as_ref()
            .is_some_and(|set| set.is_match(path));
        wanted && !ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repos(yaml: &str) -> Repos {
        let specs: Vec<RepoSpec> = serde_yaml_ng::from_str(yaml).expect("valid YAML");
        Repos::compile(specs).expect("valid rules")
    }

    fn push(repo: &str, files: &[&[&str]]) -> v1::Push {
        v1::Push {
            repo: repo.into(),
            branch: "main".into(),
            default_branch: "main".into(),
            commits: files
                .iter()
                .map(|modified| v1::Commit {
                    modified: modified.iter().map(|f| (*f).to_owned()).collect(),
                    ..v1::Commit::default()
                })
                .collect(),
            ..v1::Push::default()
        }
    }

    fn pr(action: &str, labels: &[&str], label: &str) -> v1::PullRequest {
        v1::PullRequest {
            repo: "acme/ping".into(),
            number: 7,
            action: action.into(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            label: label.into(),
            ..v1::PullRequest::default()
        }
    }

    #[test]
    fn a_push_that_only_touches_ignored_paths_is_ignored() {
        let rules = repos("- {repo: acme/ping, ignorePaths: [docs/, '**/*.md']}");
        let why = rules
            .push(&mut push(
                "acme/ping",
                &[&["docs/guide.md"], &["README.md"]],
            ))
            .expect("only docs");
        assert!(why.contains("docs/guide.md"), "{why}");
        assert_eq!(
            rules.push(&mut push("acme/ping", &[&["docs/a.md"], &["src/main.rs"]])),
            None,
            "one commit touches code"
        );
        assert_eq!(
            rules.push(&mut push("acme/other", &[&["docs/a.md"]])),
            None,
            "another repository has no rule"
        );
    }

    #[test]
    fn paths_name_what_matters_and_ignore_paths_carve_out_of_them() {
        let rules = repos(
            "- {repo: 'acme/*', paths: ['src/**', Cargo.toml], ignorePaths: ['src/**/*.md']}",
        );
        for (files, matters) in [
            (&["src/main.rs"][..], true),
            (&["Cargo.toml"][..], true),
            (&["sub/Cargo.toml"][..], false),
            (&["src/notes.md"][..], false),
            (&["deploy/k8s.yaml"][..], false),
        ] {
            let ignored = rules.push(&mut push("acme/ping", &[files])).is_some();
            assert_eq!(ignored, !matters, "{files:?}");
        }
    }

    #[test]
    fn a_push_whose_files_are_not_all_known_always_matters() {
        let rules = repos("- {repo: acme/ping, ignorePaths: [docs/]}");
        assert_eq!(rules.push(&mut push("acme/ping", &[])), None, "no commits");
        assert_eq!(rules.push(&mut push("acme/ping", &[&[]])), None, "no files");
        let mut truncated = push("acme/ping", &[&["docs/a.md"]]);
        truncated.commits_truncated = true;
        assert_eq!(rules.push(&mut truncated), None, "more commits than listed");
        let mut tag = push("acme/ping", &[&["docs/a.md"]]);
        tag.branch.clear();
        tag.tag = "v1".into();
        assert_eq!(rules.push(&mut tag), None, "tags are not filtered by path");
    }

    #[test]
    fn the_configured_default_branch_replaces_the_providers() {
        let rules = repos(
            "- {repo: ACME/Ping, defaultBranch: trunk}\n- {repo: 'acme/*', defaultBranch: main}",
        );
        let mut event = push("acme/ping", &[&["src/lib.rs"]]);
        event.default_branch = "master".into();
        assert_eq!(rules.push(&mut event), None);
        assert_eq!(
            event.default_branch, "trunk",
            "the first matching entry wins"
        );
    }

    #[test]
    fn without_the_preview_label_only_closing_passes() {
        let rules = repos("- {repo: acme/ping, previewLabel: preview}");
        for (action, labels, label, passes) in [
            ("opened", &[][..], "", false),
            ("opened", &["Preview"][..], "", true),
            ("synchronize", &["bug"][..], "", false),
            ("synchronize", &["bug", "preview"][..], "", true),
            ("labeled", &["preview"][..], "preview", true),
            ("labeled", &["preview", "bug"][..], "bug", false),
            ("unlabeled", &[][..], "preview", true),
            ("unlabeled", &["preview"][..], "bug", false),
            ("closed", &[][..], "", true),
        ] {
            let why = rules.pull_request(&pr(action, labels, label));
            assert_eq!(
                why.is_none(),
                passes,
                "{action} {labels:?} {label}: {why:?}"
            );
            if let Some(why) = why {
                assert!(why.contains("`preview`"), "{why}");
            }
        }
        let other = Repos::default();
        assert_eq!(other.pull_request(&pr("opened", &[], "")), None);
    }

    #[test]
    fn entries_that_cannot_work_are_refused_with_the_reason() {
        for (yaml, reason) in [
            ("- {repo: ping}", "owner/name"),
            ("- {repo: 'acme/[', paths: [src]}", "repo"),
            ("- {repo: acme/ping, paths: ['src/[']}", "paths"),
            ("- {repo: acme/ping, previewLabel: ' '}", "previewLabel"),
        ] {
            let specs: Vec<RepoSpec> = serde_yaml_ng::from_str(yaml).expect("valid YAML");
            let (name, why) = Repos::compile(specs).expect_err(yaml);
            assert!(name.starts_with("repos[0]"), "{name}");
            assert!(why.contains(reason), "{yaml}: {why}");
        }
        let unknown = serde_yaml_ng::from_str::<Vec<RepoSpec>>("- {repo: a/b, preview: x}");
        assert!(unknown.is_err(), "unknown keys are refused");
    }
}
