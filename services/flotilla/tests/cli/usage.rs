use anyhow::Result;
use flotilla_testing::{NatsServer, free_port};

use crate::support::Cli;

#[tokio::test]
async fn an_unreachable_nats_url_exits_69_naming_the_url_and_what_to_do() -> Result<()> {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let cli = Cli::at(&url);

    for args in [&["init"][..], &["tail"], &["dlq", "list"]] {
        let run = cli.run(args).await?;

        assert_eq!(run.code(), Some(69), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(&url), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("NATS_URL"), "{args:?}: {}", run.stderr);
    }
    Ok(())
}

#[tokio::test]
async fn a_usage_error_exits_64() -> Result<()> {
    let cli = Cli::at(format!("nats://127.0.0.1:{}", free_port()));

    let unknown_type = cli
        .run_with_stdin(&["publish", "build.exploded", "k"], "{}")
        .await?;
    let missing_arg = cli.run(&["dlq", "retry"]).await?;

    assert_eq!(unknown_type.code(), Some(64), "{}", unknown_type.stderr);
    assert!(
        unknown_type.stderr.contains("build.succeeded"),
        "lists the known types"
    );
    assert_eq!(missing_arg.code(), Some(64), "{}", missing_arg.stderr);
    Ok(())
}

#[tokio::test]
async fn help_teaches_with_examples_and_the_environment_variables() -> Result<()> {
    let cli = Cli::at("nats://127.0.0.1:4222");

    let top = cli.run(&["--help"]).await?.success()?;
    let init = cli.run(&["init", "--help"]).await?.success()?;

    assert!(top.stdout.contains("Examples:"), "{}", top.stdout);
    assert!(top.stdout.contains("NATS_URL"), "{}", top.stdout);
    assert!(init.stdout.contains("FLOTILLA_MAX_AGE"), "{}", init.stdout);
    assert!(
        init.stdout.contains("FLOTILLA_DUPLICATE_WINDOW"),
        "{}",
        init.stdout
    );
    Ok(())
}

#[tokio::test]
async fn reading_a_bus_that_was_never_set_up_says_to_run_init() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);

    for args in [&["replay", ">"][..], &["tail"], &["dlq", "list"]] {
        let run = cli.run(args).await?;

        assert_eq!(run.code(), Some(64), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("flotilla init"),
            "{args:?}: {}",
            run.stderr
        );
    }
    Ok(())
}

#[tokio::test]
async fn logs_written_to_a_pipe_carry_no_colour_escapes() -> Result<()> {
    let server = NatsServer::start();
    let cli = Cli::new(&server);

    // An empty NO_COLOR counts as unset: only the pipe keeps the colours out.
    let run = cli
        .run_with_env(&["init"], &[("RUST_LOG", "debug"), ("NO_COLOR", "")])
        .await?
        .success()?;

    assert!(
        run.stderr.contains("DEBUG"),
        "logs were written: {}",
        run.stderr
    );
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    Ok(())
}
