//! A dry run's commit against a real remote: the change is computed and recorded, and the
//! remote keeps every ref where it was.

use anyhow::Result;
use flotilla_bus::dry_run::{EffectKind, Recorder};

use super::*;

/// Every ref of the remote with its target, and how many objects it holds.
fn remote_state(remote: &Remote) -> Result<(Vec<(String, String)>, usize)> {
    let repo = remote.repo()?;
    let mut refs = Vec::new();
    for reference in repo.references()? {
        let reference = reference?;
        refs.push((
            reference.name().unwrap_or_default().to_owned(),
            reference
                .target()
                .map(|t| t.to_string())
                .unwrap_or_default(),
        ));
    }
    let mut objects = 0;
    repo.odb()?.foreach(|_| {
        objects += 1;
        true
    })?;
    Ok((refs, objects))
}

#[tokio::test]
async fn a_dry_run_commit_records_the_changes_and_leaves_the_remote_as_it_was() -> Result<()> {
    let remote = Remote::new()?;
    let real = GitOps::open(remote.settings("work")).await?;
    write_file(&real, "envs/old.json", b"{\n  \"v\": 1\n}\n").await?;
    let before = remote_state(&remote)?;
    let head = remote.repo()?.refname_to_id("refs/heads/main")?.to_string();

    let recorder = Recorder::new();
    let dry = GitOps::open(remote.settings("scratch"))
        .await?
        .recording(recorder.clone());
    let files = vec![
        FileChange::Write {
            path: "envs/old.json".into(),
            contents: b"{\n  \"v\": 2\n}\n".to_vec(),
        },
        FileChange::Write {
            path: "envs/new.json".into(),
            contents: b"{}\n".to_vec(),
        },
        FileChange::Remove {
            path: "envs/gone.json".into(),
        },
    ];
    let (pushed, seen) = dry
        .commit::<_, GitError, _>("env-manager: test".into(), move |tree| {
            let seen = tree.read("envs/old.json")?;
            Ok((files.clone(), seen))
        })
        .await?;

    assert_eq!(
        seen.as_deref(),
        Some(&b"{\n  \"v\": 1\n}\n"[..]),
        "reads are real"
    );
    assert_eq!(pushed.revision.as_deref(), Some(head.as_str()));
    assert!(!pushed.committed);
    let effects = recorder.take();
    assert!(effects.iter().all(|e| e.kind == EffectKind::Git));
    let summaries: Vec<&str> = effects.iter().map(|e| e.summary.as_str()).collect();
    assert_eq!(
        summaries,
        [
            "write envs/old.json",
            "write envs/new.json (new file)",
            "envs/gone.json: absent, nothing to remove",
            "commit and push to main: env-manager: test",
        ]
    );
    assert_eq!(
        effects[0].detail.as_deref(),
        Some("  {\n-   \"v\": 1\n+   \"v\": 2\n  }\n")
    );
    assert_eq!(effects[1].detail.as_deref(), Some("{}\n"));
    assert_eq!(remote_state(&remote)?, before, "the remote is unchanged");
    Ok(())
}
