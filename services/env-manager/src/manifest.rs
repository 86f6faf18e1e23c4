//! The GitOps manifests, as pure functions: the production manifest and a change in, the env
//! manifest (or the promoted production manifest) out.
//!
//! `apps/production.json` is `{"apps": {"<app>": {"image": "..", "version": ".."}, ..}}`,
//! possibly with more fields, which are kept. An env manifest is a copy of it with the change's
//! app at the new version, plus the env's own fields. Output is pretty JSON with sorted keys and
//! a final newline, so the same input always gives the same bytes: a rewrite of an unchanged
//! env is no change to git.

use std::time::Duration;

use flotilla_proto::v1::AppVersion;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use flotilla_env::Kind;

/// Why a manifest could not be made. Retrying does not help: a person must fix the repository
/// or the event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("the production manifest is not valid: {0}")]
    Malformed(String),
    #[error("app {0:?} is not in the production manifest")]
    MissingApp(String),
    #[error("invalid time {time:?}: {reason}")]
    Time { time: String, reason: String },
}

/// One environment of one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSpec {
    pub env: String,
    pub kind: Kind,
    pub change_id: String,
    pub repo: String,
    pub pr: u64,
    pub app: String,
    pub version: String,
    /// The image repository of the new version, when the build reported one; else the
    /// production manifest's stays.
    pub image: Option<String>,
    pub created_at: String,
    pub expires_at: String,
}

/// A rendered env manifest and the apps it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub contents: Vec<u8>,
    pub apps: Vec<AppVersion>,
}

/// The env manifest of `spec`: `production` with the change's app at its version.
pub fn render_env(production: &[u8], spec: &EnvSpec) -> Result<Rendered, ManifestError> {
    let mut manifest = parse(production)?;
    set_version(
        &mut manifest,
        &spec.app,
        &spec.version,
        spec.image.as_deref(),
    )?;
    let apps = apps_of(&manifest)?;
    let fields = [
        ("env", Value::from(spec.env.as_str())),
        ("kind", spec.kind.as_str().into()),
        ("change_id", spec.change_id.as_str().into()),
        ("repo", spec.repo.as_str().into()),
        ("pr", spec.pr.into()),
        ("created_at", spec.created_at.as_str().into()),
        ("expires_at", spec.expires_at.as_str().into()),
    ];
    for (name, value) in fields {
        manifest.insert(name.to_owned(), value);
    }
    Ok(Rendered {
        contents: to_bytes(&manifest),
        apps,
    })
}

/// The production manifest with `app` promoted to `version`, and the version it replaces.
pub fn promote(production: &[u8], app: &str, version: &str) -> Result<Promotion, ManifestError> {
    let mut manifest = parse(production)?;
    let current = manifest
        .get("apps")
        .and_then(|apps| apps.get(app))
        .map(|entry| text(entry, "version"))
        .unwrap_or_default();
    if is_older(version, &current) {
        return Ok(Promotion::Superseded { current });
    }
    let previous = set_version(&mut manifest, app, version, None)?;
    Ok(Promotion::Updated {
        contents: to_bytes(&manifest),
        previous,
    })
}

/// What promoting a tested version does to production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promotion {
    /// The new manifest, and the version it replaces.
    Updated { contents: Vec<u8>, previous: String },
    /// Production already runs a newer build (tests of an older change finished last):
    /// promoting would roll it back, so production is left alone.
    Superseded { current: String },
}

/// The production manifest with `app` set back from `from` (a release whose canary aborted)
/// to `to`, the version it replaced.
pub fn roll_back(
    production: &[u8],
    app: &str,
    from: &str,
    to: &str,
) -> Result<Reverting, ManifestError> {
    let mut manifest = parse(production)?;
    let current = manifest
        .get("apps")
        .and_then(|apps| apps.get(app))
        .map(|entry| text(entry, "version"))
        .ok_or_else(|| ManifestError::MissingApp(app.to_owned()))?;
    if current == to {
        return Ok(Reverting::AlreadyThere);
    }
    if current != from {
        return Ok(Reverting::Moved { current });
    }
    set_version(&mut manifest, app, to, None)?;
    Ok(Reverting::Reverted {
        contents: to_bytes(&manifest),
    })
}

/// What rolling a release back does to production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reverting {
    /// The new manifest, with the earlier version.
    Reverted { contents: Vec<u8> },
    /// Production runs the earlier version already (a redelivery, or a person was faster).
    AlreadyThere,
    /// Production runs neither: someone changed it since; it is left alone.
    Moved { current: String },
}

/// Whether `candidate` was built before `current`. Versions are `v<UTC yyyyMMddHHmmss>-<sha7>`,
/// so their timestamps order them; a version of another shape is never called older.
pub fn is_older(candidate: &str, current: &str) -> bool {
    matches!((version_stamp(candidate), version_stamp(current)), (Some(a), Some(b)) if a < b)
}

/// When an env created at `created_at` (RFC 3339) expires after `ttl`, in RFC 3339 (UTC).
pub fn expires_at(created_at: &str, ttl: Duration) -> Result<String, ManifestError> {
    let bad = |reason: String| ManifestError::Time {
        time: created_at.to_owned(),
        reason,
    };
    let created = OffsetDateTime::parse(created_at, &Rfc3339).map_err(|e| bad(e.to_string()))?;
    let expires = created
        .checked_add(time::Duration::try_from(ttl).map_err(|e| bad(e.to_string()))?)
        .ok_or_else(|| bad("the TTL goes past the end of time".into()))?;
    expires
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|e| bad(e.to_string()))
}

/// The repository part of an image reference: `registry:5000/apps/ping:v1@sha256:..` →
/// `registry:5000/apps/ping`.
pub fn image_repository(reference: &str) -> &str {
    let reference = reference.split('@').next().unwrap_or(reference);
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_start..].find(':') {
        Some(colon) => &reference[..name_start + colon],
        None => reference,
    }
}

/// The apps of an env or production manifest, sorted by name.
pub fn apps_of(manifest: &Map<String, Value>) -> Result<Vec<AppVersion>, ManifestError> {
    let apps = apps(manifest)?;
    Ok(apps
        .iter()
        .map(|(name, app)| AppVersion {
            name: name.clone(),
            version: text(app, "version"),
            image: text(app, "image"),
        })
        .collect())
}

/// The key of an env manifest that marks it suspended: the env chart renders its workloads at
/// zero replicas while it is `true`.
pub const SUSPENDED: &str = "suspended";

/// The env manifest with its `suspended` mark set (`true`) or removed (`false`): removing it
/// gives back exactly the bytes the manifest had before it was suspended (sorted keys, pretty
/// JSON), so a resume restores what was there.
pub fn set_suspended(env_manifest: &[u8], suspended: bool) -> Result<Vec<u8>, ManifestError> {
    let mut manifest = parse(env_manifest)?;
    if suspended {
        manifest.insert(SUSPENDED.to_owned(), Value::Bool(true));
    } else {
        manifest.remove(SUSPENDED);
    }
    Ok(to_bytes(&manifest))
}

/// What an env manifest says it holds: its change and the version of `app` (empty when the app
/// is not in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub change_id: String,
    pub version: String,
}

/// The change an env manifest holds, and the version of `app` in it.
pub fn holding(env_manifest: &[u8], app: &str) -> Result<Holding, ManifestError> {
    let manifest = parse(env_manifest)?;
    let version = apps_of(&manifest)?
        .into_iter()
        .find(|a| a.name == app)
        .map(|a| a.version)
        .unwrap_or_default();
    Ok(Holding {
        change_id: manifest
            .get("change_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        version,
    })
}

/// The build time in a version `v<UTC yyyyMMddHHmmss>-<sha7>`, as `yyyyMMddHHmmss`.
pub fn version_stamp(version: &str) -> Option<&str> {
    let (stamp, _) = version.strip_prefix('v')?.split_once('-')?;
    (stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit())).then_some(stamp)
}

/// An RFC 3339 time as `yyyyMMddHHmmss` in UTC, comparable with [`version_stamp`].
pub fn time_stamp(rfc3339: &str) -> Option<String> {
    let at = OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()?
        .to_offset(time::UtcOffset::UTC);
    at.format(format_description!(
        "[year][month][day][hour][minute][second]"
    ))
    .ok()
}

/// Parses a manifest: a JSON object with an `apps` object.
pub fn parse(bytes: &[u8]) -> Result<Map<String, Value>, ManifestError> {
    let manifest: Map<String, Value> =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
    apps(&manifest)?;
    Ok(manifest)
}

fn apps(manifest: &Map<String, Value>) -> Result<&Map<String, Value>, ManifestError> {
    manifest
        .get("apps")
        .and_then(Value::as_object)
        .ok_or_else(|| ManifestError::Malformed("no \"apps\" object".into()))
}

/// Sets `app`'s version (and image), returning the version it had.
fn set_version(
    manifest: &mut Map<String, Value>,
    app: &str,
    version: &str,
    image: Option<&str>,
) -> Result<String, ManifestError> {
    let entry = manifest
        .get_mut("apps")
        .and_then(Value::as_object_mut)
        .and_then(|apps| apps.get_mut(app))
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ManifestError::MissingApp(app.to_owned()))?;
    let previous = entry
        .insert("version".into(), version.into())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    if let Some(image) = image.filter(|i| !i.is_empty()) {
        entry.insert("image".into(), image.into());
    }
    Ok(previous)
}

fn text(app: &Value, field: &str) -> String {
    app.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn to_bytes(manifest: &Map<String, Value>) -> Vec<u8> {
    // A map of JSON values always serializes.
    let mut bytes = serde_json::to_vec_pretty(manifest).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests;
