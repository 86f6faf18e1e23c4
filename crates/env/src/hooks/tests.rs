use std::path::Path;
use std::time::Duration;

use super::*;
use crate::Error;

const EXAMPLE: &str = r#"
hooks:
  - name: database
    kinds: [preview, staging]
    apps: [ping]
    timeout: 15m
    provision:
      command: ./examples/hooks/infra.sh create
    deprovision:
      command: ./examples/hooks/infra.sh destroy
  - name: dataset
    provision:
      command: ./examples/hooks/restore.sh
  - name: ci-cleanup
    kinds: [preview]
    deprovision:
      request: {"url": "https://ci.example/cleanup/{{env}}"}
"#;

fn parse(text: &str) -> Result<Hooks, Error> {
    Hooks::parse(text, Path::new("hooks.yaml"))
}

fn invalid(text: &str) -> String {
    match parse(text) {
        Err(e @ Error::HooksInvalid { .. }) => e.to_string(),
        other => panic!("not refused as invalid: {other:?}"),
    }
}

#[test]
fn the_readme_example_parses_with_its_defaults() {
    let hooks = parse(EXAMPLE).expect("valid");
    assert_eq!(hooks.len(), 3);
    let database = hooks.get("database").expect("database");
    assert_eq!(database.timeout, Duration::from_secs(15 * 60));
    assert_eq!(database.apps, ["ping"]);
    assert_eq!(
        database
            .action(Phase::Deprovision)
            .and_then(|a| a.command.as_deref()),
        Some("./examples/hooks/infra.sh destroy")
    );
    let dataset = hooks.get("dataset").expect("dataset");
    assert_eq!(
        dataset.kinds,
        ["preview", "staging"],
        "both kinds by default"
    );
    assert_eq!(dataset.timeout, config::DEFAULT_TIMEOUT);
    assert!(dataset.deprovision.is_none());
    let cleanup = hooks.get("ci-cleanup").expect("ci-cleanup");
    assert!(matches!(
        cleanup.action(Phase::Deprovision).and_then(|a| a.request.as_ref()),
        Some(Request::Inline(v)) if v["url"] == "https://ci.example/cleanup/{{env}}"
    ));
    assert_eq!(hooks.position("dataset"), Some(1));
    assert_eq!(hooks.file(), Some(Path::new("hooks.yaml")));
}

#[test]
fn an_empty_file_has_no_hooks() {
    assert!(parse("").expect("empty").is_empty());
    assert!(parse("hooks: []\n").expect("empty list").is_empty());
}

#[test]
fn mistakes_are_refused_naming_the_file_the_hook_and_the_field() {
    let cases: &[(&str, &[&str])] = &[
        (
            "hooks:\n  - name: db\n    provision:\n      comand: x\n",
            &["hooks.yaml", "hook `db`", "provision", "comand"],
        ),
        (
            "hooks:\n  - name: db\n    timout: 5m\n    provision: {command: x}\n",
            &["hook `db`", "timout"],
        ),
        ("hook: []\n", &["hooks.yaml", "hook"]),
        (
            "hooks:\n  - name: db\n    provision: {command: x}\n  - name: db\n    provision: {command: y}\n",
            &["`db` is defined twice"],
        ),
        ("hooks:\n  - name: db\n", &["`db`", "neither"]),
        (
            "hooks:\n  - name: db\n    provision: {}\n",
            &["`db`", "provision", "nothing to run"],
        ),
        (
            "hooks:\n  - name: Data_Base\n    provision: {command: x}\n",
            &["Data_Base", "DNS-1123"],
        ),
        (
            "hooks:\n  - name: db\n    kinds: [production]\n    provision: {command: x}\n",
            &["`db`", "kinds", "production"],
        ),
        (
            "hooks:\n  - name: db\n    timeout: soon\n    provision: {command: x}\n",
            &["`db`", "timeout", "soon"],
        ),
        (
            "hooks:\n  - name: db\n    timeout: 0s\n    provision: {command: x}\n",
            &["`db`", "timeout"],
        ),
        (
            "hooks:\n  - name: db\n    provision: {request: 3}\n",
            &["`db`", "request"],
        ),
        (
            "hooks:\n  - provision: {command: x}\n",
            &["hooks[0]", "name"],
        ),
    ];
    for (text, wanted) in cases {
        let error = invalid(text);
        for want in *wanted {
            assert!(error.contains(want), "{text:?}: {error:?} lacks {want:?}");
        }
    }
}

#[test]
fn an_unreadable_file_names_the_variable_and_the_path() {
    let error = Hooks::load(Path::new("/nonexistent/hooks.yaml")).expect_err("unreadable");
    assert!(matches!(error, Error::HooksUnreadable { .. }));
    assert!(
        error
            .to_string()
            .starts_with("FLOTILLA_HOOKS /nonexistent/hooks.yaml:"),
        "{error}"
    );
    assert!(!error.is_retryable());
}

#[test]
fn which_hooks_apply_depends_on_the_envs_kind_and_apps_in_file_order() {
    let hooks = parse(EXAMPLE).expect("valid");
    let names = |kind: &str, apps: &[&str]| -> Vec<String> {
        hooks
            .applicable(kind, apps.iter().copied())
            .iter()
            .map(|h| h.name.clone())
            .collect()
    };
    assert_eq!(
        names("preview", &["ping", "maindb"]),
        ["database", "dataset", "ci-cleanup"]
    );
    assert_eq!(names("staging", &["ping"]), ["database", "dataset"]);
    assert_eq!(
        names("preview", &["web"]),
        ["dataset", "ci-cleanup"],
        "database is only for envs holding ping"
    );
    assert!(names("production", &["ping"]).is_empty());
}

fn hook(name: &str) -> Hook {
    Hook {
        provision: Some(Action {
            command: Some("true".into()),
            ..Action::default()
        }),
        ..Hook::new(name)
    }
}

#[test]
fn a_requested_change_gets_its_hooks_pending_in_file_order() {
    let (database, dataset) = (hook("database"), hook("dataset"));
    let hooks = requested(&[], &[&database, &dataset], "ping-v1");
    let summary: Vec<(&str, &str, RunStatus, bool)> = hooks
        .iter()
        .map(|h| {
            (
                h.name.as_str(),
                h.change_id.as_str(),
                h.provision.state,
                h.created,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("database", "ping-v1", RunStatus::Pending, false),
            ("dataset", "ping-v1", RunStatus::Pending, false),
        ]
    );
}

#[test]
fn a_newer_change_keeps_what_earlier_ones_created_and_waits_for_a_run_still_going() {
    let (database, dataset) = (hook("database"), hook("dataset"));
    let mut earlier = requested(&[], &[&database, &dataset], "ping-v1");
    earlier[0].created = true;
    earlier[0].provision.state = RunStatus::Succeeded;
    earlier[1].created = true;
    earlier[1].provision.state = RunStatus::Running;

    let hooks = requested(&earlier, &[&database, &dataset], "ping-v2");

    let summary: Vec<(&str, &str, RunStatus, bool)> = hooks
        .iter()
        .map(|h| {
            (
                h.name.as_str(),
                h.change_id.as_str(),
                h.provision.state,
                h.created,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("dataset", "ping-v1", RunStatus::Running, true),
            ("database", "ping-v2", RunStatus::Pending, true),
            ("dataset", "ping-v2", RunStatus::Pending, true),
        ]
    );
}

#[test]
fn the_same_change_requested_again_keeps_its_runs() {
    let database = hook("database");
    let mut earlier = requested(&[], &[&database], "ping-v1");
    earlier[0].provision.state = RunStatus::Succeeded;
    earlier[0].created = true;
    assert_eq!(requested(&earlier, &[&database], "ping-v1"), earlier);
}

#[test]
fn a_hook_that_created_something_and_no_longer_applies_is_kept_for_the_teardown() {
    let (database, dataset) = (hook("database"), hook("dataset"));
    let mut earlier = requested(&[], &[&database, &dataset], "ping-v1");
    earlier[0].created = true;
    earlier[0].provision.state = RunStatus::Failed;
    let hooks = requested(&earlier, &[&dataset], "ping-v2");
    assert_eq!(hooks.len(), 2);
    assert_eq!(
        (hooks[1].name.as_str(), hooks[1].change_id.as_str()),
        ("database", "ping-v1")
    );
    assert_eq!(
        of_change(&hooks, "ping-v2")
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>(),
        ["dataset"],
        "the env waits only on its change's hooks"
    );
}

#[test]
fn a_deprovision_only_hook_has_nothing_to_wait_for_and_is_torn_down() {
    let cleanup = Hook {
        deprovision: Some(Action {
            command: Some("true".into()),
            ..Action::default()
        }),
        ..Hook::new("cleanup")
    };
    let hooks = requested(&[], &[&cleanup], "ping-v1");
    assert_eq!(hooks[0].provision.state, RunStatus::Skipped);
    assert!(hooks[0].created);
}

#[test]
fn run_ids_are_dns_labels_stable_per_env_change_hook_and_phase() {
    let id = run_id("pr-acme-ping-7", "ping-v1", "database", Phase::Provision);
    assert!(crate::is_dns_label(&id), "{id}");
    assert!(
        id.starts_with("hook-pr-acme-ping-7-database-provision-"),
        "{id}"
    );
    assert_eq!(
        id,
        run_id("pr-acme-ping-7", "ping-v1", "database", Phase::Provision)
    );
    for other in [
        run_id("pr-acme-ping-7", "ping-v2", "database", Phase::Provision),
        run_id("pr-acme-ping-7", "ping-v1", "dataset", Phase::Provision),
        run_id("pr-acme-ping-7", "ping-v1", "database", Phase::Deprovision),
    ] {
        assert_ne!(id, other);
    }
    let long = run_id(
        "pr-a-very-long-organisation-name-with-a-long-repository-name-1234",
        "ping-v1",
        "database",
        Phase::Deprovision,
    );
    assert!(crate::is_dns_label(&long), "{long}");
    assert_eq!(
        hook_key("pr-acme-ping-7", "ping-v1"),
        "pr-acme-ping-7/ping-v1"
    );
}

#[test]
fn hook_states_read_back_and_old_records_without_them_still_read() {
    let database = hook("database");
    let mut hooks = requested(&[], &[&database], "ping-v1");
    hooks[0].provision = RunState {
        state: RunStatus::Running,
        attempt: 1,
        run_id: "hook-x".into(),
        pid: Some(42),
        ..RunState::default()
    };
    let record = crate::EnvRecord {
        hooks: hooks.clone(),
        ..Default::default()
    };
    let json = serde_json::to_value(&record).expect("encodes");
    assert_eq!(json["hooks"][0]["provision"]["state"], "running");
    assert_eq!(json["hooks"][0]["deprovision"]["state"], "pending");
    assert!(json["hooks"][0]["provision"].get("finished_at").is_none());
    let back: crate::EnvRecord = serde_json::from_value(json).expect("decodes");
    assert_eq!(back.hooks, hooks);

    let old: crate::EnvRecord =
        serde_json::from_str(r#"{"state":"ready","kind":"preview"}"#).expect("an old record");
    assert!(old.hooks.is_empty());
    let encoded = serde_json::to_value(&old).expect("encodes");
    assert!(encoded.get("hooks").is_none(), "no empty list written");

    let newer: HookState =
        serde_json::from_str(r#"{"name":"db","change_id":"c","provision":{"state":"paused"}}"#)
            .expect("a state a newer worker wrote");
    assert_eq!(newer.provision.state, RunStatus::Unknown);
    assert!(!newer.provision.state.is_done());
}
