//! The release-like binary as a separate process, for what only a process
//! has: signals, its working directory, its stdout, its listening socket
//! across shutdown. Its logs are collected line by line for the test to read.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::{metric_in, metrics_of};

/// Sends signal `name` to `pid` with the shell's own `kill` (no package
/// needed beyond `sh`).
pub fn signal(pid: u32, name: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("kill -s {name} {pid}")])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -s {name} {pid}");
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `authbridge serve`.
pub struct Served {
    child: Child,
    pub base: String,
    pub port: u16,
    logs: Arc<Mutex<Vec<String>>>,
    /// The folder holding its config and mapping (removed on drop).
    pub dir: tempfile::TempDir,
}

/// The binary with no `AUTHBRIDGE__*` variables from the outer environment.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authbridge"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AUTHBRIDGE__") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

/// [`command`] run from the repository, so the relative paths of the shipped
/// config (`mappings/...`) resolve.
pub fn command_in_repo() -> Command {
    let mut cmd = command();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// Runs `cmd` to its end and asserts it succeeded; its output. The message
/// names the command (its arguments say which input) and its stderr.
pub fn output_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Served {
    /// Writes `config` (with `{port}` and `{dir}` filled in) to a new temp
    /// folder, copies the generic bank mapping there as `mapping.toml`, and
    /// starts `serve` with the folder as working directory. Waits for
    /// `/healthz` (at most 30 s).
    pub fn start(config: &str) -> Served {
        Self::start_with_env(config, &[])
    }

    /// As [`start`](Self::start), with these environment variables set.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            crate::helpers::repo_path("mappings/generic-bank.toml"),
            dir.path().join("mapping.toml"),
        )
        .unwrap();
        Self::start_in_with_env(dir, config, env)
    }

    /// As [`start`](Self::start), in a prepared folder.
    pub fn start_in(dir: tempfile::TempDir, config: &str) -> Served {
        Self::start_in_with_env(dir, config, &[])
    }

    /// As [`start_in`](Self::start_in), with these environment variables set.
    pub fn start_in_with_env(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Served {
        let port = free_port();
        let config = config
            .replace("{port}", &port.to_string())
            .replace("{dir}", &dir.path().display().to_string());
        let file = dir.path().join("config.toml");
        std::fs::write(&file, config).unwrap();
        let mut child = command()
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .args(["serve", "--config"])
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let served = Served {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            logs,
            dir,
        };
        served.wait_healthy();
        served
    }

    fn wait_healthy(&self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(200) = raw_status(self.port, "/healthz") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "authbridge did not start; logs:\n{}",
            self.logs().join("\n")
        );
    }

    /// Sends a signal (`HUP`, `TERM`, ...).
    /// The process id, for what only `/proc` shows.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// A file in its folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The value of one sample of `/metrics` (0 when absent).
    pub async fn metric(&self, sample: &str) -> f64 {
        metric_in(&metrics_of(&self.base).await, sample)
    }

    /// Waits for the process to exit (at most `limit`), returning its status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of a GET on loopback `port` through a plain socket (usable
/// outside a runtime), or `Err` when nothing answers.
pub fn raw_status(port: u16, path: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("not HTTP"))
}

/// Writes `text` to `path` through a temp file and a rename, as a deploy
/// tool would.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}
