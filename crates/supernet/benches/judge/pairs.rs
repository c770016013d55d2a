//! The judge bench's side of its pairs file: reading earlier sittings' pairs and opening the
//! file to append to, each failure a message naming the file. The format's one owner is
//! `kiln_supernet::pairs`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kiln_space::Genome;
use kiln_supernet::pairs::{PairsFile, header};

use super::fail;

/// The stand-alone accuracy of every candidate in the `--pairs` file `path`, by index.
///
/// Exits with an error naming the file when it is missing or lacks a candidate.
pub fn measured(
    path: &Path,
    genomes: &[Genome],
    data: &str,
    scored_on: &str,
) -> HashMap<usize, f64> {
    if !path.is_file() {
        fail(&format!("{}: no such pairs file", path.display()));
    }
    let known: HashMap<usize, f64> = read_pairs(path, genomes, data, scored_on, None)
        .into_iter()
        .map(|(i, _, stand_alone)| (i, stand_alone))
        .collect();
    if known.len() < genomes.len() {
        fail(&format!(
            "{}: holds {} of the {} candidates' stand-alone accuracies",
            path.display(),
            known.len(),
            genomes.len()
        ));
    }
    known
}

/// The `(index, inherited, stand_alone)` pairs of earlier sittings in a `--pairs` file (a
/// missing or empty file holds none), checked against this run's data, scored images and genomes
/// (`PairsFile::for_run`) and, with `judges` (the content id of the supernet that judges
/// each candidate in this run), against the weights that judged them
/// (`PairsFile::check_judged_by`); exits with their error otherwise.
pub fn read_pairs(
    path: &Path,
    genomes: &[Genome],
    data: &str,
    scored_on: &str,
    judges: Option<&[Option<&str>]>,
) -> Vec<(usize, f64, f64)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        // an unreadable file is not an empty one: every pair in it would be trained again
        Err(e) => fail(&format!("{}: {e}", path.display())),
    };
    if text.trim().is_empty() {
        return Vec::new();
    }
    let file = PairsFile::parse(&text, path).unwrap_or_else(|e| fail(&e.to_string()));
    if let Some(judges) = judges {
        file.check_judged_by(judges)
            .unwrap_or_else(|e| fail(&e.to_string()));
    }
    let pairs = file
        .for_run(data, scored_on, genomes)
        .unwrap_or_else(|e| fail(&e.to_string()));
    pairs
        .iter()
        .map(|p| (p.index, p.inherited, p.stand_alone))
        .collect()
}

/// Opens the `--pairs` file `path` for appending; a new file first gets its header
/// (`kiln_supernet::pairs::header`); kept with its path, for messages. Exits naming the
/// file when it cannot be written.
pub fn open_pairs(
    path: &Path,
    data: &str,
    scored: Option<&str>,
) -> Mutex<(PathBuf, std::fs::File)> {
    let cannot = |e: std::io::Error| -> ! { fail(&format!("{}: {e}", path.display())) };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| cannot(e));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if text.is_empty() {
        file.write_all(header(data, scored).as_bytes())
            .unwrap_or_else(|e| cannot(e));
    } else if !text.ends_with('\n') {
        // a file edited by hand without a last newline: the next pair starts a line of its own
        file.write_all(b"\n").unwrap_or_else(|e| cannot(e));
    }
    Mutex::new((path.to_path_buf(), file))
}
