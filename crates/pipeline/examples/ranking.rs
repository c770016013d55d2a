//! Issue 14's ranking benchmark, summarised: the pairs the judge bench wrote
//! (`cargo bench --profile dev --workspace --bench judge -- DIR --candidates 30 --stand-alone 10
//! --pairs FILE`, lines `done,index,genome,inherited,stand_alone`) become Kendall's tau-b
//! between the two rankings, a scatter and a markdown summary beside the file.
//!
//! `cargo run --profile dev -p kiln-pipeline --example ranking -- docs/ranking/pairs.csv
//! [--supernet DIR]` writes `scatter.svg` and `summary.md` in the file's folder; with
//! `--supernet` the summary names the supernet's weights by content.

use std::path::{Path, PathBuf};

use kiln_search::scatter::{Axes, pairs_svg};

type Error = Box<dyn std::error::Error>;

/// One finished pair: genome index and id, inherited and stand-alone validation top-1.
struct Pair {
    index: usize,
    genome: String,
    inherited: f64,
    stand_alone: f64,
}

/// The `done,...` lines of `text` (other lines are skipped), in index order.
fn pairs(text: &str, origin: &Path) -> Result<Vec<Pair>, Error> {
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

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let file = PathBuf::from(
        args.next()
            .ok_or("usage: ranking PAIRS.csv [--supernet DIR]")?,
    );
    let supernet = match (args.next().as_deref(), args.next()) {
        (Some("--supernet"), Some(dir)) => Some(PathBuf::from(dir)),
        (None, _) => None,
        _ => return Err("usage: ranking PAIRS.csv [--supernet DIR]".into()),
    };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let found = pairs(&text, &file)?;
    if found.len() < 2 {
        return Err(format!(
            "{}: {} pairs, need 2 for a ranking",
            file.display(),
            found.len()
        )
        .into());
    }
    let a: Vec<f64> = found.iter().map(|p| p.inherited).collect();
    let b: Vec<f64> = found.iter().map(|p| p.stand_alone).collect();
    let tau = kiln_latency::kendall_tau(&a, &b).ok_or("Kendall's tau is undefined (all tied)")?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let points: Vec<(f64, f64)> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (100.0 * x, 100.0 * y))
        .collect();
    let caption = format!("{} genomes: Kendall's tau-b {tau:.3}", found.len());
    let svg = pairs_svg(
        &points,
        Axes {
            caption: &caption,
            x: "inherited validation top-1 % (host; 2-epoch supernet, BN recalibrated)",
            y: "stand-alone validation top-1 % (host; 10 epochs from scratch)",
        },
    )?;
    std::fs::write(dir.join("scatter.svg"), svg)?;
    let range = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        format!("{:.2}-{:.2}%", 100.0 * lo, 100.0 * hi)
    };
    let mut md = format!(
        "# Ranking: inherited vs stand-alone accuracy\n\n\
         {} of the 30 random genomes of the default space; validation top-1 on the bundled \
         data's 400 validation images (host). Kendall's tau-b between the two rankings: \
         **{tau:.3}** (issue 14's goal: >= 0.6).\n\n\
         Inherited: {} (from the supernet, batch norm recalibrated); stand-alone: {} \
         (trained from scratch for 10 epochs).{}\n\n\
         ![scatter](scatter.svg)\n\n| genome | inherited | stand-alone |\n|---|---|---|\n",
        found.len(),
        range(&a),
        range(&b),
        match &supernet {
            Some(d) => format!(
                " Supernet weights {}.",
                kiln_pipeline::supernet_cache::weights_id(d)?
            ),
            None => String::new(),
        }
    );
    let mut by_inherited: Vec<&Pair> = found.iter().collect();
    by_inherited.sort_by(|x, y| y.inherited.total_cmp(&x.inherited));
    for p in by_inherited {
        md += &format!(
            "| {} | {:.2}% | {:.2}% |\n",
            p.genome,
            100.0 * p.inherited,
            100.0 * p.stand_alone
        );
    }
    std::fs::write(dir.join("summary.md"), &md)?;
    println!(
        "{caption}; wrote {} and {}",
        dir.join("scatter.svg").display(),
        dir.join("summary.md").display()
    );
    Ok(())
}
