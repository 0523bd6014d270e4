//! A v2 proxy process (`etcd --proxy on`, `beacon --proxy on`): it has no member to be
//! healthy, so it is ready once its client port accepts connections.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// How long a proxy may take to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

/// A proxy process on its own client port and data dir, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct V2ProxyProcess {
    bin: PathBuf,
    port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl V2ProxyProcess {
    /// Starts `bin` on a fresh port over `data_dir` (the caller's, e.g. in a
    /// [`crate::TempDir`]) with `args` and `env`; waits until it listens.
    pub fn start(
        bin: &Path,
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> std::io::Result<V2ProxyProcess> {
        let mut proxy = V2ProxyProcess::on_port(bin, free_port(), data_dir);
        proxy.respawn(args, env)?;
        Ok(proxy)
    }

    /// A proxy of `bin` on `port` over `data_dir`, not started: [`respawn`] starts it.
    ///
    /// [`respawn`]: V2ProxyProcess::respawn
    pub fn on_port(bin: &Path, port: u16, data_dir: &Path) -> V2ProxyProcess {
        V2ProxyProcess {
            bin: bin.to_path_buf(),
            port,
            data_dir: data_dir.to_path_buf(),
            log: data_dir.with_extension("log"),
            child: None,
        }
    }

    /// Its client URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Kills the process if it runs and starts it again on the same port and data dir
    /// with `args` and `env` (after `--data-dir` and its client URLs, listened on and
    /// advertised: etcd asks for both whenever it may run as a member); waits until it
    /// listens.
    pub fn respawn(&mut self, args: &[&str], env: &[(&str, &str)]) -> std::io::Result<()> {
        self.kill();
        let url = self.url();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .args(["--data-dir", &self.data_dir.display().to_string()])
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait()?,
                None => None,
            };
            if exited.is_some() || Instant::now() >= deadline {
                let why = exited.map_or("never listened".to_string(), |s| format!("exited {s}"));
                return Err(std::io::Error::other(format!(
                    "{} {why}:\n{}",
                    self.bin.display(),
                    self.log_text()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Everything it logged, over all its starts.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for V2ProxyProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.bin.display(), self.log_text());
        }
    }
}
