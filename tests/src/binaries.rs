//! Where the fleet's binaries are: the target directory this program was built into, since the
//! suite runs the workers as the separate processes a deployment runs.
//!
//! `cargo test --workspace` (and `cargo build --workspace`) builds every package's binaries
//! before a test runs. Run on its own (`cargo test -p flotilla-e2e`), the suite builds the
//! missing or outdated ones once with `cargo build`, saying so, rather than skipping anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

/// The six workers, as their packages and binaries are named.
pub const WORKERS: [&str; 6] = [
    "source-listener",
    "builder-trigger",
    "env-manager",
    "sync-watcher",
    "canary-analyzer",
    "reaper",
];

/// The CLI, for `flotilla init`.
pub const CLI: &str = "flotilla";

/// Paths of the binaries a run starts.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

/// Built at most once per process, whatever the number of tests asking.
static BUILT: Mutex<bool> = Mutex::new(false);

impl Binaries {
    /// The binaries beside this executable (a test's executable lives one level down, in
    /// `deps/`), built first when missing or older than the sources of their packages.
    pub fn locate() -> Result<Binaries> {
        let exe = std::env::current_exe().context("this executable's path")?;
        let mut dir = exe
            .parent()
            .context("the executable's directory")?
            .to_path_buf();
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir.pop();
        }
        let binaries = Binaries { dir };
        binaries.ensure_built()?;
        Ok(binaries)
    }

    /// The path of binary `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn ensure_built(&self) -> Result<()> {
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        if *built {
            return Ok(());
        }
        let root = workspace_root();
        let stale: Vec<&str> = WORKERS
            .iter()
            .chain(std::iter::once(&CLI))
            .copied()
            .filter(|name| self.outdated(&root, name))
            .collect();
        if !stale.is_empty() {
            let release = self.dir.file_name().is_some_and(|n| n == "release");
            let mut command =
                Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            command.current_dir(&root).arg("build");
            if release {
                command.arg("--release");
            }
            // Always the same set as scripts/reliability builds: cargo unifies features over
            // the packages it is given, and another set would rebuild their dependencies.
            for name in WORKERS.iter().chain([&CLI, &"flotilla-e2e"]) {
                command.args(["-p", name]);
            }
            eprintln!(
                "building {} (missing or older than their sources in {}): {:?}",
                stale.join(", "),
                self.dir.display(),
                command
            );
            let status = command
                .status()
                .with_context(|| format!("run {command:?}"))?;
            if !status.success() {
                bail!("{command:?} failed ({status}); build the workers first");
            }
        }
        *built = true;
        Ok(())
    }

    /// Missing, or older than a source file of the services or the shared crates (a worker
    /// links several of them; the CLI links every service).
    fn outdated(&self, root: &Path, name: &str) -> bool {
        let Ok(built) = std::fs::metadata(self.path(name)).and_then(|m| m.modified()) else {
            return true;
        };
        let sources = [
            root.join("services"),
            root.join("crates"),
            root.join("proto"),
        ];
        sources
            .iter()
            .any(|dir| newest(dir).is_some_and(|newest| newest > built))
    }
}

/// The workspace this crate belongs to.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The newest modification time of a `.rs`, `.proto` or `Cargo.toml` file under `dir`.
fn newest(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if path
                    .file_name()
                    .is_some_and(|n| n != "target" && n != "tests" && n != "benches")
                {
                    pending.push(path);
                }
                continue;
            }
            let source = path.extension().is_some_and(|e| e == "rs" || e == "proto")
                || path.file_name().is_some_and(|n| n == "Cargo.toml");
            if source && let Ok(modified) = meta.modified() {
                newest = newest.max(Some(modified));
            }
        }
    }
    newest
}
