//! The preview label: one setting that builder-trigger and env-manager both read, so a pull
//! request is built and gets its preview under the same rule.

/// `FLOTILLA_PR_LABEL`, as a flag of every binary that needs it (and of `flotilla up` once).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PreviewArgs {
    /// Pull requests are built and get a preview environment only while they carry this label
    /// (adding it starts one, removing it tears the preview down). Unset: every pull request.
    #[arg(long = "pr-label", env = "FLOTILLA_PR_LABEL", value_name = "LABEL")]
    pub pr_label: Option<String>,
}

impl PreviewArgs {
    /// The label, trimmed; `None` when unset or blank.
    pub fn label(&self) -> Option<String> {
        self.pr_label
            .as_deref()
            .map(str::trim)
            .filter(|label| !label.is_empty())
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_label_means_every_pull_request() {
        let blank = PreviewArgs {
            pr_label: Some("  ".into()),
        };
        assert_eq!(blank.label(), None);
        let set = PreviewArgs {
            pr_label: Some(" preview ".into()),
        };
        assert_eq!(set.label().as_deref(), Some("preview"));
    }
}
