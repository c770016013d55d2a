//! Who holds a run: a lease per process (host, pid, a nonce), renewed by a
//! heartbeat thread. A lease whose heartbeat is older than the grace period,
//! or whose process is gone from this host, is stale and may be taken over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// One process's claim on a run (a search, or a worker of a shared run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Unique per journal handle: `host:pid:nonce`.
    pub id: String,
    /// The machine's host name.
    pub host: String,
    /// The process id on that host.
    pub pid: u32,
    /// The process's start time in clock ticks since boot (Linux), so a
    /// reused pid is not taken for the holder.
    pub proc_start: Option<u64>,
}

impl Holder {
    /// This process, with a fresh nonce (two journals opened by one process
    /// are two holders).
    pub fn this_process() -> Holder {
        static NONCE: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        let host = hostname();
        let nonce = NONCE.fetch_add(1, Ordering::SeqCst);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() % 1_000_000_007)
            .unwrap_or(0);
        Holder {
            id: format!("{host}:{pid}:{nonce}-{t:x}"),
            proc_start: proc_start(pid),
            host,
            pid,
        }
    }

    /// `process 1234 on host build-1`, for messages.
    pub fn describe(&self) -> String {
        format!("process {} on host {}", self.pid, self.host)
    }

    /// True when the holder was a process of this host that no longer runs
    /// (its pid is gone, or now belongs to a process started later).
    pub fn is_gone_from_this_host(&self) -> bool {
        if self.host != hostname() || !std::path::Path::new("/proc/self").exists() {
            return false;
        }
        match proc_start(self.pid) {
            None => true,
            Some(start) => self.proc_start.is_some_and(|s| s != start),
        }
    }
}

/// The machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`,
/// else `unknown`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Field 22 of `/proc/PID/stat` (start time in ticks), `None` when the
/// process does not exist or this is not Linux.
fn proc_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count after its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A thread calling `beat` every `interval` until dropped.
pub struct Heartbeat {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Starts the thread; `beat` returns false to stop beating (the lease
    /// was lost or the store went away for good).
    pub fn start(interval: Duration, mut beat: impl FnMut() -> bool + Send + 'static) -> Heartbeat {
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                if !beat() {
                    break;
                }
            }
        });
        Heartbeat {
            stop: Some(tx),
            handle: Some(handle),
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_gone() {
        let me = Holder::this_process();
        assert!(!me.is_gone_from_this_host());
        assert_ne!(me.id, Holder::this_process().id);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = Holder {
            pid,
            proc_start: Some(1),
            ..me.clone()
        };
        assert!(dead.is_gone_from_this_host());
        let elsewhere = Holder {
            host: "another-machine".into(),
            ..dead
        };
        assert!(!elsewhere.is_gone_from_this_host());
    }
}
