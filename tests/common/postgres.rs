//! A throwaway PostgreSQL server for the shared-journal tests: `initdb` in a
//! temporary folder and `pg_ctl` on a free loopback port, as the `postgres`
//! system user when the tests run as root (the server refuses root). It is
//! stopped when dropped.
//!
//! When no server can be started the test is skipped with the reason
//! printed, unless `KILN_REQUIRE_POSTGRES` is set (`.ci/run` sets it), when
//! it fails instead.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running server; stopped on drop.
pub struct Server {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub url: String,
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

/// A server, or `None` (the reason printed) when none can be started here.
/// Panics instead when `KILN_REQUIRE_POSTGRES` is set.
pub fn server() -> Option<Server> {
    match start() {
        Ok(s) => Some(s),
        Err(reason) => {
            if std::env::var_os("KILN_REQUIRE_POSTGRES").is_some() {
                panic!("KILN_REQUIRE_POSTGRES is set but no PostgreSQL server starts: {reason}");
            }
            eprintln!("SKIPPED: no PostgreSQL server can be started here: {reason}");
            None
        }
    }
}

fn bin_dir() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    candidates.sort();
    candidates.reverse(); // the newest version first
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        .ok_or_else(|| {
            "no initdb and pg_ctl in /usr/lib/postgresql/*/bin or on PATH (Debian: apt-get \
             install postgresql)"
                .to_string()
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn run(as_postgres: bool, program: &Path, args: &[&str]) -> Result<(), String> {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let o = cmd
        .args(args)
        .current_dir("/")
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {}: {}{}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

fn start() -> Result<Server, String> {
    let bin = bin_dir()?;
    let as_postgres = is_root();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    std::fs::create_dir(&data).map_err(|e| e.to_string())?;
    if as_postgres {
        use std::os::unix::fs::PermissionsExt;
        // The server runs as `postgres`: it must reach and own its folder.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let o = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&data)
            .output()
            .map_err(|e| format!("chown: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "chown postgres {}: {}",
                data.display(),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    let data_s = data.to_str().ok_or("temporary folder is not UTF-8")?;
    run(
        as_postgres,
        &bin.join("initdb"),
        &[
            "-D",
            data_s,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ],
    )?;
    let port = free_port()?;
    let options = format!(
        "-p {port} -k {data_s} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
    );
    let log = format!("{data_s}/server.log");
    run(
        as_postgres,
        &bin.join("pg_ctl"),
        &[
            "-D", data_s, "-o", &options, "-l", &log, "-w", "-t", "60", "start",
        ],
    )
    .map_err(|e| format!("{e}\n{}", std::fs::read_to_string(&log).unwrap_or_default()))?;
    Ok(Server {
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        bin,
        data,
        as_postgres,
        _dir: dir,
    })
}

impl Server {
    /// Stops the server at once (as a crash would) and starts it again on
    /// the same port.
    pub fn restart(&self) {
        let data = self.data.to_str().unwrap();
        // A log file, so the server does not hold our output pipes open.
        let log = format!("{data}/server.log");
        run(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &["-D", data, "-l", &log, "-m", "immediate", "-w", "restart"],
        )
        .expect("pg_ctl restart");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.data.to_str().unwrap_or("");
        let _ = run(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &["-D", data, "-m", "immediate", "-w", "stop"],
        );
    }
}
