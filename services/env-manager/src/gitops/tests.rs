//! The working copy against real repositories in temp dirs: a bare "remote" and clones of it.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use git2::{Repository, ResetType, Signature};

use super::*;

const REMOTE: &str = "origin";

/// A bare remote with one commit on `main`, and a place for working copies.
struct Remote {
    dir: tempfile::TempDir,
}

impl Remote {
    fn new() -> Result<Remote> {
        let remote = Remote {
            dir: tempfile::tempdir()?,
        };
        Repository::init_bare(remote.url())?;
        remote.push_as_someone_else("apps/production.json", b"{\"apps\": {}}\n")?;
        Ok(remote)
    }

    fn url(&self) -> PathBuf {
        self.dir.path().join("remote.git")
    }

    fn settings(&self, name: &str) -> Settings {
        Settings {
            url: self.url().display().to_string(),
            branch: "main".into(),
            dir: self.dir.path().join(name),
            credentials: Credentials::default(),
            push_attempts: 3,
        }
    }

    /// What a person does: clone, commit a file, push.
    fn push_as_someone_else(&self, path: &str, contents: &[u8]) -> Result<()> {
        let dir = tempfile::tempdir()?;
        let repo = Repository::init(dir.path())?;
        repo.remote(REMOTE, &self.url().display().to_string())?;
        let mut remote = repo.find_remote(REMOTE)?;
        remote.fetch(&["+refs/heads/main:refs/remotes/origin/main"], None, None)?;
        let parent = match repo.find_reference("refs/remotes/origin/main") {
            Ok(r) => Some(repo.find_commit(r.target().context("direct ref")?)?),
            Err(_) => None,
        };
        if let Some(parent) = &parent {
            repo.reset(parent.as_object(), ResetType::Hard, None)?;
        }
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().context("file in a dir")?)?;
        std::fs::write(&full, contents)?;
        let mut index = repo.index()?;
        index.add_path(Path::new(path))?;
        let tree = repo.find_tree(index.write_tree()?)?;
        let someone = Signature::now("someone else", "someone@example.com")?;
        let parents: Vec<_> = parent.iter().collect();
        let commit = repo.commit(None, &someone, &someone, "by hand", &tree, &parents)?;
        repo.reference("refs/heads/main", commit, true, "test")?;
        remote.push(&["refs/heads/main:refs/heads/main"], None)?;
        Ok(())
    }

    fn repo(&self) -> Result<Repository> {
        Ok(Repository::open_bare(self.url())?)
    }

    /// A file at the remote's head, `None` when absent.
    fn file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let repo = self.repo()?;
        let tree = repo.find_reference("refs/heads/main")?.peel_to_tree()?;
        let Ok(entry) = tree.get_path(Path::new(path)) else {
            return Ok(None);
        };
        Ok(Some(repo.find_blob(entry.id())?.content().to_vec()))
    }

    fn commits(&self) -> Result<usize> {
        let repo = Repository::open_bare(self.url())?;
        let mut walk = repo.revwalk()?;
        walk.push_ref("refs/heads/main")?;
        Ok(walk.count())
    }
}

fn write(path: &str, contents: &[u8]) -> Vec<FileChange> {
    vec![FileChange::Write {
        path: path.into(),
        contents: contents.to_vec(),
    }]
}

async fn write_file(gitops: &GitOps, path: &str, contents: &[u8]) -> Result<Pushed> {
    let files = write(path, contents);
    let (pushed, ()) = gitops
        .commit::<_, GitError, _>("write".into(), move |_| Ok((files.clone(), ())))
        .await?;
    Ok(pushed)
}

#[tokio::test]
async fn a_written_file_is_committed_and_pushed_to_the_remote_branch() -> Result<()> {
    let remote = Remote::new()?;
    let gitops = GitOps::open(remote.settings("work")).await?;

    let pushed = write_file(&gitops, "envs/pr-ping-1.json", b"{}\n").await?;

    assert!(pushed.committed);
    let repo = remote.repo()?;
    let head = repo.find_reference("refs/heads/main")?.peel_to_commit()?;
    assert_eq!(
        pushed.revision.as_deref(),
        Some(head.id().to_string().as_str())
    );
    assert_eq!(
        remote.file("envs/pr-ping-1.json")?.as_deref(),
        Some(&b"{}\n"[..])
    );
    assert_eq!(head.author().name(), Some("flotilla env-manager"));
    assert_eq!(head.message(), Some("write"));
    assert_eq!(remote.commits()?, 2);
    Ok(())
}

#[tokio::test]
async fn writing_the_same_file_again_makes_no_new_commit() -> Result<()> {
    let remote = Remote::new()?;
    let gitops = GitOps::open(remote.settings("work")).await?;

    let first = write_file(&gitops, "envs/a.json", b"same\n").await?;
    let second = write_file(&gitops, "envs/a.json", b"same\n").await?;

    assert!(first.committed);
    assert!(!second.committed);
    assert_eq!(first.revision, second.revision);
    assert_eq!(remote.commits()?, 2);
    Ok(())
}

#[tokio::test]
async fn a_push_rejected_because_someone_else_pushed_is_redone_on_their_commit() -> Result<()> {
    let remote = Arc::new(Remote::new()?);
    let gitops = GitOps::open(remote.settings("work")).await?;
    let calls = Arc::new(AtomicUsize::new(0));

    let (pushed, ()) = {
        let (remote, calls) = (remote.clone(), calls.clone());
        gitops
            .commit::<_, GitError, _>("mine".into(), move |_| {
                // Between our fetch and our push, a person pushes: our first push is rejected.
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    remote
                        .push_as_someone_else("README.md", b"theirs\n")
                        .map_err(|e| GitError::Task(e.to_string()))?;
                }
                Ok((write("envs/mine.json", b"mine\n"), ()))
            })
            .await?
    };

    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the change is computed again on the new head"
    );
    assert!(pushed.committed);
    assert_eq!(remote.file("README.md")?.as_deref(), Some(&b"theirs\n"[..]));
    assert_eq!(
        remote.file("envs/mine.json")?.as_deref(),
        Some(&b"mine\n"[..])
    );
    let repo = remote.repo()?;
    let head = repo.find_reference("refs/heads/main")?.peel_to_commit()?;
    assert_eq!(head.parent(0)?.author().name(), Some("someone else"));
    Ok(())
}

#[tokio::test]
async fn a_change_reads_the_remote_head_including_commits_made_by_others() -> Result<()> {
    let remote = Remote::new()?;
    let gitops = GitOps::open(remote.settings("work")).await?;
    write_file(&gitops, "x.txt", b"1\n").await?;
    remote.push_as_someone_else("x.txt", b"2\n")?;

    assert_eq!(
        gitops.read("x.txt".into()).await?.as_deref(),
        Some(&b"2\n"[..])
    );
    assert_eq!(gitops.read("missing".into()).await?, None);
    Ok(())
}

#[tokio::test]
async fn a_removed_file_disappears_from_the_remote_and_removing_it_again_is_a_no_op() -> Result<()>
{
    let remote = Remote::new()?;
    let gitops = GitOps::open(remote.settings("work")).await?;
    write_file(&gitops, "envs/gone.json", b"{}\n").await?;
    let remove = || {
        vec![FileChange::Remove {
            path: "envs/gone.json".into(),
        }]
    };

    let (first, ()) = gitops
        .commit::<_, GitError, _>("remove".into(), move |_| Ok((remove(), ())))
        .await?;
    let (second, ()) = gitops
        .commit::<_, GitError, _>("remove".into(), move |_| Ok((remove(), ())))
        .await?;

    assert!(first.committed);
    assert!(!second.committed);
    assert_eq!(remote.file("envs/gone.json")?, None);
    Ok(())
}

#[tokio::test]
async fn an_existing_working_copy_is_reused_after_a_restart() -> Result<()> {
    let remote = Remote::new()?;
    let first = GitOps::open(remote.settings("work")).await?;
    write_file(&first, "a.txt", b"a\n").await?;
    drop(first);

    let again = GitOps::open(remote.settings("work")).await?;
    let pushed = write_file(&again, "a.txt", b"a\n").await?;

    assert!(
        !pushed.committed,
        "the reopened copy sees the earlier commit"
    );
    Ok(())
}

#[tokio::test]
async fn the_history_of_a_file_lists_its_contents_newest_first() -> Result<()> {
    let remote = Remote::new()?;
    let gitops = GitOps::open(remote.settings("work")).await?;
    write_file(&gitops, "f.txt", b"1\n").await?;
    write_file(&gitops, "f.txt", b"2\n").await?;

    let history = gitops.file_history("f.txt".into(), 10).await?;

    assert_eq!(
        history,
        [Some(b"2\n".to_vec()), Some(b"1\n".to_vec()), None]
    );
    assert_eq!(gitops.file_history("f.txt".into(), 1).await?.len(), 1);
    Ok(())
}
