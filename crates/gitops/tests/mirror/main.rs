//! The mirror against real repositories in temp dirs: a bare "remote" that commits are made in
//! directly (as pushes would leave them), and a silent TCP server for the network timeout.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use flotilla_gitops::{GitError, Mirror, Remote};
use git2::{Oid, Repository, Signature};

/// The network timeout of every test: libgit2's is process-wide, so one value keeps the tests
/// of this binary from lengthening each other's.
const TIMEOUT: Duration = Duration::from_secs(3);

fn remote(url: impl Into<String>) -> Remote {
    let mut remote = Remote::new(url, "main");
    remote.network_timeout = TIMEOUT;
    remote
}

/// A bare repository standing in for the GitOps remote.
struct Origin {
    repo: Repository,
}

impl Origin {
    fn new(dir: &Path) -> Result<Origin> {
        Ok(Origin {
            repo: Repository::init_bare(dir)?,
        })
    }

    fn url(&self) -> String {
        self.repo.path().display().to_string()
    }

    /// A commit on `parent` writing `file`, with `branch` moved to it (forced, as a push with
    /// `--force` would).
    fn commit(&self, branch: &str, parent: Option<Oid>, file: &str) -> Result<Oid> {
        let blob = self.repo.blob(file.as_bytes())?;
        let mut tree = self.repo.treebuilder(None)?;
        tree.insert(file, blob, 0o100644)?;
        let tree = self.repo.find_tree(tree.write()?)?;
        let signature = Signature::now("test", "test@flotilla.invalid")?;
        let parents = match parent {
            Some(oid) => vec![self.repo.find_commit(oid)?],
            None => Vec::new(),
        };
        let parents: Vec<_> = parents.iter().collect();
        let oid = self
            .repo
            .commit(None, &signature, &signature, file, &tree, &parents)?;
        self.repo
            .reference(&format!("refs/heads/{branch}"), oid, true, "test")?;
        Ok(oid)
    }
}

fn id(oid: Oid) -> String {
    oid.to_string()
}

#[tokio::test]
async fn a_descendant_two_commits_later_contains_its_ancestor() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let origin = Origin::new(&dir.path().join("origin.git"))?;
    let a = origin.commit("main", None, "a")?;
    let b = origin.commit("main", Some(a), "b")?;
    let c = origin.commit("main", Some(b), "c")?;
    let mirror = Mirror::open(remote(origin.url()), dir.path().join("mirror.git")).await?;

    assert!(mirror.contains(&id(c), &id(a)).await?);
    assert!(mirror.contains(&id(c), &id(c)).await?);
    assert!(
        !mirror.contains(&id(a), &id(c)).await?,
        "an ancestor does not contain its descendant"
    );
    assert_eq!(mirror.head().await?, Some(id(c)));
    Ok(())
}

#[tokio::test]
async fn a_commit_of_a_sibling_branch_does_not_contain_the_ancestor() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let origin = Origin::new(&dir.path().join("origin.git"))?;
    let a = origin.commit("main", None, "a")?;
    let b = origin.commit("main", Some(a), "b")?;
    let other = origin.commit("other", Some(a), "other")?;
    let mirror = Mirror::open(remote(origin.url()), dir.path().join("mirror.git")).await?;

    assert!(!mirror.contains(&id(other), &id(b)).await?);

    // main force-pushed to a sibling of b: both are in the mirror now, and unrelated.
    let sibling = origin.commit("main", Some(a), "sibling")?;
    assert!(mirror.contains(&id(sibling), &id(a)).await?);
    assert!(!mirror.contains(&id(sibling), &id(b)).await?);
    assert!(!mirror.contains(&id(b), &id(sibling)).await?);
    assert_eq!(mirror.head().await?, Some(id(sibling)));
    Ok(())
}

#[tokio::test]
async fn a_revision_pushed_after_the_last_fetch_is_fetched_when_asked_about() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let origin = Origin::new(&dir.path().join("origin.git"))?;
    let mirror = Mirror::open(remote(origin.url()), dir.path().join("mirror.git")).await?;
    assert_eq!(mirror.fetch().await?, None, "the remote has no branch yet");

    let a = origin.commit("main", None, "a")?;
    assert_eq!(mirror.fetch().await?, Some(id(a)));
    let b = origin.commit("main", Some(a), "b")?;
    assert_eq!(mirror.head().await?, Some(id(a)), "head() does not fetch");

    assert!(mirror.contains(&id(b), &id(a)).await?);
    assert_eq!(mirror.head().await?, Some(id(b)));

    let never_pushed = "0123456789abcdef0123456789abcdef01234567";
    assert!(!mirror.contains(never_pushed, &id(a)).await?);
    assert!(!mirror.contains(&id(b), never_pushed).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_asking_at_once_all_get_the_answer() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let origin = Origin::new(&dir.path().join("origin.git"))?;
    let mut parent = origin.commit("main", None, "0")?;
    let first = parent;
    let mut commits = Vec::new();
    for n in 1..=8 {
        parent = origin.commit("main", Some(parent), &n.to_string())?;
        commits.push(parent);
    }
    let mirror = Mirror::open(remote(origin.url()), dir.path().join("mirror.git")).await?;
    let asks: Vec<_> = commits
        .iter()
        .map(|commit| {
            let (mirror, commit) = (mirror.clone(), id(*commit));
            tokio::spawn(async move { mirror.contains(&commit, &id(first)).await })
        })
        .collect();
    for ask in asks {
        assert!(ask.await??);
    }
    Ok(())
}

#[tokio::test]
async fn malformed_revisions_are_errors_that_are_not_retried() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let origin = Origin::new(&dir.path().join("origin.git"))?;
    let a = origin.commit("main", None, "a")?;
    let mirror = Mirror::open(remote(origin.url()), dir.path().join("mirror.git")).await?;
    for bad in [&id(a)[..7], "main", ""] {
        let error = mirror.contains(bad, &id(a)).await.expect_err(bad);
        assert!(
            matches!(error, GitError::Revision { .. }),
            "{bad:?}: {error}"
        );
        assert!(!error.is_retryable());
    }
    Ok(())
}

#[tokio::test]
async fn a_directory_holding_something_else_is_refused_and_left_alone() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let origin = Origin::new(&dir.path().join("origin.git"))?;
    let busy = dir.path().join("busy");
    std::fs::create_dir_all(&busy)?;
    std::fs::write(busy.join("notes.txt"), "keep me")?;
    let error = Mirror::open(remote(origin.url()), busy.clone())
        .await
        .expect_err("a non-empty directory");
    assert!(matches!(error, GitError::NotAMirror { .. }), "{error}");
    assert_eq!(std::fs::read_to_string(busy.join("notes.txt"))?, "keep me");
    assert!(!busy.join("HEAD").exists());

    let work = dir.path().join("work");
    Repository::init(&work)?;
    for path in [work.clone(), work.join(".git")] {
        let error = Mirror::open(remote(origin.url()), path.clone())
            .await
            .expect_err("a working copy");
        assert!(
            matches!(error, GitError::NotAMirror { .. }),
            "{path:?}: {error}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_reopened_mirror_keeps_its_history_and_follows_a_moved_remote() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let origin = Origin::new(&dir.path().join("origin.git"))?;
    let a = origin.commit("main", None, "a")?;
    let at = dir.path().join("mirror.git");
    Mirror::open(remote(origin.url()), at.clone())
        .await?
        .fetch()
        .await?;

    let moved = dir.path().join("moved.git");
    std::fs::rename(dir.path().join("origin.git"), &moved)?;
    let origin = Origin {
        repo: Repository::open_bare(&moved)?,
    };
    let mirror = Mirror::open(remote(origin.url()), at).await?;
    assert_eq!(mirror.head().await?, Some(id(a)));
    let b = origin.commit("main", Some(a), "b")?;
    assert!(mirror.contains(&id(b), &id(a)).await?);
    Ok(())
}

/// A remote that accepts the connection and never answers (a hung proxy, a half-dead host)
/// fails the fetch after the network timeout instead of holding the mirror forever; the error
/// does not show the token in the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_that_accepts_and_never_answers_fails_within_the_network_timeout() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let dir = tempfile::tempdir()?;
    let url = format!("http://x-access-token:s3cret@{addr}/gitops.git");
    let mirror = Mirror::open(remote(url), dir.path().join("mirror.git")).await?;
    assert!(!format!("{mirror:?}").contains("s3cret"), "{mirror:?}");

    let within = Duration::from_secs(90);
    let fetched = tokio::time::timeout(within, mirror.fetch())
        .await
        .context("the fetch from a silent remote still waits after 90s")?;
    let error = fetched.expect_err("nothing can be fetched from a silent remote");
    assert!(error.is_retryable());
    assert!(!error.to_string().contains("s3cret"), "{error}");

    let unknown = "0123456789abcdef0123456789abcdef01234567";
    let asked = tokio::time::timeout(
        within,
        mirror.contains(unknown, unknown.replace('0', "1").as_str()),
    )
    .await
    .context("contains() on a silent remote still waits after 90s")?;
    assert!(asked.is_err(), "a failed fetch is an error, not a `false`");
    held.abort();
    Ok(())
}

#[tokio::test]
async fn files_lists_a_directory_at_the_fetched_head() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let origin = Origin::new(&dir.path().join("origin.git"))?;
    let mirror = Mirror::open(remote(origin.url()), dir.path().join("mirror.git")).await?;
    assert_eq!(mirror.files("envs").await?, None, "no branch yet");

    let repo = &origin.repo;
    let signature = Signature::now("test", "test@flotilla.invalid")?;
    let blob = repo.blob(b"{}\n")?;
    let mut envs = repo.treebuilder(None)?;
    envs.insert("pr-a-1.json", blob, 0o100644)?;
    envs.insert("stg-b.json", blob, 0o100644)?;
    let mut root = repo.treebuilder(None)?;
    root.insert("envs", envs.write()?, 0o040000)?;
    root.insert("README", blob, 0o100644)?;
    let tree = repo.find_tree(root.write()?)?;
    let first = repo.commit(None, &signature, &signature, "two envs", &tree, &[])?;
    repo.reference("refs/heads/main", first, true, "test")?;

    assert_eq!(
        mirror.files("envs").await?,
        None,
        "nothing is read before a fetch"
    );
    mirror.fetch().await?;
    let listed = mirror.files("envs/").await?.context("the branch")?;
    assert_eq!(
        listed.into_iter().collect::<Vec<_>>(),
        ["pr-a-1.json", "stg-b.json"]
    );
    assert_eq!(mirror.files("absent").await?.map(|f| f.len()), Some(0));
    assert_eq!(mirror.files("README").await?.map(|f| f.len()), Some(0));

    // The env file removed: gone after the next fetch.
    let _ = origin.commit("main", Some(first), "other")?;
    mirror.fetch().await?;
    assert_eq!(mirror.files("envs").await?.map(|f| f.len()), Some(0));
    Ok(())
}
