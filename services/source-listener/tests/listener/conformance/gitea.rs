//! Gitea: the documented push with its headers and go-scm's test payloads.

use anyhow::Result;
use flotilla_proto::v1;

use super::{decoded, fixtures, gitea, github, is_ignored, recorded_headers};

#[test]
fn gitea_pushes_and_pull_requests_parse_as_gitea_events() -> Result<()> {
    let Some(dir) = fixtures("gitea") else {
        return Ok(());
    };
    let headers = recorded_headers(&dir.join("docs/push.headers.txt"))?;
    let delivery = github(&dir.join("docs/push.json"), "push", headers)?;
    assert_eq!(delivery.id, "f6266f16-1bf3-46a5-9ea4-602e06ead473");
    let push: v1::Push = decoded(&delivery);
    assert_eq!(
        (push.provider.as_str(), push.repo.as_str()),
        ("gitea", "gitea/webhooks")
    );
    assert_eq!(
        (push.branch.as_str(), push.pusher.as_str()),
        ("develop", "gitea")
    );
    assert_eq!(push.sha, "bffeb74224043ba2feb48d137756c8a9331c449a");
    assert!(
        push.compare_url.contains("compare"),
        "Gitea's compare_url: {push:?}"
    );

    let go_scm = dir.join("go-scm");
    let master: v1::Push = decoded(&gitea(&go_scm.join("push.json"), "push")?);
    assert_eq!(
        (master.branch.as_str(), master.sha.as_str()),
        ("master", "4522cbcefc20728a5b72b3a86af35e608622c514")
    );
    assert!(is_ignored(&gitea(
        &go_scm.join("branch_delete.json"),
        "delete"
    )?));
    for (file, action, merged) in [
        ("pull_request_opened.json", "opened", false),
        ("pull_request_synchronized.json", "synchronize", false),
        ("pull_request_closed.json", "closed", false),
        ("pull_request_merged.json", "closed", true),
        ("pull_request_reopened.json", "reopened", false),
    ] {
        let pr: v1::PullRequest = decoded(&gitea(&go_scm.join(file), "pull_request")?);
        assert_eq!((pr.action.as_str(), pr.merged), (action, merged), "{file}");
        assert_eq!(
            (pr.provider.as_str(), pr.repo.as_str()),
            ("gitea", "jcitizen/my-repo")
        );
        assert_eq!(pr.head_sha, "2eba238e33607c1fa49253182e9fff42baafa1eb");
    }
    Ok(())
}
