//! GitHub: captured deliveries, go-scm's test payloads and octokit's examples.

use std::path::PathBuf;

use anyhow::Result;
use axum::http::{HeaderMap, HeaderValue};
use flotilla_proto::v1;
use source_listener::auth::Keys;
use source_listener::{Endpoint, Filters, Intake, Secrets};

use super::{decoded, fixtures, github, is_ignored, recorded_headers};

#[test]
fn a_captured_github_push_to_master_is_a_push_event_with_its_delivery_id() -> Result<()> {
    let Some(dir) = fixtures("github") else {
        return Ok(());
    };
    let dir = dir.join("examples/captured");
    let headers = recorded_headers(&dir.join("push.to-master.headers.txt"))?;
    let delivery = github(&dir.join("push.to-master.json"), "push", headers)?;
    assert_eq!(delivery.id, "88f41318-101a-11ea-99ad-ec7586fcd78e");
    let push: v1::Push = decoded(&delivery);
    assert_eq!(push.repo, "ailisp/gcbapp-buildconfig-example");
    assert_eq!(
        (push.branch.as_str(), push.default_branch.as_str()),
        ("master", "master")
    );
    assert_eq!(push.sha, "a21683865c088b5fe1906cf6552d15a285a4986d");
    assert_eq!(push.before, "8357af6fef17bd180014e419f049944cb491238f");
    assert_eq!(push.pusher, "ailisp");
    assert!(!push.commits.is_empty());
    assert_eq!(push.delivery_id, delivery.id);
    Ok(())
}

#[test]
fn captured_github_pull_requests_are_opened_synchronized_and_closed_merged() -> Result<()> {
    let Some(dir) = fixtures("github") else {
        return Ok(());
    };
    let dir = dir.join("examples/captured");
    let opened: v1::PullRequest = decoded(&github(
        &dir.join("pull_request.opened.json"),
        "pull_request",
        HeaderMap::new(),
    )?);
    assert_eq!((opened.action.as_str(), opened.number), ("opened", 3));
    assert_eq!(opened.head_sha, "7b5a809ab03679215c55926f7d111156ec98b865");
    assert_eq!(opened.author, "byao1276");
    assert_eq!(
        opened.clone_url,
        "https://github.com/byao1276/gcbapp-buildconfig-example.git"
    );
    assert!(opened.fork, "opened from byao1276's fork");
    assert_eq!(opened.head_repo, "byao1276/gcbapp-buildconfig-example");
    assert_eq!(opened.updated_at, "2019-11-13T01:28:51Z");

    let headers = recorded_headers(&dir.join("pull_request.synchronize.headers.txt"))?;
    let delivery = github(
        &dir.join("pull_request.synchronize.json"),
        "pull_request",
        headers,
    )?;
    assert_eq!(delivery.id, "82cfdb80-00f1-11ea-826f-8f4b97363b25");
    let sync: v1::PullRequest = decoded(&delivery);
    assert_eq!((sync.action.as_str(), sync.number), ("synchronize", 1));
    assert_eq!(sync.head_sha, "e238171456e973f696a972b80599a849db5fe540");
    assert!(!sync.fork, "a branch of the base repository");
    assert_eq!(sync.updated_at, "2019-11-06T23:59:47Z");

    let headers = recorded_headers(&dir.join("pull_request.closed.merged.headers.txt"))?;
    let closed: v1::PullRequest = decoded(&github(
        &dir.join("pull_request.closed.merged.json"),
        "pull_request",
        headers,
    )?);
    assert_eq!((closed.action.as_str(), closed.merged), ("closed", true));
    assert_eq!(closed.base_ref, "master");
    Ok(())
}

#[test]
fn go_scm_github_pushes_name_branches_and_tags_and_deletes_are_ignored() -> Result<()> {
    let Some(dir) = fixtures("github") else {
        return Ok(());
    };
    let dir = dir.join("examples/go-scm");
    let push = |file: &str| github(&dir.join(file), "push", HeaderMap::new());
    let master: v1::Push = decoded(&push("push.json")?);
    assert_eq!(
        (master.repo.as_str(), master.branch.as_str()),
        ("Codertocat/Hello-World", "master")
    );
    assert_eq!(master.sha, "199eddf46df50de8d02e99bf1c5fdb4101338224");
    let created: v1::Push = decoded(&push("push_branch_create.json")?);
    assert_eq!(created.branch, "feature-branch");
    let tag: v1::Push = decoded(&push("push_tag.json")?);
    assert_eq!((tag.tag.as_str(), tag.branch.as_str()), ("v0.0.1", ""));
    assert!(is_ignored(&push("push_branch_delete.json")?));
    assert!(is_ignored(&push("push_tag_delete.json")?));
    // `create` and `delete` events say again what the push said: nothing more to do.
    for (file, event) in [
        ("branch_create.json", "create"),
        ("tag_delete.json", "delete"),
    ] {
        assert!(
            is_ignored(&github(&dir.join(file), event, HeaderMap::new())?),
            "{file}"
        );
    }
    Ok(())
}

#[test]
fn go_scm_github_pull_request_actions_and_labels_come_through() -> Result<()> {
    let Some(dir) = fixtures("github") else {
        return Ok(());
    };
    let dir = dir.join("examples/go-scm");
    for (file, action) in [
        ("pr_opened.json", "opened"),
        ("pr_sync.json", "synchronize"),
        ("pr_closed.json", "closed"),
        ("pr_reopened.json", "reopened"),
        ("pr_unlabeled.json", "unlabeled"),
    ] {
        let pr: v1::PullRequest =
            decoded(&github(&dir.join(file), "pull_request", HeaderMap::new())?);
        assert_eq!(pr.action, action, "{file}");
        assert_eq!(
            (pr.repo.as_str(), pr.number),
            ("bradrydzewski/drone-test-go", 1)
        );
    }
    let labeled: v1::PullRequest = decoded(&github(
        &dir.join("pr_labeled.json"),
        "pull_request",
        HeaderMap::new(),
    )?);
    assert_eq!(labeled.label, "bug");
    assert_eq!(labeled.labels, ["bug", "documentation"]);
    Ok(())
}

#[test]
fn every_octokit_example_is_accepted_or_ignored_never_refused() -> Result<()> {
    let Some(dir) = fixtures("github") else {
        return Ok(());
    };
    let mut published = 0;
    for event_dir in std::fs::read_dir(dir.join("examples/octokit"))? {
        let event_dir = event_dir?.path();
        // Enterprise variants sit one level deeper: ghes-35/push/...
        let nested = ["ghes-35", "github.ae"]
            .iter()
            .any(|v| event_dir.ends_with(v));
        let dirs: Vec<PathBuf> = if nested {
            std::fs::read_dir(&event_dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect()
        } else {
            vec![event_dir]
        };
        for dir in dirs {
            let event = dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            for file in std::fs::read_dir(&dir)? {
                let delivery = github(&file?.path(), &event, HeaderMap::new())?;
                if !is_ignored(&delivery) {
                    published += 1;
                }
            }
        }
    }
    assert!(
        published >= 10,
        "pushes and pull requests were published: {published}"
    );
    Ok(())
}

#[test]
fn the_signature_test_vector_in_signing_md_authenticates() -> Result<()> {
    let Some(dir) = fixtures("github") else {
        return Ok(());
    };
    let text = std::fs::read_to_string(dir.join("SIGNING.md"))?;
    // Lines like "- secret: `It's a Secret to Everybody`".
    let field = |name: &str| {
        let prefix = format!("- {name}: `");
        text.lines()
            .find_map(|line| line.trim().strip_prefix(&prefix)?.strip_suffix('`'))
    };
    let (Some(secret), Some(payload), Some(signature)) =
        (field("secret"), field("payload"), field("signature"))
    else {
        println!("skipped: SIGNING.md has no test vector");
        return Ok(());
    };
    let mut headers = HeaderMap::new();
    headers.insert("x-github-event", HeaderValue::from_static("ping"));
    headers.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&format!("sha256={signature}"))?,
    );
    let intake = |secret: &str| {
        Intake::new(
            Secrets {
                github: Keys::of([secret]),
                ..Secrets::default()
            },
            Filters::default(),
        )
    };
    intake(secret).handle(Endpoint::GitHub, &headers, payload.as_bytes())?;
    let wrong = intake("not the secret")
        .handle(Endpoint::GitHub, &headers, payload.as_bytes())
        .expect_err("another secret");
    assert_eq!(wrong.status().as_u16(), 401);
    Ok(())
}
