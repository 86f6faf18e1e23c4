//! The demo's last words: each outcome with what happened or what is missing, and why the demo
//! did not complete when it did not; as text and as the JSON `summary` line.

use std::time::Duration;

use serde_json::{Value, json};

use crate::demo::script::Outcome;

/// The text and the JSON of the outcome. `why`: what ended the demo early, if anything.
pub fn render(
    outcomes: &[Outcome],
    why: Option<&str>,
    took: Duration,
    good: Option<&str>,
) -> (String, Value) {
    let all = outcomes.iter().all(|o| o.ok);
    let mut text = vec![
        String::new(),
        format!("Outcome after {:.1}s", took.as_secs_f64()),
    ];
    for outcome in outcomes {
        text.push(format!(
            "  {:<9} {:<23} {}: {}",
            if outcome.ok { "[ok]" } else { "[missing]" },
            outcome.name,
            outcome.change_id.as_deref().unwrap_or("-"),
            outcome.detail
        ));
    }
    match (why, all) {
        (None, true) => text.push(format!(
            "All three happened. Every step of a change: flotilla run {} (with --stay, against the demo's NATS)",
            good.unwrap_or("<change-id>")
        )),
        (Some(why), _) => text.push(format!("The demo did not complete: {why}")),
        (None, false) => text.push("The demo did not complete".into()),
    }
    let json = json!({
        "kind": "summary",
        "ok": all,
        "took_ms": u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        "failure": why,
        "outcomes": outcomes.iter().map(|o| json!({
            "name": o.name, "ok": o.ok, "detail": o.detail, "change_id": o.change_id,
        })).collect::<Vec<_>>(),
    });
    (text.join("\n"), json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ok: bool) -> Outcome {
        Outcome {
            name: "good change promoted",
            ok,
            detail: if ok {
                "promoted".into()
            } else {
                "missing: canary.promoted".into()
            },
            change_id: Some("ping-v2".into()),
        }
    }

    #[test]
    fn a_missing_outcome_is_marked_and_the_reason_given() {
        let (text, json) = render(
            &[outcome(true), outcome(false)],
            Some("not done within 3m (--timeout)"),
            Duration::from_millis(61_250),
            Some("ping-v2"),
        );
        assert!(
            text.contains("[missing] good change promoted    ping-v2: missing: canary.promoted"),
            "{text}"
        );
        assert!(
            text.ends_with("The demo did not complete: not done within 3m (--timeout)"),
            "{text}"
        );
        assert_eq!(json["ok"], false);
        assert_eq!(json["outcomes"][1]["ok"], false);
    }

    #[test]
    fn when_all_happened_it_says_how_to_see_a_change() {
        let (text, json) = render(
            &[outcome(true)],
            None,
            Duration::from_secs(12),
            Some("ping-v2"),
        );
        assert!(text.contains("Outcome after 12.0s"), "{text}");
        assert!(text.contains("flotilla run ping-v2"), "{text}");
        assert_eq!(json["ok"], true);
        assert_eq!(json["failure"], Value::Null);
    }
}
