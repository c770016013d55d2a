//! adb's exit status, which cannot be trusted alone. adb before its shell
//! protocol v2 (Android < 7, or an old adb) exits 0 whatever the command did
//! and mixes the command's stderr into stdout, so over adb kiln wraps every
//! script to print its own status on a last line and takes the status from
//! there; adb's own failures (no such device, offline, ...) stay failures.

use kiln_process::Finished;

/// The line an adb shell script ends with: its exit status.
const ADB_STATUS_TAG: &str = "kiln-exit-status ";

/// `script` in a subshell followed by a line with its exit status.
pub(crate) fn adb_status_script(script: &str) -> String {
    format!("( {script}\n); echo \"{ADB_STATUS_TAG}$?\"")
}

/// Reads the status line [`adb_status_script`] printed and removes it. No
/// line while adb says all went well means the phone's shell never got to
/// the end (the connection dropped): not a success.
pub(crate) fn adb_status(mut f: Finished) -> Finished {
    let tag = ADB_STATUS_TAG.as_bytes();
    let found = f
        .stdout
        .windows(tag.len())
        .rposition(|w| w == tag)
        .map(|pos| {
            let rest = &f.stdout[pos + tag.len()..];
            let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
            let code = String::from_utf8_lossy(line).trim().parse::<i32>().ok();
            (pos, code)
        });
    match found {
        Some((pos, Some(code))) => {
            f.stdout.truncate(pos);
            // adb's own failure (its exit 1 with `adb: ...`) stays a failure.
            if f.code == Some(0) || !adb_own_failure(&f.stderr_text()) {
                f.code = Some(code);
            }
        }
        _ if f.code == Some(0) => {
            f.code = None;
            f.stderr.extend_from_slice(
                b"\nkiln: the phone's shell ended without reporting its exit status (adb connection lost?)",
            );
        }
        _ => {}
    }
    f
}

/// True when adb itself (not the program it ran on the phone) says the phone
/// cannot be reached. A program's own `sh: x: not found` on the phone is not
/// that: only adb's lines (`adb: ...`, `error: ...`) count.
pub(crate) fn adb_own_failure(stderr: &str) -> bool {
    stderr.lines().map(str::trim).any(|l| {
        (l.starts_with("adb: ") || l.starts_with("error: "))
            && [
                "no devices",
                "not found",
                "offline",
                "unauthorized",
                "more than one device",
                "no emulators",
            ]
            .iter()
            .any(|p| l.contains(p))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kiln_process::{Cmd, run};

    use super::*;

    fn done(code: Option<i32>, stdout: &str, stderr: &str) -> Finished {
        Finished {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn adb_exit_status_comes_from_the_scripts_own_line() {
        // An old adb: exit 0, CRLF line ends, the script failed with 3.
        let f = adb_status(done(Some(0), "{\"x\":1}\r\nkiln-exit-status 3\r\n", ""));
        assert_eq!(f.code, Some(3));
        assert_eq!(f.stdout_text(), "{\"x\":1}\r\n");
        // A new adb agrees with the line.
        assert_eq!(
            adb_status(done(Some(0), "ok\nkiln-exit-status 0\n", "")).code,
            Some(0)
        );
        // No line although adb says 0: the shell never finished.
        let f = adb_status(done(Some(0), "partial output", ""));
        assert_eq!(f.code, None);
        assert!(
            f.stderr_text()
                .contains("without reporting its exit status")
        );
        // adb's own failure stays one.
        let f = adb_status(done(Some(1), "", "adb: device 'X' not found"));
        assert_eq!(f.code, Some(1));
        // The wrapped script still runs under sh, exit included.
        let cmd = Cmd::new("sh")
            .arg("-c")
            .arg(adb_status_script("echo hi; exit 7"));
        let out = run(&cmd, None, Duration::from_secs(10)).unwrap();
        let f = adb_status(Finished {
            code: Some(0),
            ..out
        });
        assert_eq!((f.code, f.stdout_text().as_str()), (Some(7), "hi\n"));
    }

    #[test]
    fn the_last_status_line_counts_and_other_bytes_survive() {
        // The program printed a line that looks like the tag, and bytes that
        // are not UTF-8; only the last line is the script's status.
        let mut stdout = b"kiln-exit-status 9\n\xff\xfe\n".to_vec();
        stdout.extend_from_slice(b"kiln-exit-status 0\n");
        let f = adb_status(Finished {
            code: Some(0),
            stdout,
            stderr: Vec::new(),
        });
        assert_eq!(f.code, Some(0));
        assert_eq!(f.stdout, b"kiln-exit-status 9\n\xff\xfe\n");
    }

    #[test]
    fn only_adbs_own_messages_mean_the_phone_is_unreachable() {
        for down in [
            "adb: device 'FAKE' not found",
            "adb: no devices/emulators found",
            "error: device offline",
            "error: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set",
            "adb: more than one device/emulator",
        ] {
            assert!(adb_own_failure(down), "{down}");
        }
        // The program on the phone failing is the program's failure.
        for program in [
            "sh: ./kiln-model: not found",
            "/system/bin/sh: sha256sum: not found",
            "adb: error: failed to copy 'a' to '/data/local/tmp/x': remote No space left on device",
        ] {
            assert!(!adb_own_failure(program), "{program}");
        }
    }
}
