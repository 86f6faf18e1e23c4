//! Environment ids and every other name that must be a DNS-1123 label (namespaces, Job names,
//! run ids), made by one function, [`dns_label`].
//!
//! `pr-<owner>-<repo name>-<number>` for a pull request's preview, `stg-<app>-<version>` for a change
//! to the default branch. Ids longer than 63 characters keep a prefix and end in a hash of the
//! whole id, so two long ids that share a prefix stay distinct and the same input always gives
//! the same id.

use sha2::{Digest, Sha256};

/// The longest DNS-1123 label.
pub const MAX_LEN: usize = 63;
/// Hex digits of the hash that ends a shortened id.
const HASH_LEN: usize = 8;
/// Hex digits of the hash that stands for a long owner in a preview id.
const OWNER_HASH_LEN: usize = 6;

/// What an environment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A pull request's environment, deleted when the PR closes.
    Preview,
    /// A change to the default branch, promoted to production when its tests pass.
    Staging,
}

impl Kind {
    /// The name used in manifests, events and the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Preview => "preview",
            Kind::Staging => "staging",
        }
    }

    /// The kind an env id was made for, from its prefix.
    pub fn of(env: &str) -> Option<Kind> {
        if env.starts_with("pr-") {
            Some(Kind::Preview)
        } else if env.starts_with("stg-") {
            Some(Kind::Staging)
        } else {
            None
        }
    }
}

/// The preview env of pull request `number` of `repo` (`owner/name`):
/// `pr-<owner>-<name>-<number>`. The owner is part of the id because two forks' pull requests
/// share a repo name and number (`acme/web#5`, `labs/web#5`). When the id is too long for a
/// label, the owner gives way first (a short hash of it), so the repo name and the number
/// stay readable.
pub fn preview(repo: &str, number: u64) -> String {
    let (owner, name) = repo.split_once('/').unwrap_or(("", repo));
    let number = number.to_string();
    let full = ["pr", owner, name, &number];
    if joined(&full).len() <= MAX_LEN {
        return dns_label(&full);
    }
    let mut owner_hash = hash(owner);
    owner_hash.truncate(OWNER_HASH_LEN);
    dns_label(&["pr", &owner_hash, name, &number])
}

/// The staging env of `app` at `version`: `stg-<app>-<version>`.
pub fn staging(app: &str, version: &str) -> String {
    dns_label(&["stg", app, version])
}

/// The DNS-1123 label of `parts`: each lowercased with every run of characters outside
/// `[a-z0-9]` made one `-`, joined by `-`; shortened to 63 characters ending in a hash of the
/// whole when longer. Deterministic, so a redelivered event names the same env, Job or run.
/// Parts are expected to hold some letter or digit; an id made of none is a hash alone.
pub fn dns_label(parts: &[&str]) -> String {
    let joined = joined(parts);
    if joined.is_empty() {
        return hash(&parts.join("-"));
    }
    label(&joined)
}

/// `parts` sanitized and joined by `-`, before any shortening.
fn joined(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|part| sanitize(part))
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Whether `id` is a DNS-1123 label: 1 to 63 of `[a-z0-9-]`, starting and ending with a letter
/// or digit. Env ids from events are checked with it before they name a file.
pub fn is_dns_label(id: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = id.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            bytes.len() <= MAX_LEN
                && alnum(first)
                && alnum(last)
                && bytes.iter().all(|&c| alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// Lowercase, every run of other characters than `[a-z0-9]` one `-`, none at either end.
fn sanitize(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for c in part.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// `id` itself when it fits in a label, else a prefix of it, `-`, and a hash of all of it.
fn label(id: &str) -> String {
    if id.len() <= MAX_LEN {
        return id.to_owned();
    }
    // `id` is ASCII after sanitizing, so any byte index is a char boundary.
    let prefix = id[..MAX_LEN - HASH_LEN - 1].trim_end_matches('-');
    format!("{prefix}-{}", hash(id))
}

/// The first [`HASH_LEN`] hex digits of the SHA-256 of `text`.
pub(crate) fn hash(text: &str) -> String {
    let mut digest = hex::encode(Sha256::digest(text.as_bytes()));
    digest.truncate(HASH_LEN);
    digest
}

#[cfg(test)]
mod tests;
