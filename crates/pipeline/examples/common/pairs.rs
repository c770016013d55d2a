//! The judge bench's pairs files (`crates/supernet/benches/judge.rs` writes them), read
//! by the ranking and fine_tune examples: a `data,IDENTITY` line, a `scored,IMAGES` line when
//! the accuracies were measured on held-out images instead of the validation split (the
//! bench's `--held-out`), then `done,index,genome,inherited,stand_alone` lines (top-1
//! fractions, host).

use std::path::Path;

type Error = Box<dyn std::error::Error>;

/// One finished pair: genome index and id, inherited and stand-alone top-1 (on the
/// validation split, or the images [`PairsFile::scored`] names).
pub struct Pair {
    pub index: usize,
    pub genome: String,
    pub inherited: f64,
    pub stand_alone: f64,
}

/// The `done,...` lines of `text` (other lines are skipped), in index order.
pub fn pairs(text: &str, origin: &Path) -> Result<Vec<Pair>, Error> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.trim().split(',').collect();
        if f.first() != Some(&"done") {
            continue;
        }
        let bad = || {
            format!(
                "{}:{}: expected done,index,genome,inherited,stand_alone",
                origin.display(),
                n + 1
            )
        };
        let [_, index, genome, inherited, stand_alone] = f[..] else {
            return Err(bad().into());
        };
        out.push(Pair {
            index: index.parse().map_err(|_| bad())?,
            genome: genome.to_owned(),
            inherited: inherited.parse().map_err(|_| bad())?,
            stand_alone: stand_alone.parse().map_err(|_| bad())?,
        });
    }
    out.sort_by_key(|p| p.index);
    Ok(out)
}

/// A whole pairs file, read once.
pub struct PairsFile {
    /// The data and split its pairs were measured on: its `data,IDENTITY` line, or for a
    /// file written before the judge bench wrote one, the bundled digits (all it read).
    pub data: String,
    /// What its accuracies were measured on: its `scored,IMAGES` line (e.g. `the test
    /// images of idx:data/fashion-5k-heldout (...)`), or `None` for `data`'s validation split.
    pub scored: Option<String>,
    /// Its pairs ([`pairs`]), in index order.
    pub pairs: Vec<Pair>,
}

impl PairsFile {
    /// Reads the pairs file at `path`; a read or format error names the file (and line).
    pub fn read(path: &Path) -> Result<PairsFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let line = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
        };
        let bundled = || kiln_data::Source::Mnist5k.identity(&kiln_data::SplitOptions::default());
        Ok(PairsFile {
            data: line("data,").unwrap_or_else(bundled),
            scored: line("scored,"),
            pairs: pairs(&text, path)?,
        })
    }

    /// The images its accuracies were measured on, in words.
    pub fn scored_on(&self) -> String {
        self.scored
            .clone()
            .unwrap_or_else(|| format!("the validation split of {}", self.data))
    }
}
