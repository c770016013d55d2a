//! `--images DIR` end to end: train on a folder of PNG and JPEG files written here, find the
//! class names in the model's metadata and metrics.json, evaluate from the cache with the
//! names printed, and refuse bad folders with a message naming them.

use std::path::Path;
use std::process::{Command, Output};

use image::{Rgb, RgbImage};

const GENOME: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crates/train/genomes/tiny.json"
);

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask starts")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `n` images per class, 24x20, a colour per class; PNG and JPEG alternating.
fn folder(dir: &Path, classes: &[(&str, [u8; 3])], n: usize) {
    for (class, colour) in classes {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..n {
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            let img = RgbImage::from_fn(24, 20, |x, y| {
                let v = ((x + y + i as u32) % 7) as u8 * 4;
                Rgb([colour[0].saturating_add(v), colour[1], colour[2]])
            });
            img.save(dir.join(class).join(format!("{i:02}.{ext}")))
                .unwrap();
        }
    }
}

#[test]
fn train_records_class_names_and_eval_reads_the_cache_and_prints_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("pets");
    folder(&data, &[("dog", [30, 200, 30]), ("cat", [200, 30, 30])], 10);
    let data = data.to_str().unwrap();
    let run = tmp.path().join("run");
    let flags = ["--images", data, "--resolution", "16x16"];
    let mut args = vec![
        "train",
        "--genome",
        GENOME,
        "--epochs",
        "1",
        "--batch-size",
        "4",
    ];
    args.extend(flags);
    args.extend(["-o", run.to_str().unwrap()]);
    let out = xtask(&args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("decoding images: 20/20"), "{stderr}");
    assert!(stderr.contains("cached in"), "{stderr}");
    assert!(stderr.contains("3x16x16"), "{stderr}");

    let model = std::fs::read(run.join("model.onnx")).unwrap();
    let meta = kiln_onnx::metadata::read(&model, "model.onnx").unwrap();
    assert_eq!(
        meta.get(kiln_onnx::metadata::CLASS_NAMES)
            .map(String::as_str),
        Some(r#"["cat","dog"]"#)
    );
    let dataset = &meta[kiln_onnx::metadata::DATASET];
    assert!(
        dataset.starts_with("images:") && dataset.ends_with("(3x16x16, crop)"),
        "{dataset}"
    );
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["class_names"], serde_json::json!(["cat", "dog"]));

    let model_path = run.join("model.onnx");
    let mut args = vec![
        "eval-onnx",
        model_path.to_str().unwrap(),
        "--engine",
        "tract",
    ];
    args.extend(flags);
    let out = xtask(&args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("loaded from the cache"), "{stderr}");
    assert!(!stderr.contains("decoding images"), "{stderr}");
    assert!(
        stdout.contains("per class: cat ") && stdout.contains(", dog "),
        "{stdout}"
    );
    assert!(
        stdout.contains("(trained from scratch (1 epoch)): test top-1"),
        "{stdout}"
    );

    // Another folder whose classes differ: the outputs would be misread, so it is refused.
    let other = tmp.path().join("insects");
    folder(&other, &[("ant", [0, 0, 0]), ("bee", [250, 250, 0])], 5);
    let mut args = vec![
        "eval-onnx",
        model_path.to_str().unwrap(),
        "--engine",
        "tract",
    ];
    args.extend(["--images", other.to_str().unwrap(), "--resolution", "16x16"]);
    let out = xtask(&args);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("trained on the classes [cat, dog]"),
        "{stderr}"
    );
    assert!(stderr.contains("[ant, bee]"), "{stderr}");
}

#[test]
fn bad_folders_and_flags_are_refused_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one");
    folder(&one, &[("only", [1, 2, 3])], 2);
    let run = tmp.path().join("run");
    let base = [
        "train",
        "--genome",
        GENOME,
        "--epochs",
        "1",
        "-o",
        run.to_str().unwrap(),
    ];
    let mut args = base.to_vec();
    args.extend(["--images", one.to_str().unwrap()]);
    let out = xtask(&args);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("at least two") && stderr.contains("only"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!run.exists());

    folder(&one, &[("other", [9, 9, 9])], 2);
    for (flag, value, needle) in [
        ("--channels", "2", "2 channels"),
        ("--resolution", "0x5", "expected HxW"),
        ("--fit", "stretch", "crop or letterbox"),
    ] {
        let mut args = base.to_vec();
        args.extend(["--images", one.to_str().unwrap(), flag, value]);
        let out = xtask(&args);
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{flag} {value}");
        assert!(stderr.contains(needle), "{flag} {value}: {stderr}");
    }
}
