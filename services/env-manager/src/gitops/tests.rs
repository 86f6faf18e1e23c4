//! The working copy against real repositories in temp dirs: a bare "remote" and clones of it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use git2::{Repository, ResetType, Signature};

use super::*;

const REMOTE: &str = "origin";

mod dry_run;

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
            author: Author::default(),
            group_max: 32,
            network_timeout: std::time::Duration::from_secs(30),
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

/// A worker killed between writing a file into its working copy and committing it leaves the
/// file there; the restarted worker must not take it for the branch's.
#[tokio::test]
async fn a_file_left_in_the_working_copy_by_a_crash_is_not_taken_as_written() -> Result<()> {
    let remote = Remote::new()?;
    let settings = remote.settings("work");
    let work = settings.dir.clone();
    let gitops = GitOps::open(settings).await?;
    std::fs::create_dir_all(work.join("envs"))?;
    std::fs::write(work.join("envs/pr-ping-1.json"), b"{}\n")?;

    let files = write("envs/pr-ping-1.json", b"{}\n");
    let (pushed, seen) = gitops
        .commit::<_, GitError, _>("write".into(), move |tree| {
            // What env-manager does: a change already in the branch is not written again.
            let seen = tree.read("envs/pr-ping-1.json")?;
            let files = if seen.is_some() {
                Vec::new()
            } else {
                files.clone()
            };
            Ok((files, seen))
        })
        .await?;

    assert_eq!(seen, None, "the branch does not hold the file");
    assert!(pushed.committed);
    assert_eq!(
        remote.file("envs/pr-ping-1.json")?.as_deref(),
        Some(&b"{}\n"[..])
    );
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
async fn a_clone_of_the_remote_holds_every_file_written_and_no_directory_left_empty() -> Result<()>
{
    let remote = Remote::new()?;
    let gitops = GitOps::open(remote.settings("work")).await?;
    write_file(&gitops, "envs/deep/er/a.json", b"a\n").await?;
    write_file(&gitops, "envs/b.json", b"b\n").await?;
    let remove = vec![FileChange::Remove {
        path: "envs/deep/er/a.json".into(),
    }];
    gitops
        .commit::<_, GitError, _>("remove".into(), move |_| Ok((remove.clone(), ())))
        .await?;

    // A clone packs every object the branch reaches: one the push did not copy fails it.
    let dir = tempfile::tempdir()?;
    let clone = Repository::clone(&remote.url().display().to_string(), dir.path())?;
    let tree = clone
        .find_reference("refs/remotes/origin/main")?
        .peel_to_tree()?;
    let b = clone.find_blob(tree.get_path(Path::new("envs/b.json"))?.id())?;
    assert_eq!(b.content(), b"b\n");
    assert!(tree.get_path(Path::new("apps/production.json")).is_ok());
    assert!(
        tree.get_path(Path::new("envs/deep")).is_err(),
        "a directory whose last file was removed is gone"
    );
    Ok(())
}

#[tokio::test]
async fn a_file_someone_made_executable_stays_executable_when_rewritten() -> Result<()> {
    let remote = Remote::new()?;
    remote.push_as_someone_else("hooks/run.sh", b"#!/bin/sh\n")?;
    {
        // Someone marks it executable, as `git update-index --chmod=+x` would.
        let repo = remote.repo()?;
        let head = repo.find_reference("refs/heads/main")?.peel_to_commit()?;
        let tree = head.tree()?;
        let blob = tree.get_path(Path::new("hooks/run.sh"))?.id();
        let mut update = git2::build::TreeUpdateBuilder::new();
        update.upsert("hooks/run.sh", blob, git2::FileMode::BlobExecutable);
        let tree = repo.find_tree(update.create_updated(&repo, &tree)?)?;
        let someone = Signature::now("someone else", "someone@example.com")?;
        let commit = repo.commit(None, &someone, &someone, "chmod", &tree, &[&head])?;
        repo.reference("refs/heads/main", commit, true, "test")?;
    }
    let gitops = GitOps::open(remote.settings("work")).await?;

    write_file(&gitops, "hooks/run.sh", b"#!/bin/sh\nexit 0\n").await?;

    let repo = remote.repo()?;
    let tree = repo.find_reference("refs/heads/main")?.peel_to_tree()?;
    let entry = tree.get_path(Path::new("hooks/run.sh"))?;
    assert_eq!(entry.filemode(), i32::from(git2::FileMode::BlobExecutable));
    assert_eq!(
        remote.file("hooks/run.sh")?.as_deref(),
        Some(&b"#!/bin/sh\nexit 0\n"[..])
    );
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
async fn lock_files_left_by_an_env_manager_killed_mid_write_are_removed_on_restart() -> Result<()> {
    let remote = Remote::new()?;
    let settings = remote.settings("work");
    let first = GitOps::open(settings.clone()).await?;
    write_file(&first, "a.txt", b"a\n").await?;
    drop(first);
    // Killed while moving its branches and rewriting its config: libgit2 refuses to touch a
    // file whose lock file exists.
    let git_dir = settings.dir.join(".git");
    for lock in [
        "config.lock",
        "refs/heads/main.lock",
        "refs/remotes/origin/main.lock",
    ] {
        std::fs::write(git_dir.join(lock), b"")?;
    }

    let again = GitOps::open(settings).await?;
    let pushed = write_file(&again, "b.txt", b"b\n").await?;

    assert!(pushed.committed);
    assert_eq!(remote.file("b.txt")?, Some(b"b\n".to_vec()));
    Ok(())
}

#[tokio::test]
async fn a_branch_lock_a_killed_writer_left_in_the_remote_stops_no_later_push() -> Result<()> {
    let remote = Remote::new()?;
    let gitops = GitOps::open(remote.settings("work")).await?;
    write_file(&gitops, "a.txt", b"a\n").await?;
    // Another replica was killed while moving the remote's branch.
    let lock = remote.url().join("refs/heads/main.lock");
    std::fs::File::create(&lock)?.set_modified(
        std::time::SystemTime::now() - flotilla_gitops::locks::STALE - Duration::from_secs(1),
    )?;

    let pushed = write_file(&gitops, "b.txt", b"b\n").await?;

    assert!(pushed.committed);
    assert_eq!(remote.file("b.txt")?, Some(b"b\n".to_vec()));
    assert!(!lock.exists());
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

type Held = (
    std::sync::mpsc::Sender<()>,
    tokio::task::JoinHandle<Result<(Pushed, ()), GitError>>,
);

/// Starts a write that holds the writer until `release` is sent, so that the writes started
/// after it wait in the queue together; returns once the writer is held.
async fn hold_the_writer(gitops: &GitOps) -> Result<Held> {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = Mutex::new(held);
    let running = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gitops = gitops.clone();
    let started = running.clone();
    let task = tokio::spawn(async move {
        gitops
            .commit::<_, GitError, _>("first".into(), move |_| {
                started.store(true, Ordering::SeqCst);
                // Runs on the blocking pool: waiting here keeps the writer busy.
                let _ = held.lock().map(|h| h.recv_timeout(Duration::from_secs(10)));
                Ok((write("envs/first.json", b"1\n"), ()))
            })
            .await
    });
    let held =
        flotilla_testing::eventually(Duration::from_secs(10), || running.load(Ordering::SeqCst))
            .await;
    anyhow::ensure!(held, "the first write never ran");
    Ok((release, task))
}

/// Waits until `n` writes are queued.
async fn until_queued(gitops: &GitOps, n: usize) -> Result<()> {
    let queued =
        flotilla_testing::eventually(Duration::from_secs(10), || gitops.queued() >= n).await;
    anyhow::ensure!(queued, "{} of {n} writes queued", gitops.queued());
    Ok(())
}

/// `n` writes of `envs/<i>.json`, started at once.
fn start_writes(
    gitops: &GitOps,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<Pushed, anyhow::Error>>> {
    (0..n)
        .map(|i| {
            let gitops = gitops.clone();
            tokio::spawn(async move {
                write_file(
                    &gitops,
                    &format!("envs/{i}.json"),
                    format!("{i}\n").as_bytes(),
                )
                .await
            })
        })
        .collect()
}

#[tokio::test]
async fn writes_that_arrive_together_are_pushed_as_one_commit() -> Result<()> {
    let remote = Remote::new()?;
    let gitops = GitOps::open(remote.settings("work")).await?;
    let (release, first) = hold_the_writer(&gitops).await?;
    let writes = start_writes(&gitops, 5);
    until_queued(&gitops, 5).await?;

    release.send(())?;
    first.await??;
    let mut revisions = Vec::new();
    for write in writes {
        let pushed = write.await??;
        assert!(pushed.committed);
        assert_eq!(pushed.grouped, 5);
        revisions.push(pushed.revision);
    }

    revisions.dedup();
    assert_eq!(revisions.len(), 1, "one commit holds the five writes");
    assert_eq!(remote.commits()?, 3, "the seed, the first write, the group");
    for i in 0..5 {
        assert!(
            remote.file(&format!("envs/{i}.json"))?.is_some(),
            "envs/{i}.json"
        );
    }
    let repo = remote.repo()?;
    let head = repo.find_reference("refs/heads/main")?.peel_to_commit()?;
    let message = head.message().unwrap_or_default().to_owned();
    assert!(message.starts_with("env-manager: 5 changes"), "{message}");
    Ok(())
}

#[tokio::test]
async fn writes_of_one_file_that_arrive_together_are_one_commit_each_so_its_history_holds_both()
-> Result<()> {
    let remote = Remote::new()?;
    let gitops = GitOps::open(remote.settings("work")).await?;
    let (release, first) = hold_the_writer(&gitops).await?;
    // Two promotions of one app, then an env: the second promotion must not share a commit
    // with the first, or the first version never appears in production's history.
    let mut writes = Vec::new();
    for contents in ["a: v1\n", "a: v2\n"] {
        let writer = gitops.clone();
        writes.push(tokio::spawn(async move {
            write_file(&writer, "apps/production.json", contents.as_bytes()).await
        }));
        until_queued(&gitops, writes.len()).await?;
    }
    writes.extend(start_writes(&gitops, 1));
    until_queued(&gitops, 3).await?;

    release.send(())?;
    first.await??;
    let mut pushed = Vec::new();
    for write in writes {
        pushed.push(write.await??);
    }

    assert!(pushed.iter().all(|p| p.committed));
    assert_eq!(
        pushed[0].revision, pushed[2].revision,
        "the env rides with the first"
    );
    assert_ne!(
        pushed[0].revision, pushed[1].revision,
        "the second write has its own commit"
    );
    let history = gitops
        .file_history("apps/production.json".into(), 10)
        .await?;
    assert_eq!(
        history[..2],
        [Some(b"a: v2\n".to_vec()), Some(b"a: v1\n".to_vec())]
    );
    assert_eq!(
        remote.commits()?,
        4,
        "the seed, the first write, two groups"
    );
    Ok(())
}

#[tokio::test]
async fn with_grouping_off_every_write_is_its_own_commit() -> Result<()> {
    let remote = Remote::new()?;
    let mut settings = remote.settings("work");
    settings.group_max = 1;
    let gitops = GitOps::open(settings).await?;
    let (release, first) = hold_the_writer(&gitops).await?;
    let writes = start_writes(&gitops, 4);
    until_queued(&gitops, 4).await?;

    release.send(())?;
    first.await??;
    for write in writes {
        assert_eq!(write.await??.grouped, 1);
    }

    assert_eq!(remote.commits()?, 6, "the seed, the first write, four more");
    Ok(())
}

#[tokio::test]
async fn a_change_that_fails_leaves_the_rest_of_its_group_to_be_pushed() -> Result<()> {
    let remote = Remote::new()?;
    let gitops = GitOps::open(remote.settings("work")).await?;
    let (release, first) = hold_the_writer(&gitops).await?;
    let writes = start_writes(&gitops, 2);
    let failing = {
        let gitops = gitops.clone();
        tokio::spawn(async move {
            gitops
                .commit::<(), GitError, _>("broken".into(), |_| {
                    Err(GitError::Task("the manifest does not parse".into()))
                })
                .await
        })
    };
    until_queued(&gitops, 3).await?;

    release.send(())?;
    first.await??;

    let err = failing.await?.expect_err("its own error comes back");
    assert!(err.to_string().contains("does not parse"), "{err}");
    for write in writes {
        assert_eq!(write.await??.grouped, 2);
    }
    assert!(remote.file("envs/0.json")?.is_some() && remote.file("envs/1.json")?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_on_their_own_working_copies_racing_on_one_remote_all_land() -> Result<()> {
    let remote = Remote::new()?;
    let names = ["a", "b", "c"];
    let mut writers = Vec::new();
    for name in names {
        let mut settings = remote.settings(name);
        settings.push_attempts = 50;
        // One commit per write: as many pushes as possible, to race as often as possible.
        settings.group_max = 1;
        writers.push(GitOps::open(settings).await?);
    }

    let mut writes = Vec::new();
    for i in 0..20 {
        for (&name, gitops) in names.iter().zip(&writers) {
            let gitops = gitops.clone();
            writes.push(tokio::spawn(async move {
                write_file(&gitops, &format!("envs/{name}-{i}.json"), b"{}\n").await
            }));
        }
    }
    for write in writes {
        assert!(write.await??.committed);
    }

    let mut lost = Vec::new();
    for i in 0..20 {
        for name in names {
            let path = format!("envs/{name}-{i}.json");
            if remote.file(&path)?.is_none() {
                lost.push(path);
            }
        }
    }
    assert_eq!(
        lost,
        Vec::<String>::new(),
        "every pushed write is on the remote"
    );
    assert_eq!(remote.commits()?, 61, "the seed and one commit per write");
    Ok(())
}

#[tokio::test]
async fn a_commit_that_was_never_pushed_is_redone_once_after_a_restart() -> Result<()> {
    let remote = Remote::new()?;
    let settings = remote.settings("work");
    let before = GitOps::open(settings.clone()).await?;
    before.read("apps/production.json".into()).await?;
    drop(before);
    // The process died between its commit and its push: the commit is in the working copy
    // only.
    {
        let work = Repository::open(&settings.dir)?;
        let file = settings.dir.join("envs/crash.json");
        std::fs::create_dir_all(file.parent().context("in a dir")?)?;
        std::fs::write(&file, b"{}\n")?;
        let mut index = work.index()?;
        index.add_path(Path::new("envs/crash.json"))?;
        index.write()?;
        let tree = work.find_tree(index.write_tree()?)?;
        let parent = work.head()?.peel_to_commit()?;
        let me = Signature::now("flotilla env-manager", "env-manager@flotilla.invalid")?;
        work.commit(Some("HEAD"), &me, &me, "unpushed", &tree, &[&parent])?;
    }
    assert_eq!(remote.commits()?, 1, "nothing reached the remote");

    let after = GitOps::open(settings).await?;
    let pushed = write_file(&after, "envs/crash.json", b"{}\n").await?;
    let again = write_file(&after, "envs/crash.json", b"{}\n").await?;

    assert!(pushed.committed && !again.committed);
    assert_eq!(remote.commits()?, 2, "one commit, no duplicate");
    assert_eq!(
        remote.file("envs/crash.json")?.as_deref(),
        Some(&b"{}\n"[..])
    );
    Ok(())
}

#[tokio::test]
async fn a_file_url_names_the_remote_as_well_as_its_path() -> Result<()> {
    let remote = Remote::new()?;
    let mut settings = remote.settings("work");
    settings.url = format!("file://{}", remote.url().display());
    let gitops = GitOps::open(settings).await?;

    let pushed = write_file(&gitops, "envs/by-url.json", b"{}\n").await?;

    assert!(pushed.committed);
    assert_eq!(
        remote.file("envs/by-url.json")?.as_deref(),
        Some(&b"{}\n"[..])
    );
    Ok(())
}
