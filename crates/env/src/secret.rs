//! Secrets read from files named by `*_FILE` variables (a mounted Kubernetes secret, say).
//!
//! A file holds one secret a line, so a secret can be rotated by listing the new one beside the
//! old. Each line is trimmed; blank lines and `#` comments are skipped. A file that is named
//! but unreadable or holds no secret is an error naming the variable and the path.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// A secret file and the variable that named it, read at each use so that a rotated secret is
/// picked up without a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// The variable (or flag) that named the file, for error messages.
    pub variable: String,
    pub path: PathBuf,
}

impl SecretFile {
    pub fn new(variable: impl Into<String>, path: impl Into<PathBuf>) -> SecretFile {
        SecretFile {
            variable: variable.into(),
            path: path.into(),
        }
    }

    /// Every secret of the file, in order, without repeats; at least one.
    pub fn read_all(&self) -> Result<Vec<String>, Error> {
        read_all(&self.variable, &self.path)
    }

    /// The first secret of the file (a token or a passphrase has one).
    pub fn read_one(&self) -> Result<String, Error> {
        read_one(&self.variable, &self.path)
    }
}

/// Every secret of the file at `path`, named by `variable`, in order, without repeats.
pub fn read_all(variable: &str, path: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::SecretUnreadable {
        variable: variable.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let secrets = lines(&text);
    if secrets.is_empty() {
        return Err(Error::SecretEmpty {
            variable: variable.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(secrets)
}

/// The first secret of the file at `path`, named by `variable`.
pub fn read_one(variable: &str, path: &Path) -> Result<String, Error> {
    let mut secrets = read_all(variable, path)?;
    // read_all returns at least one.
    Ok(secrets.swap_remove(0))
}

/// The secrets of `text`: one a line, trimmed, without blank lines, `#` comments or repeats.
pub fn lines(text: &str) -> Vec<String> {
    let mut secrets: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || secrets.iter().any(|s| s == line) {
            continue;
        }
        secrets.push(line.to_owned());
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_holds_one_secret_a_line_trimmed_without_blanks_comments_or_repeats() {
        let text =
            "# rotated 2024-01-01\nnew-secret\r\n\n  \n  old secret with spaces \nnew-secret\n";
        assert_eq!(lines(text), ["new-secret", "old secret with spaces"]);
    }

    #[test]
    fn a_file_is_read_again_at_each_use() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = SecretFile::new("TOKEN_FILE", dir.path().join("token"));
        std::fs::write(&file.path, "first\n")?;
        assert_eq!(file.read_one()?, "first");
        std::fs::write(&file.path, "rotated\nfirst\n")?;
        assert_eq!(file.read_one()?, "rotated");
        assert_eq!(file.read_all()?, ["rotated", "first"]);
        Ok(())
    }

    #[test]
    fn an_empty_or_missing_file_is_an_error_naming_the_variable_and_path() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("secrets");
        std::fs::write(&path, "\n# nothing yet\n\n")?;
        let empty = read_all("GITHUB_WEBHOOK_SECRET_FILE", &path).expect_err("no secret");
        assert!(matches!(empty, Error::SecretEmpty { .. }), "{empty:?}");
        let text = empty.to_string();
        assert!(text.contains("GITHUB_WEBHOOK_SECRET_FILE"), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("no secret"), "{text}");

        let missing = dir.path().join("missing");
        let error = read_one("GITLAB_WEBHOOK_TOKEN_FILE", &missing).expect_err("no file");
        assert!(matches!(error, Error::SecretUnreadable { .. }), "{error:?}");
        assert!(
            error.to_string().starts_with(&format!(
                "GITLAB_WEBHOOK_TOKEN_FILE {}: ",
                missing.display()
            )),
            "{error}"
        );
        Ok(())
    }
}
