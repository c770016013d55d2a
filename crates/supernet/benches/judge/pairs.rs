//! The judge bench's pairs file (its format is the bench's; docs in `judge.rs`): reading
//! earlier sittings' pairs and opening the file to append to.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use kiln_data::{Source, SplitOptions};
use kiln_space::Genome;

use super::fail;

/// The stand-alone accuracy of every candidate in the `--pairs` file `path`, by index.
///
/// Exits with an error naming the file when it is missing or lacks a candidate.
pub fn measured(
    path: &std::path::Path,
    genomes: &[Genome],
    data: &str,
    scored_on: &str,
) -> HashMap<usize, f64> {
    if !path.is_file() {
        fail(&format!("{}: no such pairs file", path.display()));
    }
    let known: HashMap<usize, f64> = read_pairs(path, genomes, data, scored_on)
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

/// How a pairs file names accuracies measured on the validation split (the default; a file
/// without a `scored` line holds these).
pub const VALIDATION: &str = "the validation split";

/// The `(index, inherited, stand_alone)` pairs of earlier sittings in a `--pairs` file
/// (`done,index,genome,inherited,stand_alone` lines; a missing file holds none).
///
/// Lines past this run's candidates are left out. Exits with an error (naming the file and
/// line) when a line's genome is not this run's genome at that index (the file was written
/// for another space), or when the file's `data,IDENTITY` line is not `data`, this run's
/// data and split (a file without one predates it and holds the bundled digits' pairs).
pub fn read_pairs(
    path: &std::path::Path,
    genomes: &[Genome],
    data: &str,
    scored_on: &str,
) -> Vec<(usize, f64, f64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let bundled = || Source::Mnist5k.identity(&SplitOptions::default());
    let theirs = text
        .lines()
        .find_map(|l| l.strip_prefix("data,").map(str::to_owned))
        .unwrap_or_else(bundled);
    if !text.trim().is_empty() && theirs != data {
        fail(&format!(
            "{}: pairs measured on {theirs}, but this run reads {data}",
            path.display()
        ));
    }
    let theirs = text
        .lines()
        .find_map(|l| l.strip_prefix("scored,"))
        .unwrap_or(VALIDATION);
    if !text.trim().is_empty() && theirs != scored_on {
        fail(&format!(
            "{}: pairs scored on {theirs}, but this run scores on {scored_on}",
            path.display()
        ));
    }
    let pair = |(n, l): (usize, &str)| {
        let ["done", i, id, a, b] = l.split(',').collect::<Vec<_>>()[..] else {
            return None;
        };
        let i: usize = i.parse().ok()?;
        // a file of more candidates than this run asks for: the first ones are this run's
        let ours = genomes.get(i)?.id();
        if ours != id {
            fail(&format!(
                "{} line {}: genome {id} at index {i}, but this run's is {ours} \
                 (a file of another space)",
                path.display(),
                n + 1
            ));
        }
        Some((i, a.parse().ok()?, b.parse().ok()?))
    };
    text.lines().enumerate().filter_map(pair).collect()
}

/// Opens the `--pairs` file `path` for appending; a new file first gets its `data,IDENTITY`
/// line and, for held-out scoring, its `scored,IMAGES` line. Exits naming the file when it
/// cannot be written.
pub fn open_pairs(
    path: &std::path::Path,
    data: &str,
    scored: Option<&str>,
) -> Mutex<std::fs::File> {
    let cannot = |e: std::io::Error| -> ! { fail(&format!("{}: {e}", path.display())) };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| cannot(e));
    if file.metadata().is_ok_and(|m| m.len() == 0) {
        writeln!(file, "data,{data}").unwrap_or_else(|e| cannot(e));
        if let Some(images) = scored {
            writeln!(file, "scored,{images}").unwrap_or_else(|e| cannot(e));
        }
    }
    Mutex::new(file)
}
