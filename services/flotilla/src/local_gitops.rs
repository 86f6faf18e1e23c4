//! The GitOps repository `flotilla up` creates when none is configured: a bare repository under
//! the data dir whose first commit holds a production manifest with the example app `ping`.

use std::path::{Path, PathBuf};

use git2::{Repository, Signature};

/// The version of ping in a new repository's production manifest.
pub const SEED_VERSION: &str = "v20240101000000-0000000";

/// The production manifest of a new repository: the README's example app `ping` (at
/// [`SEED_VERSION`]), so that a `build.succeeded` for it becomes an environment instead of a
/// dead letter.
const SEED_PRODUCTION: &str = r#"{
  "apps": {
    "ping": {
      "image": "registry/apps/ping",
      "version": "v20240101000000-0000000"
    }
  }
}
"#;

/// `<data_dir>/gitops.git`, created with `apps/production.json` on `branch` when missing.
pub fn ensure(data_dir: &Path, branch: &str) -> Result<PathBuf, git2::Error> {
    let path = data_dir.join("gitops.git");
    if path.join("HEAD").is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| git2::Error::from_str(&format!("create {}: {e}", data_dir.display())))?;
    let repo = Repository::init_bare(&path)?;
    let blob = repo.blob(SEED_PRODUCTION.as_bytes())?;
    let mut apps = repo.treebuilder(None)?;
    apps.insert("production.json", blob, 0o100644)?;
    let apps = apps.write()?;
    let mut root = repo.treebuilder(None)?;
    root.insert("apps", apps, 0o040000)?;
    let tree = repo.find_tree(root.write()?)?;
    let author = Signature::now("flotilla up", "flotilla@localhost")?;
    let reference = format!("refs/heads/{branch}");
    repo.commit(
        Some(&reference),
        &author,
        &author,
        "Production manifest with the example app ping",
        &tree,
        &[],
    )?;
    repo.set_head(&reference)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_repository_holds_the_example_production_manifest_and_is_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = ensure(dir.path(), "main").expect("created");
        let repo = Repository::open_bare(&path).expect("bare repo");
        let head = repo.head().expect("head").peel_to_commit().expect("commit");
        let entry = head
            .tree()
            .expect("tree")
            .get_path(Path::new("apps/production.json"))
            .expect("manifest");
        let blob = repo.find_blob(entry.id()).expect("blob");
        assert_eq!(blob.content(), SEED_PRODUCTION.as_bytes());
        let manifest: serde_json::Value = serde_json::from_slice(blob.content()).expect("JSON");
        assert_eq!(manifest["apps"]["ping"]["version"], SEED_VERSION);
        assert_eq!(ensure(dir.path(), "main").expect("reused"), path);
        assert_eq!(
            repo.head().expect("head").target(),
            Some(head.id()),
            "no new commit"
        );
    }
}
