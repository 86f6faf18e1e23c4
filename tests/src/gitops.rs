//! The GitOps repository of a run: a real bare repository in a temp dir, seeded with a
//! production manifest holding one app per source repository, and read back commit by commit
//! to count what env-manager wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use git2::{Delta, DiffOptions, Repository, Signature, Sort};
use serde_json::{Value, json};

/// The production manifest's path, as env-manager defaults it.
pub const PRODUCTION: &str = "apps/production.json";
/// Where env files live.
pub const ENVS_DIR: &str = "envs";
/// The version every app runs before the run: older than any version the run builds.
pub const SEED_VERSION: &str = "v20200101000000-0000000";

/// Creates a bare repository at `path` whose `main` holds `apps/production.json` with `apps`.
pub fn seed(path: &Path, apps: &[String]) -> Result<()> {
    let repo = Repository::init_bare(path).context("init the bare GitOps repository")?;
    let manifest: serde_json::Map<String, Value> = apps
        .iter()
        .map(|app| {
            (
                app.clone(),
                json!({"image": format!("registry/apps/{app}"), "version": SEED_VERSION}),
            )
        })
        .collect();
    let text = serde_json::to_string_pretty(&json!({"apps": manifest}))? + "\n";
    let blob = repo.blob(text.as_bytes())?;
    let mut dir = repo.treebuilder(None)?;
    dir.insert("production.json", blob, 0o100644)?;
    let dir = dir.write()?;
    let mut root = repo.treebuilder(None)?;
    root.insert("apps", dir, 0o040000)?;
    let tree = repo.find_tree(root.write()?)?;
    let author = Signature::now("reliability suite", "suite@flotilla.invalid")?;
    repo.commit(
        Some("refs/heads/main"),
        &author,
        &author,
        "Production manifest",
        &tree,
        &[],
    )?;
    repo.set_head("refs/heads/main")?;
    Ok(())
}

/// What the history of `main` says env-manager did.
#[derive(Debug, Default)]
pub struct History {
    /// Commits on `main`, the seed included.
    pub commits: usize,
    /// Per env file: the change ids it was written with, one entry per commit that wrote it.
    pub env_writes: BTreeMap<String, Vec<String>>,
    /// Per env file: how many commits removed it.
    pub env_removals: BTreeMap<String, usize>,
    /// Per app: the versions production was set to, in commit order (rollbacks included).
    pub production: BTreeMap<String, Vec<String>>,
    /// Env files present at the head.
    pub live_envs: Vec<String>,
}

impl History {
    /// Reads `main` of the repository at `path`, oldest commit first.
    pub fn read(path: &Path) -> Result<History> {
        let repo = Repository::open(path).context("open the GitOps repository")?;
        let head = repo
            .find_reference("refs/heads/main")?
            .peel_to_commit()
            .context("main")?;
        let mut walk = repo.revwalk()?;
        walk.push(head.id())?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
        let mut history = History::default();
        for oid in walk {
            let commit = repo.find_commit(oid?)?;
            history.commits += 1;
            let tree = commit.tree()?;
            let parent = commit.parents().next().map(|p| p.tree()).transpose()?;
            let mut options = DiffOptions::new();
            let diff = repo.diff_tree_to_tree(parent.as_ref(), Some(&tree), Some(&mut options))?;
            for delta in diff.deltas() {
                let path = delta
                    .new_file()
                    .path()
                    .or_else(|| delta.old_file().path())
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                history.record(&repo, &path, delta.status(), delta.new_file().id())?;
            }
        }
        let tree = head.tree()?;
        if let Ok(entry) = tree.get_path(Path::new(ENVS_DIR)) {
            let dir = repo.find_tree(entry.id())?;
            history.live_envs = dir.iter().filter_map(|e| e.name().map(env_of)).collect();
        }
        Ok(history)
    }

    fn record(
        &mut self,
        repo: &Repository,
        path: &Path,
        status: Delta,
        blob: git2::Oid,
    ) -> Result<()> {
        let text = path.to_string_lossy();
        if let Some(file) = text.strip_prefix(&format!("{ENVS_DIR}/")) {
            let env = env_of(file);
            match status {
                Delta::Deleted => *self.env_removals.entry(env).or_default() += 1,
                _ => {
                    let content: Value = serde_json::from_slice(repo.find_blob(blob)?.content())
                        .with_context(|| format!("{text} is not JSON"))?;
                    // A write that only marks the file suspended keeps its change: it is not a
                    // second write of the change (and this suite does not hibernate).
                    let change = content["change_id"].as_str().unwrap_or_default().to_owned();
                    self.env_writes.entry(env).or_default().push(change);
                }
            }
        } else if text == PRODUCTION && status != Delta::Deleted {
            let content: Value = serde_json::from_slice(repo.find_blob(blob)?.content())
                .context("the production manifest is not JSON")?;
            let apps = content["apps"].as_object().cloned().unwrap_or_default();
            for (app, spec) in apps {
                let version = spec["version"].as_str().unwrap_or_default().to_owned();
                let versions = self.production.entry(app).or_default();
                if versions.last() != Some(&version) {
                    versions.push(version);
                }
            }
        }
        Ok(())
    }
}

fn env_of(file: &str) -> String {
    file.strip_suffix(".json").unwrap_or(file).to_owned()
}

/// Temp paths of a run's repository: the bare remote and the workers' working copies beside it.
#[derive(Debug)]
pub struct GitopsDirs {
    pub remote: PathBuf,
    /// `FLOTILLA_GITOPS_DIR`: env-manager's working copy; sync-watcher and the reaper keep
    /// their mirrors beside it.
    pub work: PathBuf,
}

impl GitopsDirs {
    pub fn under(root: &Path) -> GitopsDirs {
        GitopsDirs {
            remote: root.join("gitops.git"),
            work: root.join("gitops-work"),
        }
    }
}
