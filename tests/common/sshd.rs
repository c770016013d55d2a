//! A stand-in device for the end-to-end tests: an sshd started by the test on
//! a free loopback port, with a host key and a client key made for it. The
//! "device" is this machine, so a test can look at the kiln folder directly.
//! Needs openssh-server and openssh-client (scripts/setup.sh).
//!
//! Included with `#[path = "common/sshd.rs"] mod sshd;`; each test file uses
//! its own subset.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Runs `cmd`; panics with its stderr if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

pub fn whoami() -> String {
    String::from_utf8(run(Command::new("id").arg("-un")).stdout)
        .unwrap()
        .trim()
        .to_string()
}

/// An sshd on 127.0.0.1 that accepts one key; killed on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Sshd {
    pub fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key)));
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        // sshd wants its privilege separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\nSubsystem sftp internal-sftp\nPidFile {pid}\nLogLevel ERROR\n",
            hk = d.join("host_key").display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {}", host_pub.trim()),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd starts (apt-get install openssh-server)");
        let sshd = Sshd { child, port, dir };
        // Up to 10 s for it to listen.
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sshd;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sshd did not listen on port {port}");
    }

    /// The kiln folder of the "device".
    pub fn device_dir(&self) -> PathBuf {
        self.dir.path().join("device")
    }

    /// The client's private key.
    pub fn identity(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// `HOST_FLAG USER@127.0.0.1 --port P --identity K --ssh-option ...`
    /// (`--host` for flash, `--device` for search); the port is element 3.
    pub fn ssh_args(&self, host_flag: &str) -> Vec<String> {
        let d = self.dir.path();
        vec![
            host_flag.into(),
            format!("{}@127.0.0.1", whoami()),
            "--port".into(),
            self.port.to_string(),
            "--identity".into(),
            self.identity().display().to_string(),
            "--ssh-option".into(),
            format!("UserKnownHostsFile={}", d.join("known_hosts").display()),
            "--ssh-option".into(),
            "StrictHostKeyChecking=yes".into(),
        ]
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kiln checkout.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A copy of `targets/<name>.toml` whose kiln folder is `device_dir`, with
/// `runner` replaced when given, in a fresh profile folder.
pub fn profile(name: &str, device_dir: &Path, runner: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(workspace().join("targets").join(format!("{name}.toml"))).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("dir =") {
            out.push_str(&format!("dir = \"{}\"\n", device_dir.display()));
            if let Some(r) = runner {
                out.push_str(&format!("runner = {}\n", toml_string(r)));
            }
        } else if line.starts_with("runner =") && runner.is_some() {
            continue;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(dir.path().join(format!("{name}.toml")), out).unwrap();
    dir
}

pub fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A stand-in program `name` in `dir` (a bash script with `body`).
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Version folders and leftovers in a kiln folder, sorted.
pub fn listing(device: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(device)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The version `current` names in a kiln folder, if any.
pub fn current(device: &Path) -> Option<String> {
    std::fs::read_to_string(device.join("current"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Two ONNX models of one genome (random weights, seeds 1 and 2) in the
/// folder `name` of the test's temporary dir; returns them and the folder.
pub fn two_models(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let genome = dir.join("genome.json");
    let g = run(Command::new(env!("CARGO_BIN_EXE_xtask")).args(["space", "sample", "--seed", "7"]));
    std::fs::write(&genome, &g.stdout).unwrap();
    let mut out = Vec::new();
    for seed in ["1", "2"] {
        let path = dir.join(format!("model-{seed}.onnx"));
        run(Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["export-onnx", "--genome"])
            .arg(&genome)
            .args(["--seed", seed, "-o"])
            .arg(&path));
        out.push(path);
    }
    (out[0].clone(), out[1].clone(), dir)
}
