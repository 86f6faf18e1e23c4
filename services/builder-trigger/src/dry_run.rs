//! builder-trigger in a dry run: builds and tests recorded, not run; Jobs not created;
//! announcements to other replicas not sent.

use flotilla_bus::dry_run::Recorder;
use flotilla_env::Registry;

use crate::backend::Runner;
use crate::config::Config;
use crate::handler::BuilderTrigger;
use crate::supersede::Supersede;

impl BuilderTrigger {
    /// The handler of `config` on `runner` in a dry run: every build or test run is recorded in
    /// `recorder` and succeeds at once, and nothing is sent to other replicas. Events the
    /// handler publishes itself go through its context's publisher, which the caller makes
    /// recording too.
    pub fn recording(
        config: Config,
        runner: Runner,
        registry: Registry,
        recorder: &Recorder,
    ) -> BuilderTrigger {
        BuilderTrigger::with_supersede(
            config,
            runner.recording(recorder.clone()),
            Supersede::new().recording(recorder.clone()),
            registry.recording(recorder.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use flotilla_bus::dry_run::EffectKind;

    use super::*;
    use crate::backend::{Kind, Run};
    use crate::command;

    #[tokio::test]
    async fn a_recording_runner_records_the_command_and_runs_nothing() {
        let marker = tempfile::tempdir().expect("a temp dir");
        let touched = marker.path().join("built");
        let command = format!("touch {}; exit 3", touched.display());
        let recorder = Recorder::new();
        let runner = Runner::Command(command::Backend::new(command::Settings::new(
            command.clone(),
        )))
        .recording(recorder.clone());
        let run = Run {
            kind: Kind::Build,
            id: "build-ping-v1".into(),
            change_id: "ping-v1".into(),
            env: None,
            vars: vec![("FLOTILLA_APP", "ping".into())],
            timeout: Duration::from_secs(5),
            exec: None,
        };

        let outcome = runner.run(&run, &Default::default()).await;

        assert!(outcome.succeeded(), "a dry run's build succeeds");
        assert!(!touched.exists(), "the command did not run");
        assert_eq!(runner.name(), "command");
        let effects = recorder.take();
        assert_eq!(effects.len(), 1);
        assert_eq!(effects[0].kind, EffectKind::Build);
        assert_eq!(
            effects[0].summary,
            format!("would run build of ping-v1 with command: sh -c {command:?}")
        );
        assert_eq!(effects[0].detail.as_deref(), Some("FLOTILLA_APP=ping"));
    }

    #[tokio::test]
    async fn a_recording_runner_records_a_hook_step_and_runs_nothing() {
        let marker = tempfile::tempdir().expect("a temp dir");
        let touched = marker.path().join("created");
        let command = format!("touch {}", touched.display());
        let recorder = Recorder::new();
        let runner = Runner::Command(command::Backend::new(command::Settings::new("true")))
            .recording(recorder.clone());
        let run = Run {
            kind: Kind::Hook,
            id: "hook-pr-acme-ping-7-database-provision-1234abcd".into(),
            change_id: "ping-v1".into(),
            env: Some("pr-acme-ping-7".into()),
            vars: vec![
                ("FLOTILLA_HOOK", "database".into()),
                ("FLOTILLA_HOOK_PHASE", "provision".into()),
            ],
            timeout: Duration::from_secs(5),
            exec: Some(crate::run::Exec {
                command: Some(command.clone()),
                ..Default::default()
            }),
        };

        let handle = runner
            .start_hook(&run, None)
            .expect("a dry run starts nothing");
        assert_eq!(handle.pid(), None, "no process");
        let outcome = runner.finish_hook(&run, handle).await;

        assert!(outcome.succeeded());
        assert!(!touched.exists(), "the hook did not run");
        let effects = recorder.take();
        assert_eq!(effects.len(), 1);
        assert_eq!(
            effects[0].summary,
            format!(
                "would run provision hook database of pr-acme-ping-7 for ping-v1 with command: sh -c {command:?}"
            )
        );
    }
}
