//! `flotilla dlq`: a letter's retry headers and its row in the list.

use async_nats::HeaderMap;
use bytes::Bytes;
use time::macros::datetime;

use super::*;

fn letter() -> DeadLetter {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("ce-id", "e-1"),
        ("ce-type", "dev.flotilla.env.requested.v1"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        (header::RETRY_FOR, "someone-else"),
        (header::DLQ_SUBJECT, "flotilla.env.requested.pr-1"),
        (header::DLQ_REASON, "no such app"),
        (header::DLQ_WORKER, "sync-watcher"),
        (header::DLQ_DELIVERIES, "5"),
        (header::DLQ_STREAM_SEQ, "42"),
        (header::DLQ_TIME, "2024-05-01T12:00:00Z"),
        (header::MSG_ID, "dlq:sync-watcher:42"),
    ] {
        headers.insert(name, value);
    }
    DeadLetter::new(Stored {
        seq: 3,
        subject: "flotilla-dlq.sync-watcher".into(),
        headers: Some(headers),
        payload: Bytes::from_static(b"\x0a\x04pr-1"),
        stored_at: datetime!(2024-05-01 12:00:01 UTC),
    })
}

#[test]
fn a_retry_keeps_the_original_headers_and_is_marked_for_its_worker() {
    let headers = letter().retry_headers();
    let get = |name| headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(get("ce-id").as_deref(), Some("e-1"));
    assert!(get("traceparent").is_some());
    assert_eq!(get(header::RETRY_FOR).as_deref(), Some("sync-watcher"));
    assert_eq!(get(header::MSG_ID).as_deref(), Some("retry:3"));
    for dlq_header in [header::DLQ_SUBJECT, header::DLQ_REASON, header::DLQ_WORKER] {
        assert_eq!(get(dlq_header), None, "{dlq_header} left on the retry");
    }
}

#[test]
fn the_list_shows_where_a_letter_came_from_and_why() {
    let lines = table(&[letter()]);
    assert!(lines[0].starts_with("SEQ  WORKER"), "{}", lines[0]);
    let row = &lines[1];
    for part in [
        "3",
        "sync-watcher",
        "flotilla.env.requested.pr-1",
        "5",
        "no such app",
    ] {
        assert!(row.contains(part), "{part} missing from {row}");
    }
}
