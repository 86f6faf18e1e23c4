//! The GitOps flags as a worker's command line reads them.

use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    gitops: GitopsArgs,
}

fn parse(extra: &[&str]) -> Result<Remote, InvalidArgs> {
    let mut argv = vec!["worker", "--gitops-url", "/srv/gitops.git"];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv)
        .expect("the flags parse")
        .gitops
        .remote()
}

#[test]
fn defaults_are_the_main_branch_and_a_30s_timeout() {
    let remote = parse(&[]).expect("valid");
    assert_eq!(remote.url, "/srv/gitops.git");
    assert_eq!(remote.branch, "main");
    assert_eq!(remote.network_timeout, Duration::from_secs(30));
    assert!(remote.credentials.token.is_none());
}

#[test]
fn a_missing_url_is_an_error_naming_the_variable() {
    for argv in [vec!["worker"], vec!["worker", "--gitops-url", "  "]] {
        let cli = Cli::try_parse_from(argv).expect("the flags parse");
        let error = cli.gitops.remote().expect_err("no URL");
        assert!(error.0.contains(env::GITOPS_URL), "{error}");
    }
}

#[test]
fn an_empty_or_invalid_branch_and_a_zero_timeout_are_refused() {
    for (flags, variable) in [
        (["--gitops-branch", ""], env::GITOPS_BRANCH),
        (["--gitops-branch", "a..b"], env::GITOPS_BRANCH),
        (["--gitops-branch", "main lock"], env::GITOPS_BRANCH),
        (["--git-timeout", "0s"], env::GIT_TIMEOUT),
    ] {
        let error = parse(&flags).expect_err("refused");
        assert!(error.0.contains(variable), "{flags:?}: {error}");
    }
}

#[test]
fn the_token_comes_from_the_value_or_else_the_file_and_is_not_printed() {
    let remote = parse(&["--gitops-token", "s3cret", "--gitops-username", "bot"]).expect("valid");
    assert!(matches!(&remote.credentials.token, Some(Secret::Value(v)) if v == "s3cret"));
    assert_eq!(remote.credentials.username.as_deref(), Some("bot"));
    assert!(!format!("{remote:?}").contains("s3cret"), "{remote:?}");

    let from_file = parse(&["--gitops-token-file", "/run/secrets/token"]).expect("valid");
    assert!(
        matches!(&from_file.credentials.token, Some(Secret::File(f)) if f.path.ends_with("token"))
    );

    let both = Cli::try_parse_from([
        "worker",
        "--gitops-token",
        "t",
        "--gitops-token-file",
        "/run/secrets/token",
    ]);
    assert!(both.is_err(), "a token and a token file conflict");
}

#[test]
fn ssh_settings_reach_the_credentials() {
    let remote = parse(&[
        "--gitops-ssh-key",
        "/keys/id",
        "--gitops-ssh-passphrase-file",
        "/keys/pass",
        "--gitops-known-hosts",
        "/keys/known_hosts",
    ])
    .expect("valid");
    let credentials = remote.credentials;
    assert_eq!(credentials.ssh_key, Some("/keys/id".into()));
    assert!(matches!(credentials.ssh_passphrase, Some(Secret::File(_))));
    assert_eq!(credentials.known_hosts, Some("/keys/known_hosts".into()));
}

#[test]
fn the_working_copy_has_a_default_and_mirrors_live_beside_it() {
    let cli = Cli::try_parse_from(["worker"]).expect("the flags parse");
    assert_eq!(cli.gitops.dir(), PathBuf::from(DEFAULT_GITOPS_DIR));
    assert_eq!(
        cli.gitops.mirror_dir("sync-watcher"),
        PathBuf::from("/var/lib/flotilla/gitops-sync-watcher.git")
    );
    let cli = Cli::try_parse_from(["worker", "--gitops-dir", "/data/work/"]).expect("parse");
    assert_eq!(
        cli.gitops.mirror_dir("reaper"),
        PathBuf::from("/data/work-reaper.git")
    );
}

#[test]
fn the_help_lists_every_variable() {
    let help = Cli::command().render_long_help().to_string();
    for variable in [
        env::GITOPS_URL,
        env::GITOPS_BRANCH,
        env::GITOPS_DIR,
        env::GITOPS_SSH_KEY,
        env::GITOPS_TOKEN,
        env::GITOPS_TOKEN_FILE,
        env::GITOPS_USERNAME,
        env::GITOPS_SSH_PASSPHRASE_FILE,
        env::GITOPS_KNOWN_HOSTS,
        env::GIT_TIMEOUT,
    ] {
        assert!(help.contains(variable), "{variable} missing from\n{help}");
    }
}
