//! What the remote-transport tests share: a write through env-manager's GitOps working copy, and
//! reading a file back from the bare repository it pushed to.

use std::path::Path;

use anyhow::Result;
use env_manager::gitops::{FileChange, GitError, GitOps};
use git2::Repository;

/// Commits `{}` at `path` and pushes it, as a handler's write would.
pub async fn write(gitops: &GitOps, path: &str, message: &str) -> Result<(), GitError> {
    let files = vec![FileChange::Write {
        path: path.into(),
        contents: b"{}\n".to_vec(),
    }];
    gitops
        .commit::<_, GitError, _>(message.into(), move |_| Ok((files.clone(), ())))
        .await
        .map(|_| ())
}

/// The contents of `path` at the head of `main` in the bare repository `bare`; `None` when the
/// branch or the file does not exist.
pub fn head_file(bare: &Path, path: &str) -> Result<Option<Vec<u8>>> {
    let repo = Repository::open_bare(bare)?;
    let Ok(head) = repo.find_reference("refs/heads/main") else {
        return Ok(None);
    };
    let tree = head.peel_to_tree()?;
    let Ok(entry) = tree.get_path(Path::new(path)) else {
        return Ok(None);
    };
    Ok(Some(repo.find_blob(entry.id())?.content().to_vec()))
}
