use super::*;

const PRODUCTION: &str = r#"{
  "apps": {
    "maindb": {"image": "registry/apps/maindb", "version": "v20230101000000-aaaaaaa"},
    "ping": {"image": "registry/apps/ping", "version": "v20230121117084-1a2b3c4"}
  },
  "owner": "platform"
}"#;

fn spec() -> EnvSpec {
    EnvSpec {
        env: "stg-ping-v20240101120000-bbbbbbb".into(),
        kind: Kind::Staging,
        change_id: "ping-v20240101120000-bbbbbbb".into(),
        repo: "acme/ping".into(),
        pr: 0,
        app: "ping".into(),
        version: "v20240101120000-bbbbbbb".into(),
        image: None,
        created_at: "2024-01-01T12:00:00Z".into(),
        expires_at: "2024-01-04T12:00:00Z".into(),
    }
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("rendered manifests are JSON")
}

#[test]
fn an_env_manifest_is_production_with_the_change_at_its_new_version() {
    let rendered = render_env(PRODUCTION.as_bytes(), &spec()).expect("renders");
    let manifest = json(&rendered.contents);
    assert_eq!(
        manifest["apps"]["ping"]["version"],
        "v20240101120000-bbbbbbb"
    );
    assert_eq!(manifest["apps"]["ping"]["image"], "registry/apps/ping");
    assert_eq!(
        manifest["apps"]["maindb"]["version"],
        "v20230101000000-aaaaaaa"
    );
    assert_eq!(manifest["owner"], "platform", "other fields are kept");
}

#[test]
fn an_env_manifest_carries_the_env_fields() {
    let mut spec = spec();
    spec.kind = Kind::Preview;
    spec.env = "pr-ping-42".into();
    spec.pr = 42;
    let manifest = json(
        &render_env(PRODUCTION.as_bytes(), &spec)
            .expect("renders")
            .contents,
    );
    assert_eq!(manifest["env"], "pr-ping-42");
    assert_eq!(manifest["kind"], "preview");
    assert_eq!(manifest["change_id"], "ping-v20240101120000-bbbbbbb");
    assert_eq!(manifest["repo"], "acme/ping");
    assert_eq!(manifest["pr"], 42);
    assert_eq!(manifest["created_at"], "2024-01-01T12:00:00Z");
    assert_eq!(manifest["expires_at"], "2024-01-04T12:00:00Z");
}

#[test]
fn the_image_of_the_build_replaces_the_production_image() {
    let mut spec = spec();
    spec.image = Some("registry.example.com/team/ping".into());
    let rendered = render_env(PRODUCTION.as_bytes(), &spec).expect("renders");
    assert_eq!(
        json(&rendered.contents)["apps"]["ping"]["image"],
        "registry.example.com/team/ping"
    );
    let ping = rendered
        .apps
        .iter()
        .find(|a| a.name == "ping")
        .expect("ping is listed");
    assert_eq!(ping.image, "registry.example.com/team/ping");
}

#[test]
fn rendering_twice_gives_the_same_bytes() {
    let once = render_env(PRODUCTION.as_bytes(), &spec()).expect("renders");
    let twice = render_env(PRODUCTION.as_bytes(), &spec()).expect("renders");
    assert_eq!(once.contents, twice.contents);
    assert!(once.contents.ends_with(b"}\n"));
}

#[test]
fn the_rendered_apps_list_every_app_sorted_by_name() {
    let apps = render_env(PRODUCTION.as_bytes(), &spec())
        .expect("renders")
        .apps;
    let names: Vec<_> = apps
        .iter()
        .map(|a| (a.name.as_str(), a.version.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("maindb", "v20230101000000-aaaaaaa"),
            ("ping", "v20240101120000-bbbbbbb")
        ]
    );
}

#[test]
fn an_app_missing_from_production_is_an_error() {
    let mut spec = spec();
    spec.app = "pong".into();
    assert_eq!(
        render_env(PRODUCTION.as_bytes(), &spec),
        Err(ManifestError::MissingApp("pong".into()))
    );
}

#[test]
fn a_production_manifest_without_apps_is_malformed() {
    for bad in ["", "[]", "{}", r#"{"apps": []}"#] {
        assert!(
            matches!(
                render_env(bad.as_bytes(), &spec()),
                Err(ManifestError::Malformed(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn promoting_sets_the_version_and_returns_the_previous_one() {
    let Promotion::Updated { contents, previous } =
        promote(PRODUCTION.as_bytes(), "ping", "v20240101120000-bbbbbbb").expect("promotes")
    else {
        panic!("a newer version is promoted");
    };
    assert_eq!(previous, "v20230121117084-1a2b3c4");
    let manifest = json(&contents);
    assert_eq!(
        manifest["apps"]["ping"]["version"],
        "v20240101120000-bbbbbbb"
    );
    assert!(manifest.get("env").is_none(), "no env fields in production");
}

#[test]
fn the_ttl_counts_from_the_creation_time() {
    let ttl = Duration::from_secs(72 * 3600);
    assert_eq!(
        expires_at("2024-01-01T12:00:00Z", ttl).expect("valid time"),
        "2024-01-04T12:00:00Z"
    );
    assert_eq!(
        expires_at("2024-01-01T12:00:00+02:00", Duration::from_secs(60)).expect("valid time"),
        "2024-01-01T10:01:00Z"
    );
    assert!(matches!(
        expires_at("yesterday", ttl),
        Err(ManifestError::Time { .. })
    ));
}

#[test]
fn the_image_repository_drops_tag_and_digest_but_not_a_registry_port() {
    assert_eq!(
        image_repository("registry/apps/ping:v1"),
        "registry/apps/ping"
    );
    assert_eq!(
        image_repository("registry:5000/apps/ping:v1@sha256:abc"),
        "registry:5000/apps/ping"
    );
    assert_eq!(
        image_repository("registry:5000/apps/ping"),
        "registry:5000/apps/ping"
    );
    assert_eq!(image_repository("ping"), "ping");
}

#[test]
fn an_older_build_does_not_replace_a_newer_one_in_production() {
    let promotion =
        promote(PRODUCTION.as_bytes(), "ping", "v20220101120000-0000000").expect("decides");
    assert_eq!(
        promotion,
        Promotion::Superseded {
            current: "v20230121117084-1a2b3c4".into()
        }
    );
}

#[test]
fn versions_are_ordered_by_their_build_time_only_when_both_have_the_shape() {
    assert!(is_older(
        "v20240101120000-bbbbbbb",
        "v20240101120001-aaaaaaa"
    ));
    assert!(!is_older(
        "v20240101120001-aaaaaaa",
        "v20240101120000-bbbbbbb"
    ));
    assert!(
        !is_older("v20240101120000-aaaaaaa", "v20240101120000-bbbbbbb"),
        "same time"
    );
    assert!(!is_older("1.2.3", "v20240101120000-bbbbbbb"));
    assert!(!is_older("v20240101120000-bbbbbbb", ""));
}

#[test]
fn an_aborted_release_is_rolled_back_to_the_version_it_replaced() {
    let aborted =
        promote(PRODUCTION.as_bytes(), "ping", "v20240101120000-bbbbbbb").expect("promotes");
    let Promotion::Updated { contents, previous } = aborted else {
        panic!("expected a promotion, got {aborted:?}");
    };

    let reverting =
        roll_back(&contents, "ping", "v20240101120000-bbbbbbb", &previous).expect("rolls back");

    let Reverting::Reverted { contents } = reverting else {
        panic!("expected a rollback, got {reverting:?}");
    };
    assert_eq!(json(&contents), json(PRODUCTION.as_bytes()));
}

#[test]
fn a_rollback_leaves_production_alone_when_it_is_done_or_someone_moved_it() {
    let current = "v20230121117084-1a2b3c4";
    assert_eq!(
        roll_back(PRODUCTION.as_bytes(), "ping", "v2", current).expect("decides"),
        Reverting::AlreadyThere
    );
    assert_eq!(
        roll_back(PRODUCTION.as_bytes(), "ping", "v2", "v1").expect("decides"),
        Reverting::Moved {
            current: current.into()
        }
    );
    assert_eq!(
        roll_back(PRODUCTION.as_bytes(), "pong", "v2", "v1"),
        Err(ManifestError::MissingApp("pong".into()))
    );
}
