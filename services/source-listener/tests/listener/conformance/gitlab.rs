//! GitLab: the documented payloads and go-scm's test payloads.

use anyhow::Result;
use flotilla_proto::v1;

use super::{decoded, fixtures, gitlab, is_ignored};

#[test]
fn gitlab_documented_and_go_scm_pushes_become_push_events() -> Result<()> {
    let Some(dir) = fixtures("gitlab") else {
        return Ok(());
    };
    let push: v1::Push = decoded(&gitlab(&dir.join("docs/push.json"), "Push Hook")?);
    assert_eq!(
        (push.repo.as_str(), push.branch.as_str()),
        ("mike/diaspora", "master")
    );
    assert_eq!(push.sha, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
    assert_eq!((push.pusher.as_str(), push.commits.len()), ("jsmith", 2));
    assert_eq!(push.provider, "gitlab");
    let tag: v1::Push = decoded(&gitlab(&dir.join("docs/tag_push.json"), "Tag Push Hook")?);
    assert_eq!(
        (tag.tag.as_str(), tag.sha.as_str()),
        ("v1.0.0", "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7")
    );

    let go_scm = dir.join("go-scm");
    let main: v1::Push = decoded(&gitlab(&go_scm.join("push.json"), "Push Hook")?);
    assert_eq!(
        (main.repo.as_str(), main.sha.as_str()),
        (
            "gitlab-org/hello-world",
            "2adc9465c4edfc33834e173fe89436a7cb899a1d"
        )
    );
    let created: v1::Push = decoded(&gitlab(&go_scm.join("branch_create.json"), "Push Hook")?);
    assert_eq!(created.branch, "feature");
    assert!(is_ignored(&gitlab(
        &go_scm.join("branch_delete.json"),
        "Push Hook"
    )?));
    assert!(is_ignored(&gitlab(
        &go_scm.join("tag_delete.json"),
        "Tag Push Hook"
    )?));
    let tag: v1::Push = decoded(&gitlab(&go_scm.join("tag_create.json"), "Tag Push Hook")?);
    assert_eq!(tag.tag, "v1.0.0");
    Ok(())
}

#[test]
fn gitlab_merge_requests_map_to_pull_request_actions() -> Result<()> {
    let Some(dir) = fixtures("gitlab") else {
        return Ok(());
    };
    let documented: v1::PullRequest = decoded(&gitlab(
        &dir.join("docs/merge_request.json"),
        "Merge Request Hook",
    )?);
    assert_eq!(
        (documented.repo.as_str(), documented.number),
        ("gitlabhq/gitlab-test", 1)
    );
    assert_eq!(
        (documented.action.as_str(), documented.head_ref.as_str()),
        ("opened", "ms-viewport")
    );
    assert_eq!(
        documented.head_sha,
        "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    );
    assert_eq!(documented.labels, ["API"]);
    assert_eq!(documented.updated_at, "2013-12-03T17:23:34Z");
    assert!(!documented.fork, "source and target project are both 14");
    for (file, action, merged) in [
        ("pull_request_create.json", "opened", false),
        ("pull_request_close.json", "closed", false),
        ("pull_request_merge.json", "closed", true),
        ("pull_request_reopen.json", "reopened", false),
    ] {
        let pr: v1::PullRequest = decoded(&gitlab(
            &dir.join("go-scm").join(file),
            "Merge Request Hook",
        )?);
        assert_eq!((pr.action.as_str(), pr.merged), (action, merged), "{file}");
        assert_eq!((pr.number, pr.base_ref.as_str()), (1, "master"), "{file}");
        assert!(!pr.fork, "{file}");
        assert_eq!(pr.head_repo, "gitlab-org/hello-world", "{file}");
        // GitLab's older `2017-12-10 17:01:11 UTC`, normalised.
        assert!(
            pr.updated_at.starts_with("2017-12-10T") && pr.updated_at.ends_with('Z'),
            "{file}: {}",
            pr.updated_at
        );
    }
    Ok(())
}
