//! What the GitHub client speaks of: repositories, commit statuses and pull requests.

/// A repository on GitHub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubRepo {
    pub owner: String,
    pub name: String,
}

impl GithubRepo {
    /// `owner/name`.
    pub fn parse(repo: &str) -> Option<GithubRepo> {
        let (owner, name) = repo.trim().split_once('/')?;
        // `.` and `..` would climb the API's path; GitHub allows neither as a name.
        let valid = |part: &str| {
            !part.is_empty()
                && part.chars().any(|c| c != '.')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (valid(owner) && valid(name)).then(|| GithubRepo {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The owner and name in a clone URL: `https://host/owner/name(.git)`,
    /// `ssh://git@host/owner/name.git` or `git@host:owner/name.git`.
    pub fn from_url(url: &str) -> Option<GithubRepo> {
        let path = if let Some((_, rest)) = url.split_once("://") {
            rest.split_once('/')?.1
        } else {
            url.split_once(':')?.1
        };
        let path = path.trim_end_matches('/').trim_end_matches(".git");
        let mut parts = path.rsplitn(3, '/');
        let name = parts.next()?;
        let owner = parts.next()?;
        GithubRepo::parse(&format!("{owner}/{name}"))
    }
}

impl std::fmt::Display for GithubRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// A commit status's state, as GitHub names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Success,
    Failure,
    Error,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Success => "success",
            State::Failure => "failure",
            State::Error => "error",
        }
    }
}

/// One commit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    /// e.g. `flotilla/env`; one status per context is shown on the commit.
    pub context: String,
    /// At most 140 characters are kept.
    pub description: String,
    pub target_url: Option<String>,
}

/// An open pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestRef {
    pub number: u64,
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_found_in_clone_urls() {
        let acme = GithubRepo::parse("acme/gitops");
        for url in [
            "https://github.com/acme/gitops.git",
            "https://github.com/acme/gitops",
            "ssh://git@github.com/acme/gitops.git",
            "git@github.com:acme/gitops.git",
            "https://ghe.example.com/acme/gitops/",
        ] {
            assert_eq!(GithubRepo::from_url(url), acme, "{url}");
        }
        assert_eq!(GithubRepo::from_url("/srv/gitops.git"), None);
        assert_eq!(GithubRepo::parse("no-slash"), None);
        assert_eq!(GithubRepo::parse("a/b c"), None);
        for climbing in ["../x", "acme/..", "./x", "acme/.", "acme/..."] {
            assert_eq!(GithubRepo::parse(climbing), None, "{climbing}");
        }
    }
}
