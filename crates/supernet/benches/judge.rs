//! Judging throughput: how many sub-networks a weight-sharing search judges per second
//! (batch norm recalibrated, then top-1 on the validation split, or with `--held-out` on
//! held-out images), on the bundled data or IDX files.
//!
//! ```sh
//! cargo bench --profile dev --workspace --bench judge -- SUPERNET_DIR [--candidates 200] [--workers 2] \
//!     [--engine kernels|burn] [--idx DIR] [--validation SHARE]
//! ```
//!
//! `--idx DIR` and `--validation SHARE` (default 0.1) name the data as `--idx` and
//! `--validation` do for `cargo xtask`; they must be the data the supernet was trained on
//! (its content, checked against the supernet's identity and refused otherwise; a supernet
//! that recorded none is matched by `DIR` spelled as `supernet train` was given it).
//! Relative paths are taken from the workspace root (cargo runs a bench in its package's
//! folder).
//!
//! `SUPERNET_DIR` is a folder written by `cargo xtask supernet train`. Genomes are drawn
//! from the supernet's space (seed 0). `--engine kernels` (the search's) judges on
//! kiln-runtime's kernels, all workers sharing one copy of the weights; `--engine burn`
//! on burn's forward pass, each worker with its own copy; each worker runs on one thread.
//! Prints wall time, candidates per second and the median seconds of the two phases (`host`, this machine). With `--against IMAGES`, each
//! candidate is also judged with that many recalibration images, and the agreement of
//! the two rankings is printed (Kendall's tau-b, largest difference in points). With
//! `--stand-alone EPOCHS`, each candidate is also trained from scratch for that many
//! epochs (kiln-train's defaults otherwise) and the ranking by inherited accuracy is
//! compared with the ranking by stand-alone accuracy (Kendall's tau-b), the pairs
//! printed as CSV lines (`pair,genome,inherited,stand_alone`) for a scatter plot; each
//! is also written to stderr as it finishes (`done,index,genome,inherited,stand_alone`).
//! With `--pairs FILE` those lines are also appended to FILE as they finish (a new file
//! first gets a `data,IDENTITY` line: the data and split they were measured on), and a run
//! given the same FILE again skips the genomes it holds and reports over all of them:
//! the 30 x 10-epoch ranking benchmark takes hours and may span several sittings. A file of
//! other data is refused (one without a `data` line holds the bundled digits' pairs).
//! With `--stand-alone-from FILE` (a `--pairs` file of the same space and data) the stand-alone
//! accuracies are read from FILE instead of trained again: training from scratch does not
//! depend on the supernet, so another supernet's ranking is measured in a minute.
//! `--seed-base B` trains candidate i with seed B + i (default 0): a second sitting with
//! another base measures how well one stand-alone training ranks another (the noise
//! ceiling of the ground truth; the `ranking` example's `--compare`).
//! `--held-out DIR` (an IDX folder) scores both accuracies on DIR's test images instead of
//! the validation split (on 1,000 images chance alone moves a model by about a point;
//! docs/ranking/README.md): training, recalibration and the supernet check still read
//! `--idx`, and DIR may share none of its training images (checked byte for byte). A pairs
//! file says so in a `scored,IMAGES` line (folder, image count, content id) and is refused by
//! a run that scores elsewhere. Each training's validation top-1 also goes to stderr
//! (`validation,genome,top1`); `--against` (which scores the validation split) is refused.
//! `--space FILE` draws the candidates from FILE's space instead of the supernet's and
//! judges only those the supernet holds: a few-shot split (Zhao et al., 2021: one supernet
//! per value of a choice, each trained on a space with that value alone) is ranked by
//! running the bench once per supernet with the same `--space` and `--pairs` file, each run
//! adding its candidates.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use kiln_data::{Dataset, Source, Split, SplitOptions};
use kiln_space::Genome;
use kiln_supernet::{JudgeSettings, SupernetWeights, accuracy, recalibrate};

#[path = "judge/pairs.rs"]
mod pairs;
use kiln_supernet::pairs::{Pair, VALIDATION};
use pairs::{measured, open_pairs, read_pairs};

fn main() {
    let Some(args) = parse_args() else {
        eprintln!(
            "usage: judge SUPERNET_DIR [--candidates N] [--workers W] [--recalibration IMAGES] \
             [--idx DIR] [--validation SHARE] [--held-out DIR] [--stand-alone EPOCHS \
             [--seed-base B] | --stand-alone-from FILE] [--pairs FILE] [--against IMAGES] \
             [--engine kernels|burn] [--space FILE]"
        );
        return;
    };
    let Args {
        dir,
        candidates,
        workers,
        recal,
        against,
        alone,
        burn,
        pairs_file,
        alone_from,
        seed_base,
        idx,
        validation,
        held_out_dir,
        space_file,
    } = args;
    if let Ok(Some(m)) = kiln_supernet::split::read_split(&dir) {
        fail(&format!(
            "{} is a few-shot split by `{}`: run the bench once per part ({}/{}, ...) with \
             --space FILE of the whole space and the same --pairs file",
            dir.display(),
            m.by,
            dir.display(),
            m.parts.first().map_or("", String::as_str)
        ));
    }
    let identity = kiln_supernet::identity(&dir).unwrap_or_else(|e| fail(&e.to_string()));
    let split = SplitOptions {
        validation_fraction: validation,
        ..SplitOptions::default()
    };
    let (data, data_identity) = supernet_data(&dir, &identity, idx.as_deref(), &split);
    let (data, scored_line) = with_held_out(data, held_out_dir.as_deref(), &split);
    let held_out = scored_line.is_some();
    let scored = if held_out {
        &data.test
    } else {
        &data.validation
    };
    let scored_on = scored_line.as_deref().unwrap_or(VALIDATION);
    let device = kiln_train::device();
    let (net, _, epochs, _) =
        kiln_supernet::load(&dir, &device).unwrap_or_else(|e| fail(&e.to_string()));
    let weights = SupernetWeights::of(&net).expect("supernet weights");
    let settings = JudgeSettings {
        recalibration_images: recal.unwrap_or(identity.config.recalibration_images),
        ..JudgeSettings::default()
    };
    let (genomes, held) = ranking_candidates(&identity, space_file.as_deref(), candidates);
    let earlier = pairs_file
        .as_deref()
        .map(|p| read_pairs(p, &genomes, &data_identity, scored_on))
        .unwrap_or_default();
    // where each candidate's stand-alone accuracy comes from, when the ranking is measured
    let truth = match (&alone_from, alone) {
        (Some(p), _) => Some(Truth::Measured(
            measured(p, &genomes, &data_identity, scored_on),
            p.clone(),
        )),
        (None, Some(epochs)) => Some(Truth::Train {
            epochs,
            seed_base: seed_base.unwrap_or(0),
        }),
        (None, None) => None,
    };
    let todo: Vec<usize> = (0..candidates)
        .filter(|i| held[*i] && !earlier.iter().any(|p| p.0 == *i))
        .collect();
    let log = pairs_file
        .as_ref()
        .map(|p| open_pairs(p, &data_identity, scored_line.as_deref()));
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let other = against.map(|n| JudgeSettings {
        recalibration_images: n,
        ..settings.clone()
    });
    let bench = Bench {
        weights: &weights,
        data: &data,
        scored,
        held_out,
        settings: &settings,
        other: other.as_ref(),
        truth: truth.as_ref(),
        log: log.as_ref(),
        burn,
    };
    let phases: Vec<Judged> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let net = net.clone();
                let (bench, genomes, next, todo) = (&bench, &genomes, &next, &todo);
                s.spawn(move || {
                    kiln_train::with_threads(1, || {
                        let mut out = Vec::new();
                        while let Some(&i) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                            out.push(bench.judge(&net, &genomes[i], i));
                        }
                        out
                    })
                    .expect("thread pool")
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "supernet {} ({} epochs), {} recalibration images, scored on {}, on {}",
        dir.display(),
        epochs,
        settings.recalibration_images,
        // a held-out name gives its image count already
        match held_out {
            true => scored_on.to_owned(),
            false => format!("{scored_on} ({} images)", scored.len()),
        },
        if burn {
            "burn"
        } else {
            "kiln-runtime's kernels"
        }
    );
    println!(
        "{} candidates, {workers} workers: {wall:.1} s wall, {:.2} candidates/s (host); \
         median recalibration {:.3} s, scoring {:.3} s",
        todo.len(),
        todo.len() as f64 / wall,
        median(phases.iter().map(|p| p.recalibration).collect()),
        median(phases.iter().map(|p| p.scoring).collect()),
    );
    if let Some(n) = against {
        print_against(n, &phases);
    }
    if let Some(truth) = &truth {
        print_ranking(truth, &phases, earlier, &genomes, scored_on);
    }
}

/// What every worker reads: the supernet's weights and data, the images accuracies are
/// scored on, the judge settings, where stand-alone accuracies come from, the pairs file.
struct Bench<'a> {
    weights: &'a SupernetWeights,
    /// With `held_out`, its test split holds the held-out images.
    data: &'a Dataset,
    /// What inherited top-1 is scored on: `data`'s validation or (held-out) test split.
    scored: &'a Split,
    held_out: bool,
    settings: &'a JudgeSettings,
    /// The `--against` settings.
    other: Option<&'a JudgeSettings>,
    truth: Option<&'a Truth>,
    log: Option<&'a Mutex<(PathBuf, std::fs::File)>>,
    /// Judge on burn's forward pass (`net`) instead of kiln-runtime's kernels (`weights`).
    burn: bool,
}

/// One candidate's figures (host).
struct Judged {
    /// Seconds recalibrating batch norm.
    recalibration: f64,
    /// Seconds scoring top-1.
    scoring: f64,
    /// Inherited top-1 (fraction).
    top1: f64,
    /// Inherited top-1 under the `--against` settings.
    against: Option<f64>,
    /// Stand-alone top-1, when the ranking is measured.
    stand_alone: Option<f64>,
    /// The candidate's index among the ranking genomes.
    index: usize,
}

impl Bench<'_> {
    /// Judges candidate `i` (genome `g`) on `net` (a worker's copy) or the shared weights,
    /// and with a ground truth, trains or looks up its stand-alone accuracy and writes the
    /// pair to stderr and the pairs file as it comes: hours of training are not lost to a
    /// kill.
    fn judge(&self, net: &kiln_supernet::SuperNet, g: &Genome, i: usize) -> Judged {
        let (data, settings) = (self.data, self.settings);
        let t0 = Instant::now();
        let mut bn = if self.burn {
            recalibrate(net, g, data, settings)
        } else {
            self.weights.recalibrate(g, data, settings)
        }
        .expect("recalibrate");
        let t1 = Instant::now();
        let (split, b) = (self.scored, settings.batch);
        let (top1, _) = if self.burn {
            accuracy(net, g, &mut bn, split, data, b)
        } else {
            self.weights.accuracy(g, &mut bn, split, data, b)
        }
        .expect("validate");
        let scoring = t1.elapsed().as_secs_f64();
        let against = self.other.map(|o| {
            let j = if self.burn {
                kiln_supernet::judge(net, g, data, o)
            } else {
                self.weights.judge(g, data, o)
            };
            j.expect("judge").top1
        });
        let stand_alone = self.truth.map(|truth| {
            let acc = match truth {
                Truth::Measured(known, _) => known[&i],
                Truth::Train { epochs, seed_base } => {
                    let seed = seed_base + i as u64;
                    train_alone(net, g, seed, *epochs, data, self.held_out)
                }
            };
            let pair = Pair {
                index: i,
                genome: g.id(),
                inherited: top1,
                stand_alone: acc,
                line: 0,
            };
            let line = pair.to_line();
            eprintln!("{line}");
            if let Some(f) = self.log {
                let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                let (path, file) = &mut *f;
                // an unrecorded pair would be trained again next sitting: stop and say so
                let failed = |e| fail(&format!("{}: {e}", path.display()));
                // one write, so a kill cannot leave half a line for the next append to extend
                file.write_all(format!("{line}\n").as_bytes())
                    .unwrap_or_else(failed);
            }
            acc
        });
        Judged {
            recalibration: (t1 - t0).as_secs_f64(),
            scoring,
            top1,
            against,
            stand_alone,
            index: i,
        }
    }
}

/// Prints how the ranking under the `--against` recalibration (`n` images) agrees with the
/// default one: Kendall's tau-b and the largest difference in points.
fn print_against(n: usize, phases: &[Judged]) {
    let a: Vec<f64> = phases.iter().map(|p| p.top1).collect();
    let b: Vec<f64> = phases.iter().filter_map(|p| p.against).collect();
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    println!(
        "against {n} recalibration images: Kendall tau-b {:.3}, largest difference {:.2} points",
        kiln_latency::kendall_tau(&a, &b).unwrap_or(f64::NAN),
        worst * 100.0
    );
}

/// Prints every pair (this run's and `earlier` sittings', `pair,genome,inherited,stand_alone`)
/// and Kendall's tau-b between the inherited and stand-alone rankings.
fn print_ranking(
    truth: &Truth,
    phases: &[Judged],
    earlier: Vec<(usize, f64, f64)>,
    genomes: &[Genome],
    scored_on: &str,
) {
    let mut pairs: Vec<(usize, f64, f64)> = phases
        .iter()
        .filter_map(|p| Some((p.index, p.top1, p.stand_alone?)))
        .chain(earlier)
        .collect();
    pairs.sort_by_key(|p| p.0);
    for (i, inherited, stand_alone) in &pairs {
        println!("pair,{},{inherited:.4},{stand_alone:.4}", genomes[*i].id());
    }
    let a: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let b: Vec<f64> = pairs.iter().map(|p| p.2).collect();
    println!(
        "inherited vs stand-alone ({}, top-1 on {scored_on}, {} genomes): Kendall tau-b {:.3}",
        match truth {
            Truth::Measured(_, p) => format!("as in {}", p.display()),
            Truth::Train { epochs, .. } => format!("{epochs} epochs from scratch"),
        },
        pairs.len(),
        kiln_latency::kendall_tau(&a, &b).unwrap_or(f64::NAN)
    );
}

/// The command line, as the module documentation gives it.
struct Args {
    dir: PathBuf,
    candidates: usize,
    workers: usize,
    recal: Option<usize>,
    against: Option<usize>,
    alone: Option<usize>,
    burn: bool,
    pairs_file: Option<PathBuf>,
    alone_from: Option<PathBuf>,
    seed_base: Option<u64>,
    idx: Option<String>,
    validation: f64,
    held_out_dir: Option<String>,
    space_file: Option<PathBuf>,
}

/// Reads the command line; `None` without a `SUPERNET_DIR`. Exits with an error naming
/// the flag when a value is missing or malformed.
fn parse_args() -> Option<Args> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut dir = None;
    let mut a = Args {
        dir: PathBuf::new(),
        candidates: 200,
        workers: 2,
        recal: None,
        against: None,
        alone: None,
        burn: false,
        pairs_file: None,
        alone_from: None,
        seed_base: None,
        idx: None,
        validation: 0.1,
        held_out_dir: None,
        space_file: None,
    };
    while let Some(flag) = args.next() {
        let mut value = |what: &str| {
            args.next()
                .unwrap_or_else(|| fail(&format!("{flag} takes {what}")))
        };
        let mut num = |what: &str| -> usize {
            let v = value(what);
            v.parse()
                .unwrap_or_else(|_| fail(&format!("{flag} takes {what}, not {v:?}")))
        };
        match flag.as_str() {
            "--candidates" => a.candidates = num("a number"),
            "--workers" => a.workers = num("a number").max(1),
            "--recalibration" => a.recal = Some(num("a number")),
            "--against" => a.against = Some(num("a number")),
            "--stand-alone" => a.alone = Some(num("a number")),
            "--seed-base" => a.seed_base = Some(num("a number") as u64),
            "--pairs" => a.pairs_file = Some(from_root(&value("a file"))),
            "--stand-alone-from" => a.alone_from = Some(from_root(&value("a file"))),
            "--idx" => a.idx = Some(value("a directory")),
            "--held-out" => a.held_out_dir = Some(value("a directory")),
            "--space" => a.space_file = Some(from_root(&value("a space file"))),
            "--validation" => {
                a.validation = Some(value("a share between 0 and 1"))
                    .and_then(|v| v.parse().ok())
                    .filter(|v: &f64| *v > 0.0 && *v < 1.0)
                    .unwrap_or_else(|| fail("--validation takes a share between 0 and 1"))
            }
            "--engine" => match value("kernels or burn").as_str() {
                "burn" => a.burn = true,
                "kernels" => a.burn = false,
                other => fail(&format!("--engine takes kernels or burn, not {other:?}")),
            },
            _ => dir = Some(from_root(&flag)),
        }
    }
    if a.against.is_some() && a.held_out_dir.is_some() {
        fail("--against judges a second time on the validation split: not with --held-out");
    }
    if a.seed_base.is_some() && (a.alone.is_none() || a.alone_from.is_some()) {
        fail(
            "--seed-base seeds stand-alone training: give it with --stand-alone EPOCHS \
             (with --stand-alone-from nothing is trained)",
        );
    }
    a.dir = dir?;
    Some(a)
}

/// The ranking benchmark's `candidates` genomes, drawn from `space_file`'s space (`--space`)
/// or else the supernet's, and whether the supernet holds each (all of them without
/// `--space`; with it, one supernet of a few-shot split holds its share).
///
/// Exits with an error when `space_file` does not load, when the supernet holds none of
/// them (naming the first reason), or when a genome it holds would be another network in
/// the supernet's space than in `space_file`'s (fixed settings such as strides differ).
fn ranking_candidates(
    identity: &kiln_supernet::SupernetIdentity,
    space_file: Option<&std::path::Path>,
    candidates: usize,
) -> (Vec<Genome>, Vec<bool>) {
    let ours = &identity.space;
    let Some(file) = space_file else {
        return (
            kiln_supernet::ranking_genomes(ours, candidates),
            vec![true; candidates],
        );
    };
    let space = kiln_space::Space::load(file).unwrap_or_else(|e| fail(&e.to_string()));
    let genomes = kiln_supernet::ranking_genomes(&space, candidates);
    let mut first_reason = None;
    let mut held = Vec::new();
    for g in &genomes {
        match g.validate(ours, "the supernet's space") {
            Ok(()) => {
                let arch = |s| kiln_space::Architecture::new(s, g, identity.input).ok();
                if arch(ours) != arch(&space) {
                    fail(&format!(
                        "{}: genome {} is another network in the supernet's space than in \
                         this one: the two spaces differ beyond their choices",
                        file.display(),
                        g.id()
                    ));
                }
                held.push(true);
            }
            Err(e) => {
                first_reason.get_or_insert(e.to_string());
                held.push(false);
            }
        }
    }
    let outside = held.iter().filter(|h| !**h).count();
    if outside == candidates {
        let why = first_reason.unwrap_or_default();
        fail(&format!(
            "{}: the supernet holds none of its {candidates} candidates (the first: {why})",
            file.display()
        ));
    }
    if outside > 0 {
        println!(
            "{outside} of the {candidates} candidates of {} are not sub-networks of this \
             supernet: left to another supernet of the split",
            file.display()
        );
    }
    (genomes, held)
}

/// Where the stand-alone accuracies of a ranking run come from.
enum Truth {
    /// Trained here from scratch: candidate i with seed `seed_base + i`.
    Train { epochs: usize, seed_base: u64 },
    /// Read from an earlier `--pairs` file (the file): candidate index -> top-1 on the images
    /// the run scores on (the file's `scored` line matches them).
    Measured(HashMap<usize, f64>, PathBuf),
}

/// Top-1 of genome `g` trained from scratch with `seed` on `data`'s training images: on
/// the validation split, or with `held_out` on the test split (which then holds the
/// held-out images; training reports its test top-1 once, at the end).
fn train_alone(
    net: &kiln_supernet::SuperNet,
    g: &Genome,
    seed: u64,
    epochs: usize,
    data: &Dataset,
    held_out: bool,
) -> f64 {
    let config = kiln_train::TrainConfig {
        epochs,
        seed,
        ..Default::default()
    };
    let arch = net.architecture(g).expect("architecture");
    let t = kiln_train::train(&arch, &g.id(), data, &config, &mut kiln_train::Silent)
        .expect("training");
    let validation = t.metrics.validation_top1.unwrap_or(t.metrics.test_top1);
    if held_out {
        // the same training's validation top-1, to set the two measures side by side
        eprintln!("validation,{},{validation:.4}", g.id());
        t.metrics.test_top1
    } else {
        validation
    }
}

/// The data the supernet at `dir` was trained on, and its identity string (the folder as
/// `supernet train --idx` was given it): the bundled digits, or the IDX folder `idx`, split
/// by `split`. The supernet's weights are judged on the data they were trained on or not at
/// all: exits with an error saying so when `identity` (the supernet's) does not match.
fn supernet_data(
    dir: &std::path::Path,
    identity: &kiln_supernet::SupernetIdentity,
    idx: Option<&str>,
    split: &SplitOptions,
) -> (Dataset, String) {
    let named = idx.map_or(Source::Mnist5k, |d| Source::Idx(d.into()));
    let data_identity = named.identity(split);
    let source = idx.map_or(Source::Mnist5k, |d| Source::Idx(from_root(d)));
    let data = kiln_data::load(&source, split)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", source.name())));
    // by the supernet's own check: its content where it recorded one (the same files in
    // another folder pass), its name where not
    let read_now = kiln_supernet::SupernetIdentity {
        data: data_identity.clone(),
        data_content: Some(data.content_id()),
        ..identity.clone()
    };
    if let Err(e) = identity.check(&read_now, dir) {
        fail(&format!(
            "{e}. The bench reads the bundled digits or --idx DIR, with --validation SHARE, \
             the default split seed and no train limit: give --idx and --validation as \
             `supernet train` was given them"
        ));
    }
    (data, data_identity)
}

/// `data` as the bench scores it: with `--held-out DIR`, DIR's test images stand in for its
/// test split (training reads no test image) and every accuracy is measured on them, with
/// the `scored` line a pairs file names them by
/// ([`kiln_supernet::pairs::held_out_images`]); else unchanged.
fn with_held_out(
    data: Dataset,
    held_out_dir: Option<&str>,
    split: &SplitOptions,
) -> (Dataset, Option<String>) {
    let Some(dir) = held_out_dir else {
        return (data, None);
    };
    let (test, name) = kiln_supernet::pairs::held_out_images(&from_root(dir), dir, &data, split)
        .unwrap_or_else(|e| fail(&e.to_string()));
    (Dataset { test, ..data }, Some(name))
}

/// A path from the command line. Cargo runs a bench in its package's folder
/// (`crates/supernet`), so under cargo (`CARGO_MANIFEST_DIR` set) a relative path is taken
/// from the workspace root, where the README's commands are typed; run directly, from the
/// current folder.
fn from_root(path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(package) if path.is_relative() => {
            let package = PathBuf::from(package);
            package.ancestors().nth(2).unwrap_or(&package).join(path)
        }
        _ => path,
    }
}

/// Bad input to the benchmark: the message on stderr and exit status 1, not a panic.
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
