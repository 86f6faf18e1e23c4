use flotilla_bus::{EventType, Outgoing};
use flotilla_proto::v1;
use serde_json::{Value, json};

use super::*;

const PREVIEW_ONLY: &str = r#"
filters:
  - name: previews-need-the-label
    providers: [github, gitea]
    events: [source.pull_request]
    data:
      - path: pull_request.labels.#.name
        type: string
        value: ["^preview$"]
"#;

fn filters(yaml: &str) -> Filters {
    Filters::from_yaml(yaml, "test.yaml").expect("valid rules")
}

fn pr_delivery(provider: Provider) -> Delivery {
    let out = Outgoing::new(
        EventType::SourcePullRequest,
        "acme/ping",
        &v1::PullRequest::default(),
    )
    .expect("catalog type");
    Delivery::publish(provider, "pull_request", "d-1".into(), out)
}

fn push_delivery() -> Delivery {
    let out =
        Outgoing::new(EventType::SourcePush, "acme/ping", &v1::Push::default()).expect("catalog");
    Delivery::publish(Provider::GitHub, "push", "d-1".into(), out)
}

fn labels(names: &[&str]) -> Value {
    let labels: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
    json!({"action": "opened", "number": 3, "pull_request": {"labels": labels, "draft": false}})
}

/// The reason a delivery was dropped, or `None` when it passed.
fn dropped(filters: &Filters, delivery: Delivery, body: &Value) -> Option<String> {
    match filters.apply(delivery, body.to_string().as_bytes()).verdict {
        Verdict::Ignore(why) => Some(why),
        Verdict::Publish(_) => None,
    }
}

fn config_error(yaml: &str) -> String {
    Filters::from_yaml(yaml, "bad.yaml")
        .expect_err("invalid rules")
        .to_string()
}

#[test]
fn only_pull_requests_labelled_preview_pass_the_label_rule() {
    let filters = filters(PREVIEW_ONLY);
    let labelled = labels(&["backend", "preview"]);
    assert_eq!(
        dropped(&filters, pr_delivery(Provider::GitHub), &labelled),
        None
    );
    let why = dropped(
        &filters,
        pr_delivery(Provider::GitHub),
        &labels(&["backend"]),
    )
    .expect("dropped without the label");
    assert_eq!(why, "filter `previews-need-the-label` did not match");
    let near_miss = labels(&["preview-later"]);
    assert!(dropped(&filters, pr_delivery(Provider::GitHub), &near_miss).is_some());
}

#[test]
fn a_rule_applies_only_to_its_providers_and_event_types() {
    let filters = filters(PREVIEW_ONLY);
    let unlabelled = labels(&[]);
    assert_eq!(
        dropped(&filters, pr_delivery(Provider::GitLab), &unlabelled),
        None
    );
    assert_eq!(dropped(&filters, push_delivery(), &unlabelled), None);
    assert!(dropped(&filters, pr_delivery(Provider::Gitea), &unlabelled).is_some());
}

#[test]
fn an_ignored_delivery_stays_ignored_with_its_own_reason() {
    let filters = filters(PREVIEW_ONLY);
    let ping = Delivery::ignore(Provider::GitHub, "ping", "d".into(), "ping".into());
    assert_eq!(dropped(&filters, ping, &json!({})).as_deref(), Some("ping"));
}

#[test]
fn a_missing_path_never_matches() {
    let filters = filters(
        "filters:\n- name: draft\n  data:\n  - {path: pull_request.nope, type: bool, value: ['false'], comparator: '!='}\n",
    );
    assert!(dropped(&filters, push_delivery(), &labels(&[])).is_some());
}

#[test]
fn not_equal_means_no_element_matches() {
    let filters = filters(
        "filters:\n- name: no-wip\n  data:\n  - {path: pull_request.labels.#.name, type: string, value: [wip, hold], comparator: '!='}\n",
    );
    assert_eq!(
        dropped(&filters, push_delivery(), &labels(&["preview"])),
        None
    );
    assert_eq!(dropped(&filters, push_delivery(), &labels(&[])), None);
    assert!(dropped(&filters, push_delivery(), &labels(&["preview", "wip"])).is_some());
}

#[test]
fn numbers_compare_with_every_comparator() {
    let body = labels(&[]);
    for (comparator, value, passes) in [
        ("=", "3", true),
        ("!=", "3", false),
        (">", "2", true),
        (">", "3", false),
        (">=", "3", true),
        ("<", "3", false),
        ("<=", "3.0", true),
    ] {
        let yaml = format!(
            "filters:\n- name: n\n  data:\n  - {{path: number, type: number, value: ['{value}'], comparator: '{comparator}'}}\n"
        );
        let result = dropped(&filters(&yaml), push_delivery(), &body);
        assert_eq!(result.is_none(), passes, "number {comparator} {value}");
    }
}

#[test]
fn booleans_match_their_value() {
    let yaml = "filters:\n- name: ready\n  data:\n  - {path: pull_request.draft, type: bool, value: ['false']}\n";
    assert_eq!(dropped(&filters(yaml), push_delivery(), &labels(&[])), None);
    let draft = json!({"pull_request": {"draft": true}});
    assert!(dropped(&filters(yaml), push_delivery(), &draft).is_some());
}

#[test]
fn with_or_one_matching_data_filter_is_enough() {
    let yaml = "filters:\n- name: either\n  dataLogicalOperator: or\n  data:\n  - {path: action, type: string, value: [closed]}\n  - {path: number, type: number, value: ['3']}\n";
    assert_eq!(dropped(&filters(yaml), push_delivery(), &labels(&[])), None);
    let and = yaml.replace("dataLogicalOperator: or", "dataLogicalOperator: and");
    assert!(dropped(&filters(&and), push_delivery(), &labels(&[])).is_some());
}

#[test]
fn invalid_rules_are_refused_with_the_reason() {
    let rule = |data: &str| format!("filters:\n- name: r\n  data:\n  - {data}\n");
    for (yaml, says) in [
        (rule("{path: a, type: string, value: ['(']}"), "regex"),
        (rule("{path: a, type: number, value: [three]}"), "not a number"),
        (rule("{path: a, type: bool, value: [yes]}"), "true or false"),
        (rule("{path: a, type: string, value: [x], comparator: '>'}"), "only with type number"),
        (rule("{path: a, type: number, value: ['1'], comparator: '=>'}"), "unknown comparator"),
        (rule("{path: a, type: string, value: []}"), "nothing to compare"),
        (rule("{path: a, type: date, value: [x]}"), "date"),
        (rule("{path: '', type: string, value: [x]}"), "path"),
        ("filters:\n- name: r\n  data: []\n".into(), "no filters"),
        ("filters:\n- name: r\n  providers: [bitbucket]\n  data:\n  - {path: a, type: string, value: [x]}\n".into(), "bitbucket"),
        ("filters:\n- name: r\n  events: [pull_request]\n  data:\n  - {path: a, type: string, value: [x]}\n".into(), "source.pull_request"),
        ("filters:\n- name: ''\n  data:\n  - {path: a, type: string, value: [x]}\n".into(), "name"),
        ("filter: []\n".into(), "unknown field `filter`"),
        ("filters: {}\n".into(), "test"),
    ] {
        let error = config_error(&yaml);
        let says = if says == "test" { "bad.yaml" } else { says };
        assert!(error.contains(says), "{yaml}\n=> {error}");
        assert!(error.contains("bad.yaml"), "names the file: {error}");
    }
}

#[test]
fn two_rules_with_one_name_are_refused() {
    let rule = "- name: same\n  data:\n  - {path: a, type: string, value: [x]}\n";
    let error = config_error(&format!("filters:\n{rule}{rule}"));
    assert!(error.contains("same name"), "{error}");
}

#[test]
fn an_empty_file_has_no_rules() {
    assert!(filters("{}").is_empty());
    assert!(filters("  \n").is_empty());
    assert_eq!(filters(PREVIEW_ONLY).len(), 1);
}

/// The YAML blocks of the README, in order.
fn readme_examples() -> Vec<String> {
    let readme = include_str!("../../README.md");
    readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_yaml_example_of_the_readme_is_a_valid_config() {
    let examples = readme_examples();
    assert!(examples.len() >= 5, "found {} examples", examples.len());
    for example in &examples {
        Filters::from_yaml(example, "README.md")
            .unwrap_or_else(|e| panic!("README example does not load: {e}\n{example}"));
    }
}

#[test]
fn the_readme_preview_filter_still_lets_closing_through() {
    let example = readme_examples()
        .into_iter()
        .find(|e| e.contains("^closed$"))
        .expect("the README has the data-filter preview example");
    let rules = filters(&example);
    let body = |action: &str, names: &[&str]| {
        let mut body = labels(names);
        body["action"] = json!(action);
        body.to_string()
    };
    let opened = rules.apply(
        pr_delivery(Provider::GitHub),
        body("opened", &[]).as_bytes(),
    );
    assert!(matches!(opened.verdict, Verdict::Ignore(_)), "{opened:?}");
    let labelled = rules.apply(
        pr_delivery(Provider::GitHub),
        body("opened", &["preview"]).as_bytes(),
    );
    assert!(matches!(labelled.verdict, Verdict::Publish(_)));
    let closed = rules.apply(
        pr_delivery(Provider::GitHub),
        body("closed", &[]).as_bytes(),
    );
    assert!(matches!(closed.verdict, Verdict::Publish(_)), "{closed:?}");
}
