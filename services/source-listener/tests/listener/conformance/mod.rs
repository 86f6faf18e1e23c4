//! Conformance: real payloads that GitHub, Gitea and GitLab sent (or publish as examples) parse
//! into the events they mean.
//!
//! The payloads live in `../shared/fixtures/{github,gitlab,gitea}` beside the workspace (or
//! `$FLOTILLA_FIXTURES`), not in the project. Each test prints that it is skipped and passes
//! where the folder is absent. Bodies go through the whole pure intake: they are signed (or
//! given the token) exactly as received, authenticated, parsed and filtered.

mod gitea;
mod github;
mod gitlab;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use prost::Message;
use source_listener::auth::{Keys, github_signature};
use source_listener::{Delivery, Endpoint, Filters, Intake, Secrets, Verdict};

const SECRET: &str = "conformance-secret";

/// The fixtures folder of `provider`, or `None` (and a note) when it is not there.
pub fn fixtures(provider: &str) -> Option<PathBuf> {
    let root = std::env::var_os("FLOTILLA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"));
    let dir = root.join(provider);
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: no fixtures at {}", dir.display());
        None
    }
}

pub fn intake() -> Intake {
    Intake::new(
        Secrets {
            github: Keys::of([SECRET]),
            gitlab: Keys::of([SECRET]),
            generic: Keys::default(),
        },
        Filters::default(),
    )
}

/// Headers as recorded beside a capture: `name<TAB>value` or `Name: value` lines.
pub fn recorded_headers(path: &Path) -> Result<HeaderMap> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let mut headers = HeaderMap::new();
    for line in text.lines() {
        let split = line.split_once('\t').or_else(|| line.split_once(':'));
        let Some((name, value)) = split else { continue };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.insert(name, value);
        }
    }
    Ok(headers)
}

/// Sends `file` to the GitHub endpoint as `event`, signed, with `headers` besides.
pub fn github(file: &Path, event: &str, mut headers: HeaderMap) -> Result<Delivery> {
    let body = std::fs::read(file).with_context(|| file.display().to_string())?;
    headers.insert("x-github-event", HeaderValue::from_str(event)?);
    let signature = github_signature(SECRET.as_bytes(), &body);
    headers.insert("x-hub-signature-256", HeaderValue::from_str(&signature)?);
    intake()
        .handle(Endpoint::GitHub, &headers, &body)
        .with_context(|| format!("{} as {event}", file.display()))
}

pub fn gitea(file: &Path, event: &str) -> Result<Delivery> {
    let mut headers = HeaderMap::new();
    headers.insert("x-gitea-event", HeaderValue::from_str(event)?);
    github(file, event, headers)
}

pub fn gitlab(file: &Path, event: &'static str) -> Result<Delivery> {
    let body = std::fs::read(file).with_context(|| file.display().to_string())?;
    let mut headers = HeaderMap::new();
    headers.insert("x-gitlab-event", HeaderValue::from_static(event));
    headers.insert("x-gitlab-token", HeaderValue::from_static(SECRET));
    intake()
        .handle(Endpoint::GitLab, &headers, &body)
        .with_context(|| format!("{} as {event}", file.display()))
}

pub fn decoded<M: Message + Default>(delivery: &Delivery) -> M {
    match &delivery.verdict {
        Verdict::Publish(events) if events.len() == 1 => {
            M::decode(events[0].payload.as_ref()).expect("the event's payload decodes")
        }
        other => panic!("expected one event, got {other:?}"),
    }
}

pub fn is_ignored(delivery: &Delivery) -> bool {
    matches!(delivery.verdict, Verdict::Ignore(_))
}

/// Every `.json` file under `dir`, at any depth, in a stable order.
pub fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[test]
fn every_payload_is_refused_401_under_a_wrong_or_missing_signature_or_token() -> Result<()> {
    let (Some(github), Some(gitlab)) = (fixtures("github"), fixtures("gitlab")) else {
        return Ok(());
    };
    let intake = intake();
    let mut checked = 0;
    for file in json_files(&github.join("examples"))? {
        let body = std::fs::read(&file)?;
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", HeaderValue::from_static("push"));
        let missing = intake.handle(Endpoint::GitHub, &headers, &body);
        let wrong = github_signature(b"not the secret", &body);
        headers.insert("x-hub-signature-256", HeaderValue::from_str(&wrong)?);
        let forged = intake.handle(Endpoint::GitHub, &headers, &body);
        for (what, answer) in [("missing", missing), ("wrong", forged)] {
            let status = answer.err().map(|e| e.status().as_u16());
            assert_eq!(
                status,
                Some(401),
                "{} with a {what} signature",
                file.display()
            );
        }
        checked += 1;
    }
    for file in json_files(&gitlab)? {
        let body = std::fs::read(&file)?;
        let mut headers = HeaderMap::new();
        headers.insert("x-gitlab-event", HeaderValue::from_static("Push Hook"));
        let missing = intake.handle(Endpoint::GitLab, &headers, &body);
        headers.insert("x-gitlab-token", HeaderValue::from_static("not-the-token"));
        let wrong = intake.handle(Endpoint::GitLab, &headers, &body);
        for (what, answer) in [("missing", missing), ("wrong", wrong)] {
            let status = answer.err().map(|e| e.status().as_u16());
            assert_eq!(status, Some(401), "{} with a {what} token", file.display());
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} payloads found");
    Ok(())
}
