//! Credentials for the GitOps remote: an SSH key (or the agent) for SSH URLs, a token for
//! HTTPS ones, each from a setting or a file that is read again at every authentication (so a
//! rotated Kubernetes secret is picked up without a restart).
//!
//! What to answer is a pure function ([`answer`]) so it can be tested without a server; the
//! libgit2 callback only turns its answer into a [`git2::Cred`].

use std::path::PathBuf;

use base64::Engine;
use flotilla_env::SecretFile;
use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};

/// The user name sent with a token when the URL names none (what GitHub, Gitea and GitLab
/// accept for tokens).
pub const TOKEN_USER: &str = "x-access-token";

/// A secret given as a value or as a file holding it.
#[derive(Clone)]
pub enum Secret {
    Value(String),
    /// Read at each use; its first secret line, trimmed.
    File(SecretFile),
}

impl Secret {
    /// The secret's value, or why it cannot be read.
    pub fn reveal(&self) -> Result<String, String> {
        match self {
            Secret::Value(value) => Ok(value.clone()),
            Secret::File(file) => file.read_one().map_err(|e| e.to_string()),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("<redacted>"),
            Secret::File(file) => write!(f, "File({})", file.path.display()),
        }
    }
}

/// How to authenticate to the remote.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// A private key file, for SSH URLs (else the SSH agent is asked).
    pub ssh_key: Option<PathBuf>,
    /// The key's passphrase, when it has one.
    pub ssh_passphrase: Option<Secret>,
    /// The user for HTTPS tokens when the URL names none (default [`TOKEN_USER`]).
    pub username: Option<String>,
    /// A token (or password), for HTTPS URLs.
    pub token: Option<Secret>,
    /// An OpenSSH `known_hosts` file that SSH host keys are checked against; without it
    /// libgit2 reads `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
}

/// What to give the remote when it asks for credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Only a user name (SSH asks for it first when the URL has none).
    Username(String),
    SshKey {
        user: String,
        key: PathBuf,
        passphrase: Option<String>,
    },
    SshAgent(String),
    UserPass {
        user: String,
        password: String,
    },
    /// Nothing (more) to offer: the operation fails with this reason.
    Refuse(String),
}

/// The answer to the remote's request for `allowed` credential types. `tried` records what
/// was given already: libgit2 asks again after a refusal, and a wrong key must fail rather
/// than loop.
pub fn answer(
    credentials: &Credentials,
    url_user: Option<&str>,
    allowed: CredentialType,
    tried: &mut CredentialType,
) -> Answer {
    let mut first = |kind: CredentialType| {
        let fresh = allowed.contains(kind) && !tried.contains(kind);
        if fresh {
            *tried |= kind;
        }
        fresh
    };
    if first(CredentialType::USERNAME) {
        return Answer::Username(url_user.unwrap_or("git").to_owned());
    }
    if first(CredentialType::SSH_KEY) {
        let user = url_user.unwrap_or("git").to_owned();
        let Some(key) = &credentials.ssh_key else {
            return Answer::SshAgent(user);
        };
        let passphrase = match credentials.ssh_passphrase.as_ref().map(Secret::reveal) {
            None => None,
            Some(Ok(passphrase)) => Some(passphrase),
            Some(Err(e)) => return Answer::Refuse(format!("SSH key passphrase: {e}")),
        };
        return Answer::SshKey {
            user,
            key: key.clone(),
            passphrase,
        };
    }
    if let Some(token) = &credentials.token
        && first(CredentialType::USER_PASS_PLAINTEXT)
    {
        let user = url_user
            .or(credentials.username.as_deref())
            .unwrap_or(TOKEN_USER)
            .to_owned();
        return match token.reveal() {
            Ok(password) => Answer::UserPass { user, password },
            Err(e) => Answer::Refuse(format!("GitOps token: {e}")),
        };
    }
    let why = if tried.is_empty() {
        "the GitOps remote asks for credentials that are not configured"
    } else {
        "the GitOps remote refused the credentials"
    };
    Answer::Refuse(format!(
        "{why} (set FLOTILLA_GITOPS_SSH_KEY for SSH, FLOTILLA_GITOPS_TOKEN or \
         FLOTILLA_GITOPS_TOKEN_FILE for HTTPS)"
    ))
}

/// libgit2 callbacks that answer credential requests from `credentials`.
pub fn callbacks(credentials: &Credentials) -> RemoteCallbacks<'_> {
    let mut callbacks = RemoteCallbacks::new();
    let mut tried = CredentialType::empty();
    callbacks.credentials(move |_url, username, allowed| {
        match answer(credentials, username, allowed, &mut tried) {
            Answer::Username(user) => Cred::username(&user),
            Answer::SshKey {
                user,
                key,
                passphrase,
            } => Cred::ssh_key(&user, None, &key, passphrase.as_deref()),
            Answer::SshAgent(user) => Cred::ssh_key_from_agent(&user),
            Answer::UserPass { user, password } => Cred::userpass_plaintext(&user, &password),
            Answer::Refuse(why) => Err(git2::Error::from_str(&why)),
        }
    });
    if let Some(path) = &credentials.known_hosts {
        callbacks.certificate_check(move |cert, host| {
            // TLS certificates are libgit2's to check, against the system's roots.
            let Some(key) = cert.as_hostkey().and_then(|k| k.hostkey()) else {
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let text = std::fs::read_to_string(path).map_err(|e| {
                git2::Error::from_str(&format!(
                    "read FLOTILLA_GITOPS_KNOWN_HOSTS {}: {e}",
                    path.display()
                ))
            })?;
            let why = match known_host(&text, host, key) {
                HostKey::Known => return Ok(CertificateCheckStatus::CertificateOk),
                HostKey::Changed => format!(
                    "the SSH host key of {host} does not match FLOTILLA_GITOPS_KNOWN_HOSTS ({}): \
                     refusing to connect, the server may be an impostor",
                    path.display()
                ),
                HostKey::Unknown => format!(
                    "{host} is not in FLOTILLA_GITOPS_KNOWN_HOSTS ({}); add its key, e.g. with \
                     `ssh-keyscan -p PORT {host} >> {}`",
                    path.display(),
                    path.display()
                ),
            };
            // libgit2 replaces this error with its own "invalid or unknown remote ssh
            // hostkey", so the reason is logged here where it is known.
            tracing::error!(host, reason = %why, "SSH host key refused");
            Err(git2::Error::from_str(&why))
        });
    }
    callbacks
}

/// What a `known_hosts` file says of a host's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKey {
    /// A line for the host lists this key.
    Known,
    /// Lines for the host list other keys only.
    Changed,
    /// No line names the host.
    Unknown,
}

/// Looks `host` and its raw SSH key blob up in OpenSSH `known_hosts` text. Host patterns are
/// plain names or `[name]:port` (any port matches: libgit2 names the host only); hashed
/// entries, wildcards and `@` markers are not read, so write entries as `ssh-keyscan` without
/// `-H` prints them.
pub fn known_host(text: &str, host: &str, key: &[u8]) -> HostKey {
    let names_host = |pattern: &str| {
        let name = match pattern.strip_prefix('[') {
            Some(rest) => rest.split_once("]:").map_or(rest, |(name, _port)| name),
            None => pattern,
        };
        name.eq_ignore_ascii_case(host)
    };
    let mut seen = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(hosts), Some(_kind), Some(blob)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !hosts.split(',').any(names_host) {
            continue;
        }
        seen = true;
        let decoded = base64::engine::general_purpose::STANDARD.decode(blob);
        if decoded.is_ok_and(|listed| listed == key) {
            return HostKey::Known;
        }
    }
    if seen {
        HostKey::Changed
    } else {
        HostKey::Unknown
    }
}

#[cfg(test)]
mod tests;
