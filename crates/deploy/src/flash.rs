//! The flash protocol, one method per step (see the crate docs): prepare an
//! upload folder, upload, verify the hashes there, install with one rename and
//! the pointer files, benchmark (rolling back on failure), remove old
//! versions.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_codegen::program::BenchLine;
use kiln_process::shell_quote;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::transport::last_lines;
use crate::{
    BenchSettings, DeployError, Device, EXPECTED_NAME, INPUT_NAME, PROGRAM_NAME, PowerOutcome,
};

/// The files that travel to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The built program (runs on the device, or under its runner); becomes
    /// [`PROGRAM_NAME`] there.
    pub program: PathBuf,
    /// The fixed input (LE f32) the benchmark runs on; [`INPUT_NAME`] there.
    pub input: PathBuf,
    /// The expected output (LE f32) the program checks its own against;
    /// [`EXPECTED_NAME`] there.
    pub expected: PathBuf,
}

/// What a flash did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlashReport {
    /// The device as [`Device::name`] shows it, e.g. `root@10.0.0.2:22` or
    /// `adb:SERIAL`.
    pub device: String,
    /// The kiln folder on the device.
    pub dir: String,
    /// The version folder now in place (`m-` and 16 hex digits of the three
    /// files' hashes), named by `dir/current`.
    pub version: String,
    /// The version kept for rollback (named by `dir/previous`), if there was
    /// one.
    pub previous: Option<String>,
    /// The program's bench line as run on the device (labelled `device`,
    /// output check passed); `None` in a dry run.
    pub bench: Option<BenchLine>,
    /// Power mode and power figures, or why there are none.
    pub power: PowerOutcome,
    /// Every command run (or, in a dry run, that would run), in order.
    pub commands: Vec<String>,
    /// Whether this was a dry run (no command was run).
    pub dry_run: bool,
}

/// sha256 of a local file, lower-case hex.
///
/// Errors: [`DeployError::Local`] when the file cannot be read.
pub fn sha256_file(path: &Path) -> Result<String, DeployError> {
    let bytes = std::fs::read(path).map_err(|source| DeployError::Local {
        path: path.to_owned(),
        source,
    })?;
    Ok(hex(&Sha256::digest(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One flash's names: the files with their local hashes, the version folder
/// they make and the temporary upload folder.
struct Upload<'a> {
    /// (name on the device, local file, local sha256).
    files: Vec<(&'static str, &'a Path, String)>,
    /// `m-<16 hex digits>`, derived from the three hashes.
    version: String,
    /// `.incoming-<pid>-<nanos>`, inside the kiln folder.
    incoming: String,
}

impl<'a> Upload<'a> {
    fn new(bundle: &'a Bundle) -> Result<Upload<'a>, DeployError> {
        Upload::of(&[
            (PROGRAM_NAME, &bundle.program),
            (INPUT_NAME, &bundle.input),
            (EXPECTED_NAME, &bundle.expected),
        ])
    }

    /// The upload of `files` (name on the device, local file).
    fn of(files: &[(&'static str, &'a Path)]) -> Result<Upload<'a>, DeployError> {
        let files = files
            .iter()
            .map(|&(name, path)| sha256_file(path).map(|hash| (name, path, hash)))
            .collect::<Result<Vec<_>, _>>()?;
        let joined: String = files.iter().map(|(n, _, h)| format!("{n} {h}\n")).collect();
        let version = format!("m-{}", &hex(&Sha256::digest(joined.as_bytes()))[..16]);
        let nonce = format!(
            "{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        Ok(Upload {
            files,
            version,
            incoming: format!(".incoming-{nonce}"),
        })
    }
}

/// The pointer files as found before the install.
struct Pointers {
    current: Option<String>,
    previous: Option<String>,
}

impl Device {
    /// Uploads, verifies, installs and benchmarks `bundle`; see the crate
    /// docs for the protocol. Commands are recorded from the start
    /// ([`Device::commands`]); in a dry run none is run and the report has
    /// no figures.
    ///
    /// Errors: [`DeployError::Local`] (a bundle file cannot be read);
    /// [`DeployError::Upload`] or [`DeployError::ChecksumMismatch`] (the
    /// upload is discarded, `current` untouched); [`DeployError::Bench`] (the
    /// pointers were put back and the new version removed);
    /// [`DeployError::Unreachable`], [`DeployError::Spawn`],
    /// [`DeployError::Timeout`], [`DeployError::Io`] or
    /// [`DeployError::Remote`] from any step.
    pub fn flash(
        &mut self,
        bundle: &Bundle,
        bench: &BenchSettings,
    ) -> Result<FlashReport, DeployError> {
        self.commands.clear();
        let upload = Upload::new(bundle)?;
        let before = self.prepare(&upload)?;
        self.upload(&upload)?;
        let verified = self.verify(&upload);
        self.discard_on_error(&upload, verified)?;
        let installed = self.install(&upload);
        let existed = self.discard_on_error(&upload, installed)?;
        let version = upload.version;
        let previous = if before.current.as_deref() == Some(version.as_str()) {
            before.previous.clone()
        } else {
            before.current.clone()
        };
        let (figures, power) = match self.run_benchmark(&version, bench) {
            Ok(done) => done,
            Err(detail) => {
                let rollback = self.rollback(&version, existed, &before);
                return Err(DeployError::Bench {
                    device: self.name(),
                    detail,
                    rollback,
                });
            }
        };
        self.remove_old_versions(&version, previous.as_deref())?;
        Ok(FlashReport {
            device: self.name(),
            dir: self.dir.clone(),
            version,
            previous,
            bench: figures,
            power,
            commands: self.commands.clone(),
            dry_run: self.dry_run,
        })
    }

    /// Puts `program` and its `input` on the device as [`Device::flash`] does
    /// (a temporary folder, sha256 there, one rename, the pointer files) but
    /// runs nothing, so a program with another command line (a latency
    /// table's bundle of layers, each run on its own with
    /// [`Device::run_installed`]) travels once. Keeps only this version and
    /// the previous one. Returns the version folder (`m-...`).
    ///
    /// Errors: as [`Device::flash`], without [`DeployError::Bench`].
    pub fn install_program(&mut self, program: &Path, input: &Path) -> Result<String, DeployError> {
        self.commands.clear();
        let upload = Upload::of(&[(PROGRAM_NAME, program), (INPUT_NAME, input)])?;
        let before = self.prepare(&upload)?;
        self.upload(&upload)?;
        let verified = self.verify(&upload);
        self.discard_on_error(&upload, verified)?;
        let installed = self.install(&upload);
        self.discard_on_error(&upload, installed)?;
        let previous = if before.current.as_deref() == Some(upload.version.as_str()) {
            before.previous
        } else {
            before.current
        };
        self.remove_old_versions(&upload.version, previous.as_deref())?;
        Ok(upload.version)
    }

    /// Step 1: a fresh upload folder (stale ones from cut-off uploads go);
    /// reads the pointers as they are.
    fn prepare(&mut self, upload: &Upload) -> Result<Pointers, DeployError> {
        let dir = shell_quote(&self.dir);
        let incoming = &upload.incoming;
        let prep = self.remote(
            "preparing the kiln folder",
            &format!(
                "mkdir -p {dir} && cd {dir} && rm -rf .incoming-* && mkdir {incoming} && echo \"kiln-current $(cat current 2>/dev/null)\" && echo \"kiln-previous $(cat previous 2>/dev/null)\""
            ),
        )?;
        let stdout = prep.stdout_text();
        Ok(Pointers {
            current: tagged(&stdout, "kiln-current"),
            previous: tagged(&stdout, "kiln-previous"),
        })
    }

    /// Step 2: each file into the upload folder; on failure the folder is
    /// removed.
    fn upload(&mut self, upload: &Upload) -> Result<(), DeployError> {
        for (name, path, _) in &upload.files {
            let remote = format!("{}/{}/{name}", self.dir, upload.incoming);
            let cmd = self.upload_command(path, &remote);
            let failure = match self.run(cmd, self.timeouts.upload) {
                Ok(f) if f.success() => None,
                Ok(f) => Some(
                    self.unreachable(&f)
                        .map_or_else(|| last_lines(&f.stderr_text(), 3), |e| e.to_string()),
                ),
                Err(e) => Some(e.to_string()),
            };
            if let Some(detail) = failure {
                self.discard(&upload.incoming);
                return Err(DeployError::Upload {
                    file: name.to_string(),
                    device: self.name(),
                    detail: if detail.is_empty() {
                        "no message".into()
                    } else {
                        detail
                    },
                });
            }
        }
        Ok(())
    }

    /// Step 3: `sha256sum` in the upload folder against the local hashes.
    fn verify(&mut self, upload: &Upload) -> Result<(), DeployError> {
        let dir = shell_quote(&self.dir);
        let names: Vec<&str> = upload.files.iter().map(|(n, _, _)| *n).collect();
        let sums = self.remote(
            "sha256sum of the upload",
            &format!(
                "cd {dir}/{} && sha256sum {}",
                upload.incoming,
                names.join(" ")
            ),
        )?;
        if self.dry_run {
            return Ok(());
        }
        let sums = sums.stdout_text();
        for (name, _, local) in &upload.files {
            let remote = sums
                .lines()
                .filter_map(|l| l.split_once(char::is_whitespace))
                .find(|(_, file)| file.trim().trim_start_matches('*') == *name)
                .map(|(h, _)| h.to_ascii_lowercase())
                .unwrap_or_else(|| "nothing".to_string());
            if &remote != local {
                return Err(DeployError::ChecksumMismatch {
                    file: name.to_string(),
                    device: self.name(),
                    local: local.clone(),
                    remote,
                });
            }
        }
        Ok(())
    }

    /// Step 4: one rename of the folder to the version (unless that version
    /// is already there), then `current`/`previous` written as `.tmp` + `mv`.
    /// Returns whether the version folder existed before.
    fn install(&mut self, upload: &Upload) -> Result<bool, DeployError> {
        let dir = shell_quote(&self.dir);
        let (incoming, version) = (&upload.incoming, &upload.version);
        let install = self.remote(
            "installing the new version",
            &format!(
                "cd {dir} && if [ -d {version} ]; then rm -rf {incoming}; echo kiln-existed; else mv {incoming} {version}; fi && chmod 755 {version}/{PROGRAM_NAME} && cur=$(cat current 2>/dev/null); if [ \"$cur\" != {version} ]; then if [ -n \"$cur\" ]; then echo \"$cur\" > previous.tmp && mv previous.tmp previous; fi; echo {version} > current.tmp && mv current.tmp current; fi"
            ),
        )?;
        Ok(install
            .stdout_text()
            .lines()
            .any(|l| l.trim() == "kiln-existed"))
    }

    /// Step 6: keep only the new and the previous version.
    fn remove_old_versions(
        &mut self,
        version: &str,
        previous: Option<&str>,
    ) -> Result<(), DeployError> {
        let dir = shell_quote(&self.dir);
        let keep = match previous {
            Some(p) if !p.is_empty() => shell_quote(p),
            _ => version.to_string(),
        };
        self.remote(
            "removing old versions",
            &format!(
                "cd {dir} && for d in m-*; do case \"$d\" in {version}|{keep}) ;; *) rm -rf \"$d\" ;; esac; done"
            ),
        )
        .map(|_| ())
    }

    /// `result`, after removing the upload folder if it is an error.
    fn discard_on_error<T>(
        &mut self,
        upload: &Upload,
        result: Result<T, DeployError>,
    ) -> Result<T, DeployError> {
        if result.is_err() {
            self.discard(&upload.incoming);
        }
        result
    }

    /// Best effort: remove a half-finished upload.
    fn discard(&mut self, incoming: &str) {
        let script = format!("rm -rf {}/{incoming}", shell_quote(&self.dir));
        let _ = self.run_shell(&script, self.timeouts.command);
    }

    /// Puts the pointers back as they were and removes the new version
    /// (unless it was there before); says how it went, for the message.
    fn rollback(&mut self, version: &str, existed: bool, before: &Pointers) -> String {
        let (current, previous) = (before.current.as_deref(), before.previous.as_deref());
        let dir = shell_quote(&self.dir);
        let set = |name: &str, value: Option<&str>| match value {
            Some(v) => format!(
                "echo {} > {name}.tmp && mv {name}.tmp {name}",
                shell_quote(v)
            ),
            None => format!("rm -f {name}"),
        };
        let remove = if existed || current == Some(version) || previous == Some(version) {
            ":".to_string()
        } else {
            format!("rm -rf {version}")
        };
        let script = format!(
            "cd {dir} && {} && {} && {remove}",
            set("current", current),
            set("previous", previous)
        );
        match self.remote("rolling back", &script) {
            Ok(_) => match current {
                Some(c) => format!("; rolled back to the previous version {c}"),
                None => "; the new version was removed (there was no previous one)".to_string(),
            },
            Err(e) => format!(
                "; ROLLBACK FAILED ({e}): {}/current may name the failed version",
                self.dir
            ),
        }
    }
}

/// The value after `tag ` on a line of `text`, if not empty.
fn tagged(text: &str, tag: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(tag))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_are_read_from_their_tagged_lines() {
        let out = "kiln-current m-0123\nkiln-previous \n";
        assert_eq!(tagged(out, "kiln-current").as_deref(), Some("m-0123"));
        assert_eq!(tagged(out, "kiln-previous"), None);
    }
}
