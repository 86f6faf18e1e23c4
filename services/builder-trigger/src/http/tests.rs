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
