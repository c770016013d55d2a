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
//! docs/ranking/earlier.md): training, recalibration and the supernet check still read
//! `--idx`, and DIR may share none of its training images (checked byte for byte). A pairs
//! file says so in a `scored,IMAGES` line (folder, image count, content id) and is refused by
//! a run that scores elsewhere. Each training's validation top-1 also goes to stderr
//! (`validation,genome,top1`); `--against` (which scores the validation split) is refused.
//! `SUPERNET_DIR` may be a few-shot split's folder (Zhao et al., 2021: one supernet per
//! value of a choice, each trained on a space with that value alone; `supernet train
//! --few-shot`): candidates are drawn from the whole space its `split.json` holds and each
//! is judged by the part that holds it. `--space FILE` draws the candidates from FILE's
//! space instead of the supernet's (for a split, FILE must be its whole space) and judges
//! only those the supernet holds. Each pair names the content id of the weights that
//! judged it (a split's part's), and a run that would judge a genome of the file with other
//! weights (a supernet trained further or again, or another one) is refused rather than
//! mixing two supernets' inherited accuracies; supernets of a hand-made split, each run with
//! `--space` and the same file, add their genomes beside each other.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use kiln_data::{Dataset, Split, SplitOptions};
use kiln_space::Genome;
use kiln_supernet::pairs::{Pair, VALIDATION};
use kiln_supernet::{JudgeSettings, SupernetIdentity, SupernetWeights, accuracy, recalibrate};

#[path = "judge/args.rs"]
mod args;
#[path = "judge/pairs.rs"]
mod pairs;
#[path = "judge/setup.rs"]
mod setup;
use args::parse_args;
use pairs::{measured, open_pairs, read_pairs};
use setup::{Judges, check_data, held_by, judges, load_data, train_alone, with_held_out};

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
    let judges = judges(&args.dir, args.space_file.as_deref());
    let identities: Vec<SupernetIdentity> = (judges.parts.iter())
        .map(|d| kiln_supernet::identity(d).unwrap_or_else(|e| fail(&e.to_string())))
        .collect();
    let split = SplitOptions {
        validation_fraction: args.validation,
        ..SplitOptions::default()
    };
    let (data, data_identity) = load_data(args.idx.as_deref(), &split);
    for (dir, identity) in judges.parts.iter().zip(&identities) {
        check_data(dir, identity, &data, &data_identity);
    }
    let (data, scored_line) = with_held_out(data, args.held_out_dir.as_deref(), &split);
    let scored_on = scored_line.as_deref().unwrap_or(VALIDATION);
    let candidates = args.candidates;
    let genomes = match &judges.drawn {
        Some((space, _)) => kiln_supernet::ranking_genomes(space, candidates),
        None => kiln_supernet::ranking_genomes(&identities[0].space, candidates),
    };
    // which candidates each supernet holds, and which any of them holds
    let holds: Vec<(Vec<bool>, Option<String>)> = (identities.iter())
        .map(|identity| held_by(identity, judges.drawn.as_ref(), &genomes))
        .collect();
    let mut run = Run {
        phases: Vec::new(),
        judged: 0,
        wall: 0.0,
        held: vec![false; candidates],
        first_reason: None,
    };
    for (held, reason) in &holds {
        for (was, now) in run.held.iter_mut().zip(held) {
            *was |= now;
        }
        run.first_reason = run.first_reason.take().or(reason.clone());
    }
    run.refuse_none_held(&judges, candidates);
    // the content id of each supernet, and of the one that judges each candidate
    let weights: Vec<String> = (judges.parts.iter())
        .map(|d| kiln_supernet::weights_id(d).unwrap_or_else(|e| fail(&e.to_string())))
        .collect();
    let mut judged_by: Vec<Option<&str>> = vec![None; candidates];
    for ((held, _), id) in holds.iter().zip(&weights) {
        for (by, _) in judged_by.iter_mut().zip(held).filter(|(_, h)| **h) {
            *by = Some(id.as_str());
        }
    }
    let pairs_file = args.pairs_file.as_deref();
    let earlier = pairs_file
        .map(|p| read_pairs(p, &genomes, &data_identity, scored_on, Some(&judged_by)))
        .unwrap_or_default();
    // where each candidate's stand-alone accuracy comes from, when the ranking is measured
    let truth = match (&args.alone_from, args.alone) {
        (Some(p), _) => Some(Truth::Measured(
            measured(p, &genomes, &data_identity, scored_on),
            p.clone(),
        )),
        (None, Some(epochs)) => Some(Truth::Train {
            epochs,
            seed_base: args.seed_base.unwrap_or(0),
        }),
        (None, None) => None,
    };
    let log = pairs_file.map(|p| open_pairs(p, &data_identity, scored_line.as_deref()));
    let parts = judges
        .parts
        .iter()
        .zip(&identities)
        .zip(&holds)
        .zip(&weights);
    for (((dir, identity), (held, _)), weights_id) in parts {
        let todo: Vec<usize> = (0..candidates)
            .filter(|i| held[*i] && !earlier.iter().any(|p| p.0 == *i))
            .collect();
        if todo.is_empty() {
            println!(
                "supernet {}: none of the candidates to judge",
                dir.display()
            );
            continue;
        }
        let settings = JudgeSettings {
            recalibration_images: args.recal.unwrap_or(identity.config.recalibration_images),
            ..JudgeSettings::default()
        };
        let device = kiln_train::device();
        let (net, _, epochs, _) =
            kiln_supernet::load(dir, &device).unwrap_or_else(|e| fail(&e.to_string()));
        let weights = SupernetWeights::of(&net).expect("supernet weights");
        let other = args.against.map(|n| JudgeSettings {
            recalibration_images: n,
            ..settings.clone()
        });
        let bench = Bench {
            weights: &weights,
            weights_id,
            data: &data,
            scored: if scored_line.is_some() {
                &data.test
            } else {
                &data.validation
            },
            held_out: scored_line.is_some(),
            settings: &settings,
            other: other.as_ref(),
            truth: truth.as_ref(),
            log: log.as_ref(),
            burn: args.burn,
        };
        println!(
            "supernet {} ({epochs} epochs), {} recalibration images, scored on {}, on {}: \
             {} of the {candidates} candidates to judge",
            dir.display(),
            settings.recalibration_images,
            // a held-out name gives its image count already
            match scored_line.is_some() {
                true => scored_on.to_owned(),
                false => format!("{scored_on} ({} images)", bench.scored.len()),
            },
            if args.burn {
                "burn"
            } else {
                "kiln-runtime's kernels"
            },
            todo.len()
        );
        let started = Instant::now();
        run.phases
            .extend(bench.judge_all(&net, &genomes, &todo, args.workers));
        run.wall += started.elapsed().as_secs_f64();
        run.judged += todo.len();
    }
    run.report(&judges, candidates, args.workers);
    if let Some(n) = args.against {
        print_against(n, &run.phases);
    }
    if let Some(truth) = &truth {
        print_ranking(truth, &run.phases, earlier, &genomes, scored_on);
    }
}

/// What the supernets judged, over all of them.
struct Run {
    phases: Vec<Judged>,
    /// Candidates judged in this run.
    judged: usize,
    /// Seconds of judging, summed over the supernets (`host`).
    wall: f64,
    /// Whether some supernet holds each candidate.
    held: Vec<bool>,
    /// Why the first candidate a supernet does not hold is not held.
    first_reason: Option<String>,
}

impl Run {
    /// Exits with an error when no supernet holds any candidate (naming the first reason),
    /// before anything is judged or written.
    fn refuse_none_held(&self, judges: &Judges, candidates: usize) {
        if self.held.iter().any(|h| *h) {
            return;
        }
        let drawn = judges.drawn.as_ref().map_or("", |(_, file)| file.as_str());
        let why = self.first_reason.clone().unwrap_or_default();
        fail(&format!(
            "{drawn}: {} holds none of its {candidates} candidates (the first: {why})",
            judges.what
        ));
    }

    /// Prints the throughput (wall time, candidates per second, the median seconds of the
    /// two phases; `host`) and how many candidates no supernet holds.
    fn report(&self, judges: &Judges, candidates: usize, workers: usize) {
        let outside = self.held.iter().filter(|h| !**h).count();
        let drawn = judges.drawn.as_ref().map_or("", |(_, file)| file.as_str());
        if outside > 0 {
            println!(
                "{outside} of the {candidates} candidates of {drawn} are not sub-networks of \
                 {}: left to another supernet of the split",
                judges.what
            );
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
        };
        let phases = &self.phases;
        println!(
            "{} candidates, {workers} workers: {:.1} s wall, {:.2} candidates/s (host); \
             median recalibration {:.3} s, scoring {:.3} s",
            self.judged,
            self.wall,
            self.judged as f64 / self.wall,
            median(phases.iter().map(|p| p.recalibration).collect()),
            median(phases.iter().map(|p| p.scoring).collect()),
        );
    }
}

/// What every worker reads: the supernet's weights and data, the images accuracies are
/// scored on, the judge settings, where stand-alone accuracies come from, the pairs file.
struct Bench<'a> {
    weights: &'a SupernetWeights,
    /// Their content id, which each pair written names.
    weights_id: &'a str,
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
    /// Judges the candidates `todo` (indices into `genomes`) with `workers` threads, each
    /// on one thread of its own and (with burn) its own copy of `net`.
    fn judge_all(
        &self,
        net: &kiln_supernet::SuperNet,
        genomes: &[Genome],
        todo: &[usize],
        workers: usize,
    ) -> Vec<Judged> {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    let (net, next) = (net.clone(), &next);
                    s.spawn(move || {
                        kiln_train::with_threads(1, || {
                            let mut out = Vec::new();
                            while let Some(&i) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                                out.push(self.judge(&net, &genomes[i], i));
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
        })
    }

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
                weights: Some(self.weights_id.to_owned()),
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

/// Where the stand-alone accuracies of a ranking run come from.
enum Truth {
    /// Trained here from scratch: candidate i with seed `seed_base + i`.
    Train { epochs: usize, seed_base: u64 },
    /// Read from an earlier `--pairs` file (the file): candidate index -> top-1 on the images
    /// the run scores on (the file's `scored` line matches them).
    Measured(HashMap<usize, f64>, PathBuf),
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
