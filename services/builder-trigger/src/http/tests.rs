use std::collections::BTreeMap;

use super::*;

fn values() -> BTreeMap<String, String> {
    template::PLACEHOLDERS
        .iter()
        .map(|p| ((*p).to_owned(), String::new()))
        .chain([
            ("sha".to_owned(), "1a2b3c4".to_owned()),
            ("repo".to_owned(), "acme/ping".to_owned()),
            ("token".to_owned(), "t0k".to_owned()),
            ("env".to_owned(), "a \"quoted\" env".to_owned()),
        ])
        .collect()
}

#[test]
fn placeholders_are_filled_inside_json_strings_so_values_cannot_break_the_body() {
    let template = Template::parse(
        r#"{"url": "https://ci.example/{{repo}}/runs", "headers": {"Authorization": "Bearer {{token}}"},
            "body": {"sha": "{{sha}}", "note": "env {{ env }}", "n": 3}}"#,
    )
    .expect("a valid template");
    let request = template.render(&values()).expect("renders");
    assert_eq!(request.url, "https://ci.example/acme/ping/runs");
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.headers,
        vec![("Authorization".to_owned(), "Bearer t0k".to_owned())]
    );
    assert_eq!(
        request.body,
        Some(serde_json::json!({"sha": "1a2b3c4", "note": "env a \"quoted\" env", "n": 3}))
    );
}

#[test]
fn templates_with_unknown_placeholders_or_fields_are_refused_when_loaded() {
    let unknown =
        Template::parse(r#"{"url": "https://ci.example/{{commit}}"}"#).expect_err("unknown");
    assert!(
        unknown.contains("unknown placeholder {{commit}}"),
        "{unknown}"
    );
    let unclosed = Template::parse(r#"{"url": "https://ci.example/{{sha"}"#).expect_err("unclosed");
    assert!(unclosed.contains("without"), "{unclosed}");
    let field = Template::parse(r#"{"url": "https://x", "bdy": {}}"#).expect_err("typo");
    assert!(field.contains("bdy"), "{field}");
}

#[test]
fn a_poll_result_reads_its_status_with_the_same_headers() {
    let template = Template::parse(
        r#"{"url": "https://argo.example/api/v1/workflows/ci", "headers": {"Authorization": "Bearer {{token}}"},
            "result": {"poll": {"url": "https://argo.example/api/v1/workflows/ci/{{id}}", "id": "/metadata/name",
                                "status": "/status/phase", "interval": "2s"}}}"#,
    )
    .expect("a valid template");
    let ResultMode::Poll(poll) = &template.result else {
        panic!("a poll template")
    };
    assert_eq!(poll.interval, Duration::from_secs(2));
    let mut values = values();
    values.insert("id".into(), "wf-9".into());
    let request = template.status_request(poll, &values).expect("renders");
    assert_eq!(request.url, "https://argo.example/api/v1/workflows/ci/wf-9");
    assert_eq!(request.method, "GET");
    assert_eq!(request.headers[0].1, "Bearer t0k");
}

#[test]
fn a_callback_template_needs_a_callback_url() {
    let settings = Settings {
        build: Template::parse(r#"{"url": "https://ci.example"}"#).expect("valid"),
        test: None,
        token: None,
        callback_url: None,
        callback_secret: None,
    };
    let err = settings.check().expect_err("no callback url");
    assert!(err.to_string().contains(env::CALLBACK_URL), "{err}");
}

#[test]
fn url_placeholders_are_percent_encoded_for_the_part_of_the_url_they_stand_in() {
    let template = Template::parse(
        r#"{"url": "https://{{app}}.ci.example/{{repo}}/branches/{{ref}}?ref={{ref}}&token={{token}}#{{sha}}",
            "headers": {"X-Ref": "{{ref}}"}, "body": {"ref": "{{ref}}"}}"#,
    )
    .expect("a valid template");
    let mut values = values();
    values.insert("app".into(), "ping".into());
    values.insert("ref".into(), "refs/heads/x?a=b&c#d e".into());
    values.insert("token".into(), "t/k+=".into());
    let request = template.render(&values).expect("renders");
    assert_eq!(
        request.url,
        "https://ping.ci.example/acme/ping/branches/refs/heads/x%3Fa%3Db%26c%23d%20e\
         ?ref=refs%2Fheads%2Fx%3Fa%3Db%26c%23d%20e&token=t%2Fk%2B%3D#1a2b3c4"
    );
    // Headers and bodies are not URLs: values go in as they are.
    assert_eq!(request.headers[0].1, "refs/heads/x?a=b&c#d e");
    assert_eq!(
        request.body,
        Some(serde_json::json!({"ref": "refs/heads/x?a=b&c#d e"}))
    );
}

#[test]
fn a_base_url_placeholder_is_taken_as_is_and_a_climbing_path_is_refused() {
    let template = Template::parse(r#"{"url": "{{env_url}}/checks/{{ref}}"}"#).expect("valid");
    let mut values = values();
    values.insert("env_url".into(), "https://pr-7.preview.example:8443".into());
    values.insert("ref".into(), "refs/heads/main".into());
    let request = template.render(&values).expect("renders");
    assert_eq!(
        request.url,
        "https://pr-7.preview.example:8443/checks/refs/heads/main"
    );
    values.insert("ref".into(), "../../admin".into());
    let err = template.render(&values).expect_err("climbs");
    assert!(err.contains("{{ref}}"), "{err}");
}

#[test]
fn the_request_line_of_a_dry_run_shows_no_secret() {
    let settings = Settings {
        build: Template::parse(r#"{"url": "https://u:p@ci.example/run?token={{token}}&sha={{sha}}", "result": {"poll": {"url": "https://ci.example/{{id}}", "status": "/s"}}}"#)
            .expect("valid"),
        test: None,
        token: Some("t0k".into()),
        callback_url: None,
        callback_secret: None,
    };
    let backend = Backend::new(settings).expect("a client");
    let run = crate::run::Run {
        kind: Kind::Build,
        id: "build-ping".into(),
        change_id: "ping-v1".into(),
        env: None,
        vars: vec![("FLOTILLA_SHA", "1a2b3c4".into())],
        timeout: Duration::from_secs(1),
        exec: None,
    };
    assert_eq!(
        backend.request_line(&run).as_deref(),
        Some("POST https://***@ci.example/run?token=***&sha=1a2b3c4")
    );
}

/// Why a `..` value is refused rather than encoded: URL parsers take `%2E%2E` for `..` too.
#[test]
fn an_encoded_dot_dot_segment_still_climbs_the_path() {
    let url = reqwest::Url::parse("https://ci.example/api/%2E%2E/admin").expect("a URL");
    assert_eq!(url.path(), "/admin");
}
