//! What the GitOps remote is answered, and what known_hosts says, without a server.

use super::*;

fn token(value: &str) -> Credentials {
    Credentials {
        token: Some(Secret::Value(value.into())),
        ..Credentials::default()
    }
}

#[test]
fn an_https_remote_gets_the_token_as_the_password_of_the_token_user() {
    let mut tried = CredentialType::empty();
    let answer = answer(
        &token("s3cret"),
        None,
        CredentialType::USER_PASS_PLAINTEXT,
        &mut tried,
    );
    assert_eq!(
        answer,
        Answer::UserPass {
            user: TOKEN_USER.into(),
            password: "s3cret".into()
        }
    );
}

#[test]
fn the_user_named_in_the_url_wins_over_the_configured_one() {
    let mut credentials = token("t");
    credentials.username = Some("configured".into());
    let plain = CredentialType::USER_PASS_PLAINTEXT;
    let from_url = answer(
        &credentials,
        Some("alice"),
        plain,
        &mut CredentialType::empty(),
    );
    let configured = answer(&credentials, None, plain, &mut CredentialType::empty());
    assert!(matches!(from_url, Answer::UserPass { user, .. } if user == "alice"));
    assert!(matches!(configured, Answer::UserPass { user, .. } if user == "configured"));
}

#[test]
fn a_token_file_is_read_again_at_each_authentication() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("token");
    std::fs::write(&path, "first\n")?;
    let credentials = Credentials {
        token: Some(Secret::File(SecretFile::new(
            "FLOTILLA_GITOPS_TOKEN_FILE",
            path.clone(),
        ))),
        ..Credentials::default()
    };
    let plain = CredentialType::USER_PASS_PLAINTEXT;
    let password = |a: Answer| match a {
        Answer::UserPass { password, .. } => password,
        other => panic!("expected a password, got {other:?}"),
    };
    let first = answer(&credentials, None, plain, &mut CredentialType::empty());
    std::fs::write(&path, "rotated\n")?;
    let second = answer(&credentials, None, plain, &mut CredentialType::empty());
    assert_eq!(
        (password(first), password(second)),
        ("first".into(), "rotated".into())
    );
    std::fs::remove_file(&path)?;
    let missing = answer(&credentials, None, plain, &mut CredentialType::empty());
    assert!(matches!(missing, Answer::Refuse(why) if why.contains("token")));
    Ok(())
}

#[test]
fn a_refused_token_is_not_offered_again() {
    let mut tried = CredentialType::empty();
    let plain = CredentialType::USER_PASS_PLAINTEXT;
    assert!(matches!(
        answer(&token("t"), None, plain, &mut tried),
        Answer::UserPass { .. }
    ));
    let again = answer(&token("t"), None, plain, &mut tried);
    assert!(matches!(again, Answer::Refuse(why) if why.contains("refused")));
}

#[test]
fn ssh_asks_for_the_user_then_gets_the_key_file_or_the_agent() {
    let with_key = Credentials {
        ssh_key: Some("/keys/id_ed25519".into()),
        ..Credentials::default()
    };
    let allowed = CredentialType::USERNAME | CredentialType::SSH_KEY;
    let mut tried = CredentialType::empty();
    assert_eq!(
        answer(&with_key, None, allowed, &mut tried),
        Answer::Username("git".into())
    );
    assert_eq!(
        answer(&with_key, None, allowed, &mut tried),
        Answer::SshKey {
            user: "git".into(),
            key: "/keys/id_ed25519".into(),
            passphrase: None
        }
    );
    let agent = answer(
        &Credentials::default(),
        Some("deploy"),
        CredentialType::SSH_KEY,
        &mut CredentialType::empty(),
    );
    assert_eq!(agent, Answer::SshAgent("deploy".into()));
}

#[test]
fn without_credentials_the_refusal_says_what_to_set() {
    let refused = answer(
        &Credentials::default(),
        None,
        CredentialType::USER_PASS_PLAINTEXT,
        &mut CredentialType::empty(),
    );
    assert!(
        matches!(&refused, Answer::Refuse(why) if why.contains("FLOTILLA_GITOPS_TOKEN")),
        "{refused:?}"
    );
}

#[test]
fn secrets_are_not_printed() {
    let credentials = token("s3cret");
    assert!(!format!("{credentials:?}").contains("s3cret"));
}

#[test]
fn host_keys_are_looked_up_by_host_and_compared_whole() {
    let key = b"\x00\x00\x00\x0bssh-ed25519 one";
    let other = b"\x00\x00\x00\x0bssh-ed25519 two";
    let encode = |blob: &[u8]| base64::engine::general_purpose::STANDARD.encode(blob);
    let text = format!(
        "# comment\n\
         [127.0.0.1]:2222 ssh-ed25519 {}\n\
         git.example,10.0.0.1 ssh-ed25519 {} deploy key\n\
         |1|hashed= ssh-ed25519 {}\n\
         @revoked * ssh-ed25519 {}\n",
        encode(key),
        encode(other),
        encode(key),
        encode(key)
    );
    assert_eq!(known_host(&text, "127.0.0.1", key), HostKey::Known);
    assert_eq!(known_host(&text, "GIT.example", other), HostKey::Known);
    assert_eq!(known_host(&text, "10.0.0.1", other), HostKey::Known);
    assert_eq!(known_host(&text, "127.0.0.1", other), HostKey::Changed);
    assert_eq!(known_host(&text, "git.example", key), HostKey::Changed);
    assert_eq!(known_host(&text, "elsewhere", key), HostKey::Unknown);
    assert_eq!(known_host("", "127.0.0.1", key), HostKey::Unknown);
}
