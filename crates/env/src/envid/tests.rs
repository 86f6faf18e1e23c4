use super::*;

#[test]
fn a_pull_request_env_is_named_after_the_owner_repo_name_and_number() {
    assert_eq!(preview("acme/ping", 42), "pr-acme-ping-42");
}

#[test]
fn pull_requests_of_two_owners_repos_of_one_name_get_distinct_envs() {
    assert_ne!(preview("acme/web", 5), preview("labs/web", 5));
}

#[test]
fn a_long_owner_gives_way_to_a_hash_and_the_name_and_number_stay() {
    let owner = "o".repeat(60);
    let id = preview(&format!("{owner}/web"), 5);
    assert!(is_dns_label(&id), "{id}");
    assert!(id.starts_with("pr-") && id.ends_with("-web-5"), "{id}");
    assert_eq!(
        id.len(),
        "pr-".len() + OWNER_HASH_LEN + "-web-5".len(),
        "{id}"
    );
    assert_ne!(id, preview(&format!("{owner}x/web"), 5));
}

#[test]
fn a_staging_env_is_named_after_the_app_and_version() {
    assert_eq!(
        staging("ping", "v20240101120000-1a2b3c4"),
        "stg-ping-v20240101120000-1a2b3c4"
    );
}

#[test]
fn characters_outside_a_dns_label_become_single_dashes() {
    assert_eq!(
        preview("Acme/My_Service..API", 7),
        "pr-acme-my-service-api-7"
    );
    assert_eq!(staging("Ping", "V1.2.3+build"), "stg-ping-v1-2-3-build");
}

#[test]
fn an_id_of_exactly_63_characters_is_kept_as_is() {
    let name = "a".repeat(MAX_LEN - "pr-acme--1".len());
    let id = preview(&format!("acme/{name}"), 1);
    assert_eq!(id.len(), MAX_LEN);
    assert_eq!(id, format!("pr-acme-{name}-1"));
}

#[test]
fn a_long_id_is_shortened_to_63_characters_ending_in_a_hash() {
    let long = "x".repeat(100);
    let id = staging(&long, "v20240101120000-1a2b3c4");
    assert_eq!(id.len(), MAX_LEN);
    assert!(id.starts_with("stg-xxxx"), "{id}");
    let suffix = id.rsplit('-').next().expect("the id has a hash suffix");
    assert_eq!(suffix.len(), 8);
    assert!(suffix.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    assert!(is_dns_label(&id), "{id}");
}

#[test]
fn long_ids_sharing_a_prefix_stay_distinct_and_stable() {
    let long = "y".repeat(80);
    let one = staging(&long, "v1");
    let two = staging(&long, "v2");
    assert_ne!(one, two);
    assert_eq!(one, staging(&long, "v1"));
}

#[test]
fn a_shortened_id_does_not_end_its_prefix_with_a_dash() {
    // The cut falls right after a dash: the label must not contain "--" before the hash.
    let app = format!("{}-{}", "a".repeat(49), "b".repeat(40));
    let id = staging(&app, "v1");
    assert!(is_dns_label(&id), "{id}");
    assert!(!id.contains("--"), "{id}");
}

#[test]
fn every_generated_id_is_a_dns_label() {
    for repo in ["acme/ping", "--x--", "ÄÖÜ/ünïcödé", "a/", "UPPER/CASE_Name"] {
        let id = preview(repo, 123);
        assert!(is_dns_label(&id), "{repo} -> {id}");
    }
}

#[test]
fn dns_label_check_rejects_what_cannot_name_a_namespace_or_a_file() {
    for bad in ["", "-a", "a-", "A", "a_b", "../etc", "a/b", &"a".repeat(64)] {
        assert!(!is_dns_label(bad), "{bad:?} accepted");
    }
    assert!(is_dns_label("pr-ping-42"));
}

#[test]
fn the_kind_follows_from_the_prefix() {
    assert_eq!(Kind::of("pr-ping-1"), Some(Kind::Preview));
    assert_eq!(Kind::of("stg-ping-v1"), Some(Kind::Staging));
    assert_eq!(Kind::of("prod"), None);
}

#[test]
fn run_ids_are_labels_of_their_parts() {
    assert_eq!(
        dns_label(&["build", "ping-v20240305070809-1a2b3c4"]),
        "build-ping-v20240305070809-1a2b3c4"
    );
    assert_eq!(dns_label(&["test", "Acme_Ping"]), "test-acme-ping");
}

#[test]
fn long_run_ids_differing_only_at_the_end_stay_distinct() {
    let long = "a".repeat(80);
    let a = dns_label(&["test", &long, "x"]);
    let b = dns_label(&["test", &long, "y"]);
    assert!(is_dns_label(&a) && is_dns_label(&b), "{a} {b}");
    assert_ne!(a, b);
}

#[test]
fn empty_parts_at_either_end_leave_no_dash_there() {
    assert_eq!(staging("ping", ""), "stg-ping");
    assert!(is_dns_label(&dns_label(&["", "x", ""])));
    let nothing = dns_label(&["--", "ÄÖ"]);
    assert!(is_dns_label(&nothing), "{nothing}");
}
