//! Conformance with the CloudEvents NATS binding, read from the spec's own examples in
//! `../shared/fixtures/cloudevents` (or `$FLOTILLA_FIXTURES/cloudevents`). Where the folder is
//! absent (a plain clone), each test says it is skipped and passes.

use std::path::PathBuf;

use anyhow::{Context, Result};
use async_nats::HeaderMap;
use bytes::Bytes;
use flotilla_bus::Event;
use serde_json::Value;

fn fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("FLOTILLA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        })
        .join("cloudevents");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: CloudEvents fixtures not found at {}",
            dir.display()
        );
        None
    }
}

/// Splits a "name: value" header block from the body at the first blank line.
fn parse_rendering(text: &str) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    let mut lines = text.lines();
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim(), value.trim());
        }
    }
    let body: Vec<&str> = lines.collect();
    (headers, Bytes::from(body.join("\n")))
}

#[test]
fn the_bindings_binary_mode_example_is_read() -> Result<()> {
    let Some(dir) = fixtures() else { return Ok(()) };
    let text = std::fs::read_to_string(dir.join("nats-binding-example.binary-mode.txt"))?;
    // The example frames the header block between rulers; keep only "name: value" lines.
    let block = text
        .split("------------------ header --------------------")
        .nth(1)
        .and_then(|rest| rest.split("------------------ payload").next())
        .context("header section")?;
    let (headers, _) = parse_rendering(block.trim_start());
    let event = Event::from_parts("mySubject", Some(&headers), Bytes::from_static(b"{}"))?;
    assert_eq!(event.id, "1234-1234-1234");
    assert_eq!(event.source, "/mycontext/subcontext");
    assert_eq!(event.ce_type, "com.example.someevent");
    assert_eq!(event.time.as_deref(), Some("2018-04-05T03:56:24Z"));
    assert_eq!(
        event.content_type, "application/json",
        "from ce-datacontenttype"
    );
    Ok(())
}

#[test]
fn every_json_format_example_is_read_in_structured_mode_and_binary_mode() -> Result<()> {
    let Some(dir) = fixtures() else { return Ok(()) };
    let examples = dir.join("json-format-examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !name.ends_with(".json") || name.starts_with("batch") {
            continue;
        }
        let json = std::fs::read(&path)?;
        let expected: Value = serde_json::from_slice(&json)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "application/cloudevents+json; charset=utf-8",
        );
        let parsed = Event::from_parts("ce.example", Some(&headers), Bytes::from(json));
        if expected["data_base64"]
            .as_str()
            .is_some_and(|d| d.contains("..."))
        {
            // The spec's placeholder is not base64: refused, with the attribute named.
            let err = parsed.err().context("placeholder data_base64 accepted")?;
            assert!(err.to_string().contains("data_base64"), "{name}: {err}");
            continue;
        }
        let event = parsed.with_context(|| format!("structured {name}"))?;
        assert_eq!(
            event.id,
            expected["id"].as_str().unwrap_or_default(),
            "{name}"
        );
        assert_eq!(
            event.ce_type,
            expected["type"].as_str().unwrap_or_default(),
            "{name}"
        );
        if let Some(data) = expected.get("data").filter(|d| d.is_object()) {
            let got: Value = serde_json::from_slice(&event.payload)?;
            assert_eq!(&got, data, "{name}: data");
        }

        let rendering = path.with_file_name(name.replace(".json", ".http-binary-mode.txt"));
        if rendering.exists() {
            let (headers, body) = parse_rendering(&std::fs::read_to_string(&rendering)?);
            let binary = Event::from_parts("ce.example", Some(&headers), body)
                .with_context(|| format!("binary {name}"))?;
            assert_eq!(binary.id, event.id, "{name}: both modes carry the same id");
            assert_eq!(binary.source, event.source, "{name}");
        }
        checked += 1;
    }
    assert!(checked >= 5, "expected the spec's examples, read {checked}");
    Ok(())
}

#[test]
fn base64_data_without_a_content_type_is_decoded() -> Result<()> {
    let Some(dir) = fixtures() else { return Ok(()) };
    let json =
        std::fs::read(dir.join("json-format-examples/D2.data_base64-no-datacontenttype.json"))?;
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", "application/cloudevents+json");
    let event = Event::from_parts("ce.example", Some(&headers), Bytes::from(json))?;
    let data: Value = serde_json::from_slice(&event.payload)?;
    assert_eq!(data["xyz"], 123);
    Ok(())
}
