//! Judging throughput: how many sub-networks a weight-sharing search judges per second
//! (batch norm recalibrated, then validation top-1), on the bundled data or IDX files.
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

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use kiln_data::{Source, SplitOptions};
use kiln_space::Genome;
use kiln_supernet::{JudgeSettings, SupernetWeights, accuracy, recalibrate};

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut dir = None;
    let (mut candidates, mut workers) = (200usize, 2usize);
    let (mut recal, mut against, mut alone) = (None, None, None);
    let mut burn = false;
    let mut pairs_file: Option<PathBuf> = None;
    let mut alone_from: Option<PathBuf> = None;
    let mut seed_base: Option<u64> = None;
    let mut idx: Option<String> = None;
    let mut validation = 0.1f64;
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| fail(&format!("{name} takes a number")))
        };
        match a.as_str() {
            "--candidates" => candidates = num("--candidates"),
            "--workers" => workers = num("--workers").max(1),
            "--recalibration" => recal = Some(num("--recalibration")),
            "--against" => against = Some(num("--against")),
            "--stand-alone" => alone = Some(num("--stand-alone")),
            "--seed-base" => seed_base = Some(num("--seed-base") as u64),
            "--pairs" => {
                pairs_file = Some(from_root(
                    &args.next().unwrap_or_else(|| fail("--pairs takes a file")),
                ))
            }
            "--stand-alone-from" => {
                alone_from = Some(from_root(
                    &args
                        .next()
                        .unwrap_or_else(|| fail("--stand-alone-from takes a file")),
                ))
            }
            "--idx" => {
                idx = Some(
                    args.next()
                        .unwrap_or_else(|| fail("--idx takes a directory")),
                )
            }
            "--validation" => {
                validation = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|v: &f64| *v > 0.0 && *v < 1.0)
                    .unwrap_or_else(|| fail("--validation takes a share between 0 and 1"))
            }
            "--engine" => match args.next().as_deref() {
                Some("burn") => burn = true,
                Some("kernels") => burn = false,
                other => fail(&format!("--engine takes kernels or burn, not {other:?}")),
            },
            _ => dir = Some(from_root(&a)),
        }
    }
    if seed_base.is_some() && (alone.is_none() || alone_from.is_some()) {
        fail(
            "--seed-base seeds stand-alone training: give it with --stand-alone EPOCHS \
             (with --stand-alone-from nothing is trained)",
        );
    }
    let Some(dir) = dir else {
        eprintln!(
            "usage: judge SUPERNET_DIR [--candidates N] [--workers W] [--recalibration IMAGES] \
             [--idx DIR] [--validation SHARE]"
        );
        return;
    };
    // the supernet's weights are judged on the data they were trained on, or not at all
    let identity = kiln_supernet::identity(&dir).unwrap_or_else(|e| fail(&e.to_string()));
    let split = SplitOptions {
        validation_fraction: validation,
        ..SplitOptions::default()
    };
    // the identity names the folder as `supernet train --idx` was given it
    let named = idx
        .as_ref()
        .map_or(Source::Mnist5k, |d| Source::Idx(d.into()));
    let data_identity = named.identity(&split);
    let source = idx
        .as_deref()
        .map_or(Source::Mnist5k, |d| Source::Idx(from_root(d)));
    let data = kiln_data::load(&source, &split)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", source.name())));
    // by the supernet's own check: its content where it recorded one (the same files in
    // another folder pass), its name where not
    let read_now = kiln_supernet::SupernetIdentity {
        data: data_identity.clone(),
        data_content: Some(data.content_id()),
        ..identity.clone()
    };
    if let Err(e) = identity.check(&read_now, &dir) {
        fail(&format!(
            "{e}. The bench reads the bundled digits or --idx DIR, with --validation SHARE, \
             the default split seed and no train limit: give --idx and --validation as \
             `supernet train` was given them"
        ));
    }
    let device = kiln_train::device();
    let (net, _, epochs, _) =
        kiln_supernet::load(&dir, &device).unwrap_or_else(|e| fail(&e.to_string()));
    let weights = SupernetWeights::of(&net).expect("supernet weights");
    let settings = JudgeSettings {
        recalibration_images: recal.unwrap_or(identity.config.recalibration_images),
        ..JudgeSettings::default()
    };
    let genomes = kiln_supernet::ranking_genomes(&identity.space, candidates);
    let earlier = pairs_file
        .as_deref()
        .map(|p| read_pairs(p, &genomes, &data_identity))
        .unwrap_or_default();
    // where each candidate's stand-alone accuracy comes from, when the ranking is measured
    let truth = match (&alone_from, alone) {
        (Some(p), _) => Some(Truth::Measured(
            measured(p, &genomes, &data_identity),
            p.clone(),
        )),
        (None, Some(epochs)) => Some(Truth::Train {
            epochs,
            seed_base: seed_base.unwrap_or(0),
        }),
        (None, None) => None,
    };
    let todo: Vec<usize> = (0..candidates)
        .filter(|i| !earlier.iter().any(|p| p.0 == *i))
        .collect();
    let log = pairs_file.as_ref().map(|p| {
        let cannot = |e: std::io::Error| -> ! { fail(&format!("{}: {e}", p.display())) };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap_or_else(|e| cannot(e));
        // a new file says what data its pairs were measured on
        if file.metadata().is_ok_and(|m| m.len() == 0) {
            use std::io::Write;
            writeln!(file, "data,{data_identity}").unwrap_or_else(|e| cannot(e));
        }
        std::sync::Mutex::new(file)
    });
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let other = against.map(|n| JudgeSettings {
        recalibration_images: n,
        ..settings.clone()
    });
    type Judged = (f64, f64, f64, Option<f64>, Option<f64>, usize);
    let phases: Vec<Judged> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let net = net.clone();
                let (data, genomes, next, truth, weights, todo, log) =
                    (&data, &genomes, &next, &truth, &weights, &todo, &log);
                let (settings, other) = (&settings, &other);
                s.spawn(move || {
                    kiln_train::with_threads(1, || {
                        let mut out = Vec::new();
                        while let Some(&i) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                            let g = &genomes[i];
                            let t0 = Instant::now();
                            let mut bn = if burn {
                                recalibrate(&net, g, data, settings)
                            } else {
                                weights.recalibrate(g, data, settings)
                            }
                            .expect("recalibrate");
                            let t1 = Instant::now();
                            let (split, b) = (&data.validation, settings.batch);
                            let (top1, _) = if burn {
                                accuracy(&net, g, &mut bn, split, data, b)
                            } else {
                                weights.accuracy(g, &mut bn, split, data, b)
                            }
                            .expect("validate");
                            let seconds = t1.elapsed().as_secs_f64();
                            let second = other.as_ref().map(|o| {
                                let j = if burn {
                                    kiln_supernet::judge(&net, g, data, o)
                                } else {
                                    weights.judge(g, data, o)
                                };
                                j.expect("judge").top1
                            });
                            let stand_alone = truth.as_ref().map(|truth| {
                                let acc = match truth {
                                    Truth::Measured(known, _) => known[&i],
                                    Truth::Train { epochs, seed_base } => {
                                        train_alone(&net, g, seed_base + i as u64, *epochs, data)
                                    }
                                };
                                // as it comes: hours of training are not lost to a kill
                                let line = format!("done,{i},{},{top1:.4},{acc:.4}", g.id());
                                eprintln!("{line}");
                                if let Some(f) = log {
                                    use std::io::Write;
                                    let mut f = f.lock().expect("pairs file");
                                    writeln!(f, "{line}").expect("pairs file written");
                                }
                                acc
                            });
                            out.push((
                                (t1 - t0).as_secs_f64(),
                                seconds,
                                top1,
                                second,
                                stand_alone,
                                i,
                            ));
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
        "supernet {} ({} epochs), {} recalibration images, {} validation images, on {}",
        dir.display(),
        epochs,
        settings.recalibration_images,
        data.validation.len(),
        if burn {
            "burn"
        } else {
            "kiln-runtime's kernels"
        }
    );
    println!(
        "{} candidates, {workers} workers: {wall:.1} s wall, {:.2} candidates/s (host); \
         median recalibration {:.3} s, validation {:.3} s",
        todo.len(),
        todo.len() as f64 / wall,
        median(phases.iter().map(|p| p.0).collect()),
        median(phases.iter().map(|p| p.1).collect()),
    );
    if let Some(n) = against {
        let a: Vec<f64> = phases.iter().map(|p| p.2).collect();
        let b: Vec<f64> = phases.iter().filter_map(|p| p.3).collect();
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
    if let Some(truth) = &truth {
        let mut pairs: Vec<(usize, f64, f64)> = phases
            .iter()
            .filter_map(|p| Some((p.5, p.2, p.4?)))
            .chain(earlier)
            .collect();
        pairs.sort_by_key(|p| p.0);
        for (i, inherited, stand_alone) in &pairs {
            println!("pair,{},{inherited:.4},{stand_alone:.4}", genomes[*i].id());
        }
        let a: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        let b: Vec<f64> = pairs.iter().map(|p| p.2).collect();
        println!(
            "inherited vs stand-alone ({}, validation top-1, {} genomes): Kendall tau-b {:.3}",
            match truth {
                Truth::Measured(_, p) => format!("as in {}", p.display()),
                Truth::Train { epochs, .. } => format!("{epochs} epochs from scratch"),
            },
            pairs.len(),
            kiln_latency::kendall_tau(&a, &b).unwrap_or(f64::NAN)
        );
    }
}

/// Where the stand-alone accuracies of a ranking run come from.
enum Truth {
    /// Trained here from scratch: candidate i with seed `seed_base + i`.
    Train { epochs: usize, seed_base: u64 },
    /// Read from an earlier `--pairs` file (the file): candidate index -> validation top-1.
    Measured(HashMap<usize, f64>, PathBuf),
}

/// The stand-alone accuracy of every candidate in the `--pairs` file `path`, by index.
///
/// Exits with an error naming the file when it is missing or lacks a candidate.
fn measured(path: &std::path::Path, genomes: &[Genome], data: &str) -> HashMap<usize, f64> {
    if !path.is_file() {
        fail(&format!("{}: no such pairs file", path.display()));
    }
    let known: HashMap<usize, f64> = read_pairs(path, genomes, data)
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

/// Validation top-1 of genome `g` trained from scratch with `seed`.
fn train_alone(
    net: &kiln_supernet::SuperNet,
    g: &Genome,
    seed: u64,
    epochs: usize,
    data: &kiln_data::Dataset,
) -> f64 {
    let config = kiln_train::TrainConfig {
        epochs,
        seed,
        ..Default::default()
    };
    let arch = net.architecture(g).expect("architecture");
    let t = kiln_train::train(&arch, &g.id(), data, &config, &mut kiln_train::Silent)
        .expect("training");
    t.metrics.validation_top1.unwrap_or(t.metrics.test_top1)
}

/// The `(index, inherited, stand_alone)` pairs of earlier sittings in a `--pairs` file
/// (`done,index,genome,inherited,stand_alone` lines; a missing file holds none).
///
/// Lines past this run's candidates are left out. Exits with an error (naming the file and
/// line) when a line's genome is not this run's genome at that index (the file was written
/// for another space), or when the file's `data,IDENTITY` line is not `data`, this run's
/// data and split (a file without one predates it and holds the bundled digits' pairs).
fn read_pairs(path: &std::path::Path, genomes: &[Genome], data: &str) -> Vec<(usize, f64, f64)> {
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
