//! `flotilla webhook send`: realistic deliveries, signed as the forge signs them, accepted by a
//! real source-listener (in-process, on a private nats-server) and published as the events a
//! real push or pull request gives; a wrong secret is refused and the command says so.

use crate::support::*;

use anyhow::{Context, Result};
use flotilla_bus::{Bus, Names, Process};
use flotilla_proto::v1::{PullRequest, Push};
use flotilla_testing::NatsServer;
use source_listener::auth::Keys;
use source_listener::{Config, Secrets, SourceListener};

const WITHIN: std::time::Duration = std::time::Duration::from_secs(15);
const GITHUB: &str = "gh-s3cret";
const GITLAB: &str = "gl-t0ken";

async fn listener(server: &NatsServer) -> Result<(Bus, flotilla_testing::Served)> {
    let bus = Bus::new(server.connect().await, Names::default());
    bus.ensure_streams(&Default::default()).await?;
    let config = Config::new(Secrets {
        github: Keys::of([GITHUB]),
        gitlab: Keys::of([GITLAB]),
        generic: Keys::of(Vec::<String>::new()),
    });
    let mut process = Process::new(bus.clone());
    let listener = SourceListener::new(&bus, config, process.health());
    listener.install(&mut process);
    let served = flotilla_testing::serve(process).await?;
    Ok((bus, served))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_push_and_pull_request_become_the_events_a_real_one_gives() -> Result<()> {
    let server = NatsServer::start();
    let (bus, served) = listener(&server).await?;
    let cli = Cli::new(&server);
    let url = format!("http://{}", served.addr());
    let sha = "1a2b3c4d5e6f1a2b3c4d5e6f1a2b3c4d5e6f1a2b";

    let push = cli
        .run_with_env(
            &[
                "webhook",
                "send",
                "github",
                "push",
                "--url",
                &url,
                "--repo",
                "acme/ping",
                "--sha",
                sha,
            ],
            &[("GITHUB_WEBHOOK_SECRET", GITHUB)],
        )
        .await?
        .success()?;
    assert!(push.stdout.starts_with("202 "), "{}", push.stdout);
    let pushes = flotilla_testing::stored_events(&bus, "flotilla.source.push.>", 1, WITHIN)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let event: Push = pushes.first().context("a push")?.decode()?;
    assert_eq!(
        (
            event.repo.as_str(),
            event.sha.as_str(),
            event.branch.as_str()
        ),
        ("acme/ping", sha, "main")
    );

    let pr = cli
        .run_with_env(
            &[
                "webhook",
                "send",
                "github",
                "pull_request",
                "--url",
                &url,
                "--number",
                "7",
                "--label",
                "preview",
            ],
            &[("GITHUB_WEBHOOK_SECRET", GITHUB)],
        )
        .await?
        .success()?;
    assert!(pr.stdout.starts_with("202 "), "{}", pr.stdout);
    let prs = flotilla_testing::stored_events(&bus, "flotilla.source.pull_request.>", 1, WITHIN)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let event: PullRequest = prs.first().context("a pull request")?.decode()?;
    assert_eq!((event.number, event.action.as_str()), (7, "opened"));
    assert_eq!(event.labels, ["preview"]);
    assert!(!event.updated_at.is_empty() && !event.fork);
    served.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_merge_request_carries_its_token_and_a_wrong_secret_is_refused() -> Result<()> {
    let server = NatsServer::start();
    let (bus, served) = listener(&server).await?;
    let cli = Cli::new(&server);
    let url = format!("http://{}", served.addr());

    cli.run_with_env(
        &[
            "webhook",
            "send",
            "gitlab",
            "pull_request",
            "--url",
            &url,
            "--number",
            "3",
            "--action",
            "close",
        ],
        &[("GITLAB_WEBHOOK_TOKEN", GITLAB)],
    )
    .await?
    .success()?;
    let prs = flotilla_testing::stored_events(&bus, "flotilla.source.pull_request.>", 1, WITHIN)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let event: PullRequest = prs.first().context("a merge request")?.decode()?;
    assert_eq!((event.number, event.action.as_str()), (3, "closed"));

    let refused = cli
        .run_with_env(
            &["webhook", "send", "github", "push", "--url", &url],
            &[("GITHUB_WEBHOOK_SECRET", "not-the-secret")],
        )
        .await?;
    assert_eq!(refused.code(), Some(1), "{}", refused.stderr);
    assert!(refused.stdout.starts_with("401 "), "{}", refused.stdout);

    let unreachable = cli
        .run(&[
            "webhook",
            "send",
            "github",
            "push",
            "--url",
            "http://127.0.0.1:1",
        ])
        .await?;
    assert_eq!(unreachable.code(), Some(69), "{}", unreachable.stderr);
    served.shutdown().await
}
