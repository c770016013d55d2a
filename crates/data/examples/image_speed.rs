//! The image loader's speed benchmark (issue 20): decoding and resizing a class folder of
//! JPEGs, and loading it again from the disk cache.
//!
//! ```text
//! cargo run -p kiln-data --example image_speed -- make DIR [--count 10000] [--size 640x480]
//! cargo run -p kiln-data --example image_speed -- load DIR [--resolution 96x96] [--threads N] [--no-cache]
//! ```
//!
//! `make` writes `count` photo-like JPEGs (smooth colour fields, edges and grain, quality 75,
//! 10 class folders) into DIR. `load` reads DIR as `--images DIR` does (`--no-cache`: decode
//! every time, neither reading nor writing the cache) on a pool of `--threads` threads and
//! prints the count, the shape and its own wall time (host). Time it from outside for figures
//! to quote: `images per second = count / wall time`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use image::{Rgb, RgbImage};
use kiln_data::{Fit, ImageEvent, ImageOptions, Resolution, SplitOptions, load_images};
use rayon::prelude::*;

fn main() {
    if let Err(e) = run(std::env::args().skip(1).collect()) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let usage = "usage: image_speed make DIR [--count N] [--size WxH] | load DIR [--resolution HxW] [--threads N] [--no-cache]";
    let (Some(command), Some(dir)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let dir = PathBuf::from(dir);
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |name: &str, default: usize| -> Result<usize, String> {
        flag(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{name} `{v}`: expected a number"))
        })
    };
    match command.as_str() {
        "make" => {
            let size: Resolution = flag("--size")
                .unwrap_or_else(|| "480x640".into())
                .parse()
                .map_err(|e| format!("--size {e}"))?;
            make(&dir, number("--count", 10_000)?, size)
        }
        "load" => {
            let resolution: Resolution = flag("--resolution")
                .unwrap_or_else(|| "96x96".into())
                .parse()
                .map_err(|e| format!("--resolution {e}"))?;
            let threads = number("--threads", 1)?;
            let cache = !args.iter().any(|a| a == "--no-cache");
            load(&dir, resolution, threads, cache)
        }
        _ => Err(usage.into()),
    }
}

/// `count` JPEGs of `size` (height x width) in `dir/class-<k>/`, k = 0..10.
fn make(dir: &Path, count: usize, size: Resolution) -> Result<(), String> {
    let (w, h) = (size.width as u32, size.height as u32);
    (0..count).into_par_iter().try_for_each(|i| {
        let class = dir.join(format!("class-{}", i % 10));
        std::fs::create_dir_all(&class).map_err(|e| format!("{}: {e}", class.display()))?;
        let img = photo(i as u32, w, h);
        let path = class.join(format!("{i:05}.jpg"));
        img.save(&path)
            .map_err(|e| format!("{}: {e}", path.display()))
    })?;
    println!("wrote {count} JPEGs of {w}x{h} into {}", dir.display());
    Ok(())
}

/// A photo-like image: two smooth colour gradients, a disc with a sharp edge and a grain of
/// pseudo-random noise (so JPEG has detail to code, as in photographs).
fn photo(seed: u32, w: u32, h: u32) -> RgbImage {
    let (cx, cy, r) = (
        (seed * 37) % w,
        (seed * 91) % h,
        (h / 4 + seed % (h / 4)) as i64,
    );
    RgbImage::from_fn(w, h, |x, y| {
        let mut n = x
            .wrapping_mul(374_761_393)
            .wrapping_add(y.wrapping_mul(668_265_263))
            .wrapping_add(seed.wrapping_mul(2_246_822_519));
        n = (n ^ (n >> 13)).wrapping_mul(1_274_126_177);
        let grain = (n >> 28) as u8;
        let (dx, dy) = (i64::from(x) - i64::from(cx), i64::from(y) - i64::from(cy));
        let inside = dx * dx + dy * dy < r * r;
        let base = [
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((seed * 29) % 256) as u8,
        ];
        let px = if inside {
            [255 - base[0], base[2], 255 - base[1]]
        } else {
            base
        };
        Rgb(px.map(|v| v.saturating_add(grain)))
    })
}

fn load(dir: &Path, resolution: Resolution, threads: usize, cache: bool) -> Result<(), String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build_global()
        .map_err(|e| e.to_string())?;
    let options = ImageOptions {
        cache,
        ..ImageOptions::new(Some(resolution), Some(3), Fit::Crop)
    };
    let start = Instant::now();
    let mut from_cache = false;
    let data = load_images(dir, &options, &SplitOptions::default(), &mut |e| match e {
        ImageEvent::CacheLoaded(_) => from_cache = true,
        ImageEvent::Warning(w) => eprintln!("warning: {w}"),
        _ => {}
    })
    .map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    let count = data.train.len() + data.validation.len() + data.test.len();
    println!(
        "{count} images ({}) {} in {seconds:.2} s on {threads} thread(s): {:.0} images/s (host, in-process)",
        data.shape,
        if from_cache {
            "loaded from the cache"
        } else {
            "decoded and resized"
        },
        count as f64 / seconds
    );
    Ok(())
}
