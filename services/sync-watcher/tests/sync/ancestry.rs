//! The revision rule against a real GitOps repository: Argo CD's children follow the branch, so
//! an app soon reports a later commit than the one env-manager pushed; it counts when that
//! commit holds the pushed one, and only then.

use crate::support::*;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use flotilla_bus::EventType;
use flotilla_gitops::{Mirror, Remote};
use git2::{Oid, Repository, Signature};

const ENV: &str = "pr-acme-ping-7";
const CHANGE: &str = "ping-v20240101120000-bbbbbbb";

/// A commit of one file on `reference` (created or moved), with `parents`.
fn commit(repo: &Repository, reference: &str, text: &str, parents: &[Oid]) -> Result<Oid> {
    let blob = repo.blob(text.as_bytes())?;
    let mut tree = repo.treebuilder(None)?;
    tree.insert("envs.json", blob, 0o100644)?;
    let tree = repo.find_tree(tree.write()?)?;
    let who = Signature::now("someone", "someone@example.com")?;
    let parents = parents
        .iter()
        .map(|p| repo.find_commit(*p))
        .collect::<Result<Vec<_>, _>>()?;
    let parents: Vec<_> = parents.iter().collect();
    let oid = repo.commit(None, &who, &who, text, &tree, &parents)?;
    repo.reference(reference, oid, true, "test")?;
    Ok(oid)
}

/// root ← pushed ← later on main; sibling on another branch, from root.
fn repository(dir: &Path) -> Result<(Oid, Oid, Oid)> {
    let repo = Repository::init_bare(dir.join("gitops.git"))?;
    let root = commit(&repo, "refs/heads/main", "root", &[])?;
    let pushed = commit(&repo, "refs/heads/main", "env written", &[root])?;
    let later = commit(&repo, "refs/heads/main", "another env", &[pushed])?;
    let sibling = commit(&repo, "refs/heads/other", "elsewhere", &[root])?;
    Ok((pushed, later, sibling))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_at_a_later_revision_holding_the_pushed_one_counts_and_elsewhere_does_not()
-> Result<()> {
    let fx = Fixture::start().await?;
    let dir = tempfile::tempdir()?;
    let (pushed, later, sibling) = repository(dir.path())?;
    let remote = Remote::new(dir.path().join("gitops.git").display().to_string(), "main");
    let mirror = Mirror::open(remote, dir.path().join("mirror.git")).await?;
    let worker = fx.run_with(fx.config(), Arc::new(mirror)).await?;
    fx.request(ENV, CHANGE, &pushed.to_string(), &["ping"])
        .await?;
    fx.create_application(ENV, "ping");

    fx.set_status(ENV, "ping", "Synced", "Healthy", &sibling.to_string());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fx.stored_exactly("flotilla.env.ready.>", 0).await?;

    fx.set_status(ENV, "ping", "Synced", "Healthy", &later.to_string());
    let (kind, ready) = fx.verdict(ENV).await?;
    assert_eq!(kind, EventType::EnvReady);
    assert_eq!(
        ready.revision,
        pushed.to_string(),
        "the env's own revision is reported"
    );
    worker.shutdown().await
}
