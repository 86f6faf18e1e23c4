//! The GitOps repository over SSH: a real OpenSSH server on 127.0.0.1 with a key of its own,
//! and env-manager's working copy cloning, fetching and pushing through it with a private key,
//! checking the server's host key against FLOTILLA_GITOPS_KNOWN_HOSTS.
//!
//! Needs `sshd` (Debian's openssh-server, which CI installs); where it is missing the tests say
//! they are skipped. sshd authenticates the user running the tests, so they log in as that user.

use crate::bare;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use env_manager::gitops::{GitOps, Settings};
use git2::Repository;

const SSHD: &str = "/usr/sbin/sshd";

/// A private sshd serving the bare repository `srv/gitops.git` of a temp dir; killed on drop.
struct SshRemote {
    dir: tempfile::TempDir,
    port: u16,
    sshd: Child,
    url: String,
}

impl Drop for SshRemote {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

fn keygen(path: &Path) -> Result<()> {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .context("run ssh-keygen")?;
    ensure!(status.success(), "ssh-keygen failed: {status}");
    Ok(())
}

fn current_user() -> Result<String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .context("run id -un")?;
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

impl SshRemote {
    /// `None` (and a note) where sshd is not installed.
    fn start() -> Result<Option<SshRemote>> {
        if !Path::new(SSHD).exists() {
            println!("skipped: no {SSHD} (apt-get install openssh-server)");
            return Ok(None);
        }
        let dir = tempfile::tempdir()?;
        let path = |name: &str| dir.path().join(name);
        keygen(&path("host_key"))?;
        keygen(&path("client_key"))?;
        std::fs::copy(path("client_key.pub"), path("authorized_keys"))?;
        Repository::init_bare(path("srv/gitops.git"))?;
        // sshd running as root insists on its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");

        let port = free_port()?;
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {pid}\n",
            host = path("host_key").display(),
            keys = path("authorized_keys").display(),
            pid = path("sshd.pid").display(),
        );
        std::fs::write(path("sshd_config"), config)?;
        let sshd = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(path("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(path("sshd.log"))?)
            .spawn()
            .context("start sshd")?;
        let url = format!(
            "ssh://{}@127.0.0.1:{port}{}",
            current_user()?,
            path("srv/gitops.git").display()
        );
        let mut remote = SshRemote {
            dir,
            port,
            sshd,
            url,
        };
        remote.wait_until_listening()?;
        Ok(Some(remote))
    }

    fn wait_until_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.sshd.try_wait()? {
                bail!("sshd exited with {status}: {}", self.log());
            }
            ensure!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A known_hosts file listing `host_key_pub` (an OpenSSH public key file) for this server.
    fn known_hosts(&self, host_key_pub: &Path) -> Result<PathBuf> {
        let key = std::fs::read_to_string(host_key_pub)?;
        let mut fields = key.split_whitespace();
        let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
            bail!("{} is not a public key", host_key_pub.display());
        };
        let file = self.path(&format!("known_hosts-{}", self.port));
        std::fs::write(&file, format!("[127.0.0.1]:{} {kind} {blob}\n", self.port))?;
        Ok(file)
    }

    fn settings(&self, work: &str, key: &Path, known_hosts: &Path) -> Settings {
        let mut config = env_manager::Config::new(self.url.clone(), self.path(work));
        config.gitops.credentials.ssh_key = Some(key.to_path_buf());
        config.gitops.credentials.known_hosts = Some(known_hosts.to_path_buf());
        config.gitops
    }

    fn head_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        bare::head_file(&self.path("srv/gitops.git"), path)
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_key_and_a_known_host_key_fetch_and_push_over_ssh() -> Result<()> {
    let Some(remote) = SshRemote::start()? else {
        return Ok(());
    };
    let known_hosts = remote.known_hosts(&remote.path("host_key.pub"))?;
    let settings = remote.settings("work", &remote.path("client_key"), &known_hosts);
    let gitops = GitOps::open(settings).await.with_context(|| remote.log())?;

    bare::write(&gitops, "envs/pr-ping-1.json", "over ssh").await?;
    bare::write(&gitops, "envs/pr-ping-2.json", "over ssh").await?;

    assert!(remote.head_file("envs/pr-ping-1.json")?.is_some());
    assert!(remote.head_file("envs/pr-ping-2.json")?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_host_key_or_an_unknown_client_key_is_refused_with_the_reason() -> Result<()> {
    let Some(remote) = SshRemote::start()? else {
        return Ok(());
    };
    // The known_hosts file lists another key for this server: as if someone answered in its place.
    keygen(&remote.path("impostor_key"))?;
    let impostor = remote.known_hosts(&remote.path("impostor_key.pub"))?;
    let result =
        GitOps::open(remote.settings("work-1", &remote.path("client_key"), &impostor)).await;
    let err = match result {
        Ok(gitops) => bare::write(&gitops, "envs/x.json", "over ssh")
            .await
            .expect_err("impostor"),
        Err(err) => err,
    };
    // libgit2 reports its own words; the reason (key does not match) is in the log.
    assert!(err.to_string().contains("hostkey"), "{err}");

    // The host is right, but the server does not know the client's key.
    let known_hosts = remote.known_hosts(&remote.path("host_key.pub"))?;
    keygen(&remote.path("stranger_key"))?;
    let result =
        GitOps::open(remote.settings("work-2", &remote.path("stranger_key"), &known_hosts)).await;
    let err = match result {
        Ok(gitops) => bare::write(&gitops, "envs/x.json", "over ssh")
            .await
            .expect_err("stranger"),
        Err(err) => err,
    };
    assert!(
        err.to_string().contains("refused the credentials")
            || err.to_string().contains("authentication"),
        "{err}"
    );
    assert!(
        remote.head_file("envs/x.json")?.is_none(),
        "nothing was pushed"
    );
    Ok(())
}
