//! The judge bench's command line (flags as the bench's module documentation gives them).

use std::path::PathBuf;

use super::{fail, from_root};

/// The command line, as the module documentation gives it.
pub struct Args {
    pub dir: PathBuf,
    pub candidates: usize,
    pub workers: usize,
    pub recal: Option<usize>,
    pub against: Option<usize>,
    pub alone: Option<usize>,
    pub burn: bool,
    pub pairs_file: Option<PathBuf>,
    pub alone_from: Option<PathBuf>,
    pub seed_base: Option<u64>,
    pub idx: Option<String>,
    pub validation: f64,
    pub held_out_dir: Option<String>,
    pub space_file: Option<PathBuf>,
}

/// Reads the command line; `None` without a `SUPERNET_DIR`. Exits with an error naming
/// the flag when a value is missing or malformed.
pub fn parse_args() -> Option<Args> {
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
