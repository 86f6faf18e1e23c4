//! A dry run's commit: the change computed against the remote's head and recorded, file by
//! file, instead of committed and pushed.

use std::sync::PoisonError;

use flotilla_bus::dry_run::{EffectKind, Recorder};

use super::ops::{head_tree, sync};
use super::{FileChange, GitError, GitOps, Pushed, Snapshot};

/// Lines of context kept around each changed line of a diff.
const CONTEXT: usize = 2;
/// Files longer than this (in lines) are shown whole rather than diffed.
const DIFF_MAX_LINES: usize = 2000;

impl GitOps {
    /// [`GitOps::commit`] in a dry run.
    pub(super) async fn dry_commit<T, E, F>(
        &self,
        recorder: Recorder,
        message: String,
        mut change: F,
    ) -> Result<(Pushed, T), E>
    where
        T: Send + 'static,
        E: From<GitError> + Send + 'static,
        F: FnMut(&Snapshot<'_>) -> Result<(Vec<FileChange>, T), E> + Send + 'static,
    {
        let inner = self.inner.clone();
        let computed = tokio::task::spawn_blocking(move || {
            let repo = inner.repo.lock().unwrap_or_else(PoisonError::into_inner);
            // Fetching writes only into the local working copy: the remote is read.
            let head = sync(&repo, &inner.settings)?;
            let head_tree = head_tree(&repo, head)?;
            let tree = Snapshot::new(&repo, head_tree.as_ref(), None);
            let (files, value) = change(&tree)?;
            let mut changed = false;
            for file in &files {
                changed |= record_file(&recorder, &tree, file)?;
            }
            let branch = &inner.settings.branch;
            if changed {
                recorder.record(
                    EffectKind::Git,
                    format!("commit and push to {branch}: {message}"),
                );
            } else {
                recorder.record(
                    EffectKind::Git,
                    format!("no commit: {branch} already holds this change"),
                );
            }
            let pushed = Pushed {
                revision: head.map(|h| h.to_string()),
                committed: false,
                grouped: 0,
            };
            Ok::<_, E>((pushed, value))
        })
        .await;
        match computed {
            Ok(result) => result,
            Err(e) => Err(GitError::Task(e.to_string()).into()),
        }
    }
}

/// Records what `file` would change in `tree`; whether it changes anything.
fn record_file(
    recorder: &Recorder,
    tree: &Snapshot<'_>,
    file: &FileChange,
) -> Result<bool, GitError> {
    match file {
        FileChange::Write { path, contents } => {
            let new = String::from_utf8_lossy(contents);
            match tree.read(path)? {
                Some(old) if old == *contents => {
                    recorder.record(EffectKind::Git, format!("{path}: unchanged"));
                    Ok(false)
                }
                Some(old) => {
                    let old = String::from_utf8_lossy(&old);
                    recorder.record_with(
                        EffectKind::Git,
                        format!("write {path}"),
                        diff(&old, &new),
                    );
                    Ok(true)
                }
                None => {
                    recorder.record_with(
                        EffectKind::Git,
                        format!("write {path} (new file)"),
                        new.into_owned(),
                    );
                    Ok(true)
                }
            }
        }
        FileChange::Remove { path } => {
            let exists = tree.read(path)?.is_some();
            if exists {
                recorder.record(EffectKind::Git, format!("remove {path}"));
            } else {
                recorder.record(
                    EffectKind::Git,
                    format!("{path}: absent, nothing to remove"),
                );
            }
            Ok(exists)
        }
    }
}

/// A short line diff of `old` to `new`: changed lines marked `-`/`+`, with [`CONTEXT`] lines
/// around them and `...` where unchanged lines were left out.
pub(super) fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len().max(b.len()) > DIFF_MAX_LINES {
        return new.to_owned();
    }
    let lines = edit_script(&a, &b);
    let near_change = |i: usize| {
        let from = i.saturating_sub(CONTEXT);
        let to = (i + CONTEXT + 1).min(lines.len());
        lines[from..to].iter().any(|(mark, _)| *mark != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (i, (mark, line)) in lines.iter().enumerate() {
        if near_change(i) {
            out.push(*mark);
            out.push(' ');
            out.push_str(line);
            out.push('\n');
            skipped = false;
        } else if !skipped {
            out.push_str("...\n");
            skipped = true;
        }
    }
    out
}

/// Every line of `a` and `b` in order, marked ` ` (in both), `-` (only in `a`) or `+` (only in
/// `b`), from their longest common subsequence.
fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(char, &'a str)> {
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut lines = Vec::with_capacity(a.len().max(b.len()));
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            lines.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(('-', a[i]));
            i += 1;
        } else {
            lines.push(('+', b[j]));
            j += 1;
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::diff;

    #[test]
    fn a_diff_shows_changed_lines_with_context_and_elides_the_rest() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\ne\nF\ng\nh\n";
        assert_eq!(diff(old, new), "...\n  d\n  e\n- f\n+ F\n  g\n  h\n");
    }

    #[test]
    fn added_and_removed_lines_are_marked() {
        assert_eq!(diff("x\ny\n", "x\nz\ny\n"), "  x\n+ z\n  y\n");
        assert_eq!(diff("x\ny\n", "y\n"), "- x\n  y\n");
    }
}
