//! Issue 14's ranking benchmark, summarised: the pairs the judge bench wrote
//! (`cargo bench --profile dev --workspace --bench judge -- DIR --candidates 30 --stand-alone 10
//! --pairs FILE`, lines `done,index,genome,inherited,stand_alone`) become Kendall's tau-b
//! between the two rankings, a scatter and a markdown summary beside the file.
//!
//! `cargo run --profile dev -p kiln-pipeline --example ranking -- docs/ranking/pairs.csv
//! [--supernet DIR] [--compare OTHER.csv] [--out DIR]` writes `scatter.svg` and `summary.md`
//! in the file's folder (or `--out`'s: a committed summary stays as its flags made it);
//! with `--supernet` (one supernet's folder or a few-shot split's; given more than once, the
//! parts of a split made by hand, each trained by `cargo xtask supernet train --space` on a
//! part of the space) the summary names the supernet's weights by content, its epochs and
//! the data and split it was trained on (refused unless the pairs file's `data` line names
//! the same, and its pairs that name weights, these weights; the same weights twice are
//! refused). With `--compare`, a pairs file of the same genomes and
//! data, the summary also gives
//! Kendall's tau-b between the two files' rankings over the genomes both hold, column by
//! column: stand-alone against stand-alone trained with other seeds (the judge bench's
//! `--seed-base`; the ground truth's own noise, the most any evaluator can be expected to
//! reach against it) and inherited against another supernet's inherited (the supernet's own
//! stability), and for two stand-alone trainings the standard deviation of a genome's two
//! results and the inherited ranking against their mean. `--compare` may be given more than
//! once: with two or more, the summary also ranks the inherited column against the mean of
//! every stand-alone training (this file's and each compared file's that trained again), over
//! the genomes all of them hold. With `--space FILE` (the space the bench sampled,
//! `spaces/mobile.toml` for the default one) the summary also says what each ranking follows:
//! Kendall's tau-b of each column against the genomes' block count, head-conv width, SE block
//! count, parameters and MACs (at the input of the `--supernet`, or 1x28x28 with 10 classes,
//! the digits' and Fashion-MNIST's, without one), and with two or more `--compare` the mean
//! of the trainings' too; then each head-conv width's genome count and mean accuracies, and
//! the inherited ranking against the mean of trainings within each width.

use std::path::{Path, PathBuf};

use kiln_search::scatter::{Axes, pairs_svg};
use kiln_space::{Architecture, InputSpec, Space};

type Error = Box<dyn std::error::Error>;

use kiln_supernet::pairs::{self, Pair, PairsFile};

const USAGE: &str = "usage: ranking PAIRS.csv [--supernet DIR]... [--compare OTHER.csv]... \
     [--space SPACE.toml] [--out DIR]";

/// Prints an error in its own words (Display, not Debug) and exits 1.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let first = args.next().ok_or(USAGE)?;
    if first == "--help" || first == "-h" {
        println!("{USAGE}");
        return Ok(());
    }
    let file = PathBuf::from(first);
    let (mut supernets, mut compare, mut space, mut out) = (Vec::new(), Vec::new(), None, None);
    while let Some(flag) = args.next() {
        let value = args.next().map(PathBuf::from).ok_or(USAGE)?;
        match flag.as_str() {
            "--supernet" => supernets.push(value),
            "--compare" => compare.push(value),
            "--space" => space = Some(value),
            "--out" => out = Some(value),
            _ => return Err(USAGE.into()),
        }
    }
    let ours = PairsFile::read(&file)?;
    // each compared file read once, for its own sentences and the mean of trainings
    let compared = read_compared(&file, &ours, &compare)?;
    let found = ours.pairs.as_slice();
    // the axes' and summary's name for the images every accuracy was measured on
    let short = if ours.scored.is_some() {
        "held-out"
    } else {
        "validation"
    };
    let images = ours.scored_on();
    // the supernet, when named: its weights id, epochs, identity, whether a split
    let named = (!supernets.is_empty())
        .then(|| named_supernets(&supernets, &ours))
        .transpose()?;
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
    let dir = out
        .as_deref()
        .unwrap_or(file.parent().unwrap_or(Path::new(".")));
    std::fs::create_dir_all(dir)?;
    let points: Vec<(f64, f64)> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (100.0 * x, 100.0 * y))
        .collect();
    let caption = format!("{} genomes: Kendall's tau-b {tau:.3}", found.len());
    let x_axis = match &named {
        Some(n) => {
            let epochs = &n.epochs;
            let what = if n.split {
                "few-shot split"
            } else {
                "supernet"
            };
            format!("inherited {short} top-1 % (host; {epochs}-epoch {what}, BN recalibrated)")
        }
        None => format!("inherited {short} top-1 % (host; BN recalibrated)"),
    };
    let y_axis = format!("stand-alone {short} top-1 % (host; 10 epochs from scratch)");
    let svg = pairs_svg(
        &points,
        Axes {
            caption: &caption,
            x: &x_axis,
            y: &y_axis,
        },
    )?;
    std::fs::write(dir.join("scatter.svg"), svg)?;
    let range = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        format!("{:.2}-{:.2}%", 100.0 * lo, 100.0 * hi)
    };
    let mut sentences = String::new();
    for (other, theirs) in &compared {
        sentences += &compare_sentences(found, other, theirs)?;
    }
    let mean = if compared.len() >= 2 {
        let (shared, trainings) = mean_of_trainings(found, &compared)?;
        sentences += &mean_of_trainings_sentence(&shared, trainings);
        Some((shared, trainings))
    } else {
        None
    };
    if let Some(path) = &space {
        let input = match &named {
            Some(n) => n.identity.input,
            None => InputSpec {
                channels: 1,
                height: 28,
                width: 28,
                classes: 10,
            },
        };
        let space = Space::load(path)?;
        // its genome error says which genome; the file it sits in is this one
        sentences += &feature_sentences(found, mean.as_ref(), &space, input)
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let mut md = format!(
        "# Ranking: inherited vs stand-alone accuracy\n\n\
         {} of the 30 random genomes of the default space; top-1 on {images} (host). \
         Kendall's tau-b between the two rankings: **{tau:.3}** (issue 14's goal: >= 0.6).\n\n\
         Inherited: {} (from the supernet, batch norm recalibrated); stand-alone: {} \
         (trained from scratch for 10 epochs).{}{}\n\n\
         ![scatter](scatter.svg)\n\n| genome | inherited | stand-alone |\n|---|---|---|\n",
        found.len(),
        range(&a),
        range(&b),
        match &named {
            Some(n) if n.split => format!(
                " A few-shot split, each part trained {} epochs, weights {}.",
                n.epochs, n.weights
            ),
            Some(n) => format!(
                " Supernet trained {} epochs, weights {}.",
                n.epochs, n.weights
            ),
            None => String::new(),
        },
        sentences
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
    if !sentences.is_empty() {
        println!("{}", sentences.trim());
    }
    println!(
        "{caption}; wrote {} and {}",
        dir.join("scatter.svg").display(),
        dir.join("summary.md").display()
    );
    Ok(())
}

/// The supernet `--supernet DIR` names (or the parts of a hand-made split, the flag given
/// once a part).
struct Named {
    /// The content ids of its weights ([`kiln_supernet::weights_id`]), a split's parts' in
    /// order, comma-separated.
    weights: String,
    /// Epochs it (each part of a split) was trained: one figure, or each part's in order
    /// when they differ (`4/4/5`).
    epochs: String,
    /// What the first part was trained for and on (its input sizes the summary's
    /// parameters and MACs; every part's data is checked against the pairs file's).
    identity: kiln_supernet::SupernetIdentity,
    /// More than one part (a few-shot split's folder, or more than one folder).
    split: bool,
}

/// The supernets in `dirs` (each one supernet or a few-shot split's folder), checked
/// against the data the pairs file `ours` names and the weights each of its pairs names
/// (lines that name none are not checked).
///
/// Errors: the supernets' files; a supernet trained on other data; the same weights named
/// twice; weights other than the file's.
fn named_supernets(dirs: &[PathBuf], ours: &PairsFile) -> Result<Named, Error> {
    // the folders as given, for errors
    let named = || {
        let named: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        named.join(" and ")
    };
    let mut parts = Vec::new();
    for dir in dirs {
        parts.extend(kiln_supernet::split::supernet_dirs(dir)?);
    }
    let (mut ids, mut epochs, mut identity) = (Vec::new(), Vec::new(), None);
    for part in &parts {
        let id = kiln_supernet::identity(part)?;
        if id.data != ours.data {
            let (a, b, data) = (ours.path.display(), part.display(), &ours.data);
            let msg = format!(
                "{a} holds pairs on {data}, but {b} was trained on {}",
                id.data
            );
            return Err(msg.into());
        }
        let weights = kiln_supernet::weights_id(part)?;
        if ids.contains(&weights) {
            let msg = format!("{} holds weights {weights} named twice", part.display());
            return Err(msg.into());
        }
        ids.push(weights);
        epochs.push(kiln_supernet::epochs_done(part)?);
        identity.get_or_insert(id);
    }
    // a pair names the supernet (a split's part) that judged it
    let other = ours.pairs.iter().find_map(|p| {
        let w = p.weights.as_deref()?;
        (!ids.iter().any(|id| id == w)).then_some((p.line, w))
    });
    let weights = ids.join(",");
    if let Some((line, theirs)) = other {
        let verb = if dirs.len() > 1 { "hold" } else { "holds" };
        return Err(format!(
            "{}:{line}: a pair inherited from weights {theirs}, but {} {verb} weights \
             {weights}: give the supernet that judged them",
            ours.path.display(),
            named()
        )
        .into());
    }
    if epochs.windows(2).all(|w| w[0] == w[1]) {
        epochs.truncate(1);
    }
    let epochs: Vec<String> = epochs.iter().map(usize::to_string).collect();
    let identity =
        identity.ok_or_else(|| format!("{}: a few-shot split without parts", named()))?;
    Ok(Named {
        weights,
        epochs: epochs.join("/"),
        identity,
        split: parts.len() > 1,
    })
}

/// Each `--compare` file's pairs, read once.
///
/// Errors: a file that does not read, or holds accuracies of other data or other images
/// than `ours` (the pairs file at `file`).
fn read_compared(
    file: &Path,
    ours: &PairsFile,
    compare: &[PathBuf],
) -> Result<Vec<(PathBuf, Vec<Pair>)>, Error> {
    compare
        .iter()
        .map(|other| {
            let theirs = PairsFile::read(other)?;
            if (&theirs.data, &theirs.scored) != (&ours.data, &ours.scored) {
                let (a, b) = (file.display(), other.display());
                let (x, y) = (ours.scored_on(), theirs.scored_on());
                let msg = format!("{a} holds accuracies on {x}, {b} on {y}: not comparable");
                return Err(msg.into());
            }
            Ok((other.clone(), theirs.pairs))
        })
        .collect()
}

/// A column of a pairs file: its name, how to read it, what a second measurement of it is.
type Column = (&'static str, fn(&Pair) -> f64, &'static str);

/// The summary's sentences on noise: for the genomes `found` shares with the pairs file
/// `other`, Kendall's tau-b between the two files' stand-alone accuracies (trained again with
/// other seeds: the ground truth's own noise, the most an evaluator can be expected to reach)
/// and between their inherited accuracies (another supernet: how stable the supernet's
/// ranking is). A column equal in both files (the same measurement) is left out.
fn compare_sentences(found: &[Pair], other: &Path, theirs: &[Pair]) -> Result<String, Error> {
    let mut shared: Vec<(&Pair, &Pair)> = Vec::new();
    for q in theirs {
        let Some(p) = found.iter().find(|p| p.index == q.index) else {
            continue;
        };
        if p.genome != q.genome {
            return Err(format!(
                "{}: genome {} at index {}, but {} here (pairs of another space)",
                other.display(),
                q.genome,
                q.index,
                p.genome
            )
            .into());
        }
        shared.push((p, q));
    }
    let mut out = String::new();
    let columns: [Column; 2] = [
        (
            "stand-alone",
            |p| p.stand_alone,
            "the same genomes trained from scratch again with other seeds",
        ),
        (
            "inherited",
            |p| p.inherited,
            "the same genomes judged on the other file's supernet",
        ),
    ];
    for (name, column, what) in columns {
        let (a, b): (Vec<f64>, Vec<f64>) =
            shared.iter().map(|(p, q)| (column(p), column(q))).unzip();
        if a == b {
            continue;
        }
        let tau = kiln_latency::kendall_tau(&a, &b).ok_or_else(|| {
            format!(
                "{}: fewer than 2 shared genomes, or all tied",
                other.display()
            )
        })?;
        let moved = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        out += &format!(
            "\n\nAgainst `{}` ({what}), the {name} rankings of the {} shared genomes agree \
             with Kendall's tau-b **{tau:.3}**; the largest change of one genome is {:.2} points.",
            other.display(),
            a.len(),
            100.0 * moved
        );
        if name == "stand-alone" {
            out += &two_trainings_sentence(&shared, &a, &b);
        }
    }
    Ok(out)
}

/// Every stand-alone training at once: for each of `found`'s genomes that every training
/// holds, its inherited accuracy and the mean of its stand-alone accuracies (`found`'s
/// column and every `others` file's that differs from it, i.e. trained again), with the
/// number of trainings. Genome ids are checked against `found` by [`compare_sentences`]
/// first.
///
/// Errors: fewer than 2 shared genomes.
fn mean_of_trainings(
    found: &[Pair],
    others: &[(PathBuf, Vec<Pair>)],
) -> Result<(Vec<MeanPair>, usize), Error> {
    let mut columns: Vec<&[Pair]> = Vec::new();
    for (_, theirs) in others {
        let differs = theirs.iter().any(|q| {
            found
                .iter()
                .any(|p| p.index == q.index && p.stand_alone != q.stand_alone)
        });
        if differs {
            columns.push(theirs);
        }
    }
    let mut shared = Vec::new();
    for p in found {
        let rest: Option<Vec<f64>> = columns
            .iter()
            .map(|c| c.iter().find(|q| q.index == p.index).map(|q| q.stand_alone))
            .collect();
        if let Some(mut all) = rest {
            all.push(p.stand_alone);
            shared.push(MeanPair {
                index: p.index,
                inherited: p.inherited,
                mean: pairs::mean_accuracy(&all),
            });
        }
    }
    if shared.len() < 2 {
        let names: Vec<String> = others
            .iter()
            .map(|(o, _)| o.display().to_string())
            .collect();
        return Err(format!(
            "{}: fewer than 2 genomes shared with this pairs file, no mean of trainings",
            names.join(", ")
        )
        .into());
    }
    Ok((shared, 1 + columns.len()))
}

/// A genome's inherited accuracy and the mean of its stand-alone trainings.
struct MeanPair {
    index: usize,
    inherited: f64,
    mean: f64,
}

/// The summary's sentence on all stand-alone trainings at once: Kendall's tau-b of the
/// inherited accuracies against the mean of the `trainings` ([`mean_of_trainings`]).
fn mean_of_trainings_sentence(shared: &[MeanPair], trainings: usize) -> String {
    let inherited: Vec<f64> = shared.iter().map(|m| m.inherited).collect();
    let mean: Vec<f64> = shared.iter().map(|m| m.mean).collect();
    let tau = kiln_latency::kendall_tau(&inherited, &mean)
        .map_or("undefined (all tied)".to_string(), |t| format!("{t:.3}"));
    format!(
        "\n\nAgainst the mean of all {trainings} stand-alone trainings (this file's and the \
         compared files' that trained again), over the {} genomes all of them hold, this \
         file's inherited ranking scores Kendall's tau-b **{tau}**.",
        shared.len()
    )
}

/// What two stand-alone trainings `a` and `b` of the `shared` genomes say together: the
/// standard deviation of a genome's difference between them (points; sample, n - 1) and
/// Kendall's tau-b of this file's inherited accuracies against their mean, a ground truth
/// with half of one training's seed variance.
fn two_trainings_sentence(shared: &[(&Pair, &Pair)], a: &[f64], b: &[f64]) -> String {
    let n = a.len() as f64;
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| 100.0 * (x - y)).collect();
    let mean_diff = diffs.iter().sum::<f64>() / n;
    let var = diffs.iter().map(|d| (d - mean_diff).powi(2)).sum::<f64>() / (n - 1.0);
    let mean: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| pairs::mean_accuracy(&[*x, *y]))
        .collect();
    let inherited: Vec<f64> = shared.iter().map(|(p, _)| p.inherited).collect();
    let against_mean = kiln_latency::kendall_tau(&inherited, &mean)
        .map_or("undefined (all tied)".to_string(), |t| format!("{t:.3}"));
    format!(
        " A genome's two results differ with a standard deviation of {:.2} points; this \
         file's inherited ranking against the mean of the two trainings: Kendall's tau-b \
         {against_mean}.",
        var.sqrt()
    )
}

/// The genome features the summary ranks each column against, in [`Row::features`]' order.
const FEATURES: [&str; 5] = [
    "blocks",
    "head-conv width",
    "SE blocks",
    "parameters",
    "MACs",
];
/// Where the head-conv width sits in [`FEATURES`].
const HEAD_WIDTH: usize = 1;

/// One genome of the summary: its accuracies (top-1 fractions), its [`FEATURES`], and the
/// mean of its stand-alone trainings where several are given and it is in all of them.
struct Row {
    inherited: f64,
    stand_alone: f64,
    features: [f64; 5],
    mean: Option<f64>,
}

/// A column of [`Row`]s, `None` where a row lacks it.
type Of<'f> = dyn Fn(&Row) -> Option<f64> + 'f;

/// Kendall's tau-b of column `x` against column `y` over the `rows` that have both, to two
/// decimals, or `n/a` when undefined (fewer than two rows, or one column all tied).
fn tau_over<'a>(rows: impl Iterator<Item = &'a Row>, x: &Of<'_>, y: &Of<'_>) -> String {
    let (a, b): (Vec<f64>, Vec<f64>) = rows.filter_map(|r| Some((x(r)?, y(r)?))).unzip();
    kiln_latency::kendall_tau(&a, &b).map_or("n/a".into(), |t| format!("{t:.2}"))
}

/// The summary's sentence on what each ranking follows: Kendall's tau-b of the inherited and
/// the stand-alone column against each genome's [`FEATURES`] (parameters and MACs at
/// `input`). The genomes are the judge bench's ([`kiln_supernet::ranking_genomes`]), matched
/// to the pairs by index and id. Given the `mean` of several trainings
/// ([`mean_of_trainings`]), that mean's too (over the genomes it holds): one training's tau
/// against a feature moves by chance far more than the mean's.
///
/// Errors: a pair whose genome is not the bench's sample at its index (another space).
fn feature_sentences(
    found: &[Pair],
    mean: Option<&(Vec<MeanPair>, usize)>,
    space: &Space,
    input: InputSpec,
) -> Result<String, Error> {
    let count = found.iter().map(|p| p.index + 1).max().unwrap_or(0);
    let sampled = kiln_supernet::ranking_genomes(space, count);
    let mut rows = Vec::new();
    for p in found {
        let g = &sampled[p.index];
        if g.id() != p.genome {
            let msg = format!(
                "genome {} at index {} is not the bench's sample of space `{}` there ({})",
                p.genome,
                p.index,
                space.name,
                g.id()
            );
            return Err(msg.into());
        }
        let totals = Architecture::new(space, g, input)?.totals();
        let blocks = g.stages.iter().flat_map(|s| &s.blocks);
        let se = blocks.clone().filter(|b| b.se).count();
        rows.push(Row {
            inherited: p.inherited,
            stand_alone: p.stand_alone,
            features: [
                blocks.count() as f64,
                g.head_width as f64,
                se as f64,
                totals.params as f64,
                totals.macs as f64,
            ],
            mean: mean
                .and_then(|(m, _)| m.iter().find(|m| m.index == p.index))
                .map(|m| m.mean),
        });
    }
    let against = |column: &Of<'_>| {
        (0..FEATURES.len())
            .map(|f| {
                let tau = tau_over(rows.iter(), column, &|r| Some(r.features[f]));
                format!("{} {tau}", FEATURES[f])
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let of_mean = match mean {
        Some((m, trainings)) => format!(
            "; the mean of the {trainings} stand-alone trainings ({} genomes) against {}",
            m.len(),
            against(&|r| r.mean)
        ),
        None => String::new(),
    };
    Ok(format!(
        "\n\nWhat each ranking follows (Kendall's tau-b over these {} genomes; parameters and \
         MACs at {}x{}x{}, {} classes): inherited against {}; stand-alone against {}{of_mean}.\
         {}",
        rows.len(),
        input.channels,
        input.height,
        input.width,
        input.classes,
        against(&|r| Some(r.inherited)),
        against(&|r| Some(r.stand_alone)),
        by_head_width(&rows)
    ))
}

/// The summary's sentence on the head conv, the choice the trainings from scratch follow
/// most: for each head-conv width among `rows`, how many genomes have it and their mean
/// inherited, stand-alone and (where known) mean-of-trainings top-1, in percent, with
/// Kendall's tau-b of inherited against the mean of trainings within the group (what a
/// supernet ranks right besides the head conv).
fn by_head_width(rows: &[Row]) -> String {
    let mut widths: Vec<f64> = rows.iter().map(|r| r.features[HEAD_WIDTH]).collect();
    widths.sort_by(f64::total_cmp);
    widths.dedup();
    let with_mean = rows.iter().any(|r| r.mean.is_some());
    let groups: Vec<String> = widths
        .iter()
        .map(|&w| {
            let group: Vec<&Row> = rows
                .iter()
                .filter(|r| r.features[HEAD_WIDTH] == w)
                .collect();
            // a column's mean over the group's genomes that have it, in percent
            let mean = |column: &Of<'_>| {
                let known: Vec<f64> = group.iter().filter_map(|r| column(r)).collect();
                if known.is_empty() {
                    return "n/a".to_string();
                }
                let m = 100.0 * known.iter().sum::<f64>() / known.len() as f64;
                format!("{m:.2}%")
            };
            let of_mean = if with_mean {
                let within = tau_over(group.iter().copied(), &|r| Some(r.inherited), &|r| r.mean);
                format!(", {} (tau-b {within})", mean(&|r| r.mean))
            } else {
                String::new()
            };
            let inherited = mean(&|r| Some(r.inherited));
            let stand_alone = mean(&|r| Some(r.stand_alone));
            format!("{w} ({}): {inherited}, {stand_alone}{of_mean}", group.len())
        })
        .collect();
    let of_mean = if with_mean { ", mean of trainings" } else { "" };
    format!(
        " By head-conv width (genomes: mean inherited, stand-alone{of_mean} top-1): {}.",
        groups.join("; ")
    )
}
