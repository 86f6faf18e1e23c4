//! env-manager in a dry run: the same handler, with every interface it writes through
//! recording instead of writing.

use flotilla_bus::dry_run::Recorder;
use flotilla_env::Registry;

use crate::config::Config;
use crate::gitops::GitOps;
use crate::handler::EnvManager;

impl EnvManager {
    /// The handler of `config` in a dry run: the GitOps repository is fetched and never pushed
    /// to, registry records are read and their updates recorded, GitHub writes are recorded.
    /// Everything lands in `recorder`; events the handler publishes itself go through its
    /// context's publisher, which the caller makes recording too.
    pub fn recording(
        mut config: Config,
        gitops: GitOps,
        registry: Registry,
        recorder: &Recorder,
    ) -> EnvManager {
        config.github = config.github.map(|g| g.recording(recorder.clone()));
        EnvManager::new(
            config,
            gitops.recording(recorder.clone()),
            registry.recording(recorder.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use flotilla_bus::dry_run::{EffectKind, Recorder};

    use crate::github::{Github, GithubRepo, State, Status};
    use crate::gitops::Secret;

    #[tokio::test]
    async fn a_recording_github_client_records_a_status_and_sends_nothing() {
        const SHA: &str = "abc1234abc1234abc1234abc1234abc1234abc12";
        // Nothing listens on port 1: a request actually sent would fail.
        let recorder = Recorder::new();
        let github = Github::new("http://127.0.0.1:1", Secret::Value("t".into()))
            .expect("a client")
            .recording(recorder.clone());
        let repo = GithubRepo::parse("acme/ping").expect("a repo");
        let status = Status {
            state: State::Pending,
            context: "flotilla/env".into(),
            description: "environment requested".into(),
            target_url: None,
        };
        github
            .post_status(&repo, SHA, &status)
            .await
            .expect("recorded, not sent");
        let effects = recorder.take();
        assert_eq!(effects.len(), 1);
        assert_eq!(effects[0].kind, EffectKind::Github);
        assert_eq!(
            effects[0].summary,
            format!("POST /repos/acme/ping/statuses/{SHA}")
        );
        assert!(
            effects[0]
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("\"state\":\"pending\"")),
            "{effects:?}"
        );
    }
}
