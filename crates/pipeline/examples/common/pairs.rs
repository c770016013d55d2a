//! The judge bench's pairs files (`crates/supernet/benches/judge.rs` writes them), read
//! by the ranking and fine_tune examples: a `data,IDENTITY` line, a `scored,IMAGES` line when
//! the accuracies were measured on held-out images instead of the validation split (the
//! bench's `--held-out`), then `done,index,genome,inherited,stand_alone` lines (top-1
//! fractions, host).

use std::path::Path;

type Error = Box<dyn std::error::Error>;

/// One finished pair: genome index and id, inherited and stand-alone top-1 (on the
/// validation split, or the images [`scored_on`] names).
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

/// The data and split the pairs file at `path` was measured on: its `data,IDENTITY` line,
/// or for a file written before the judge bench wrote one, the bundled digits (all it read).
pub fn data_of(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bundled = || kiln_data::Source::Mnist5k.identity(&kiln_data::SplitOptions::default());
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("data,").map(str::to_owned))
        .unwrap_or_else(bundled))
}

/// What the accuracies of the pairs file at `path` were measured on: its `scored,IMAGES`
/// line (e.g. `the test images of idx:data/fashion-5k-heldout`), or `None` for the
/// validation split of the data its `data` line names.
pub fn scored_on(path: &Path) -> Result<Option<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("scored,").map(str::to_owned)))
}

/// The pairs of the file at `path` ([`pairs`]); a read error names the file.
pub fn read_pairs_file(path: &Path) -> Result<Vec<Pair>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    pairs(&text, path)
}
