//! End-to-end tests of the foundation commands, run as a user runs them.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn xtask(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xtask starts");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn sample_is_deterministic_and_show_reads_it_from_stdin() {
    let a = xtask(&["space", "sample", "--seed", "1"], None);
    let b = xtask(&["space", "sample", "--seed", "1"], None);
    let c = xtask(&["space", "sample", "--seed", "2"], None);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(stdout(&a), stdout(&b));
    assert_ne!(stdout(&a), stdout(&c));

    let shown = xtask(&["space", "show", "-"], Some(&stdout(&a)));
    assert!(shown.status.success(), "{}", stderr(&shown));
    let table = stdout(&shown);
    for needle in ["stem", "classifier", "params", "MACs", "total:"] {
        assert!(table.contains(needle), "missing {needle} in\n{table}");
    }
}

#[test]
fn show_totals_agree_with_layers() {
    let g = xtask(&["space", "sample", "--seed", "3"], None);
    let shown = xtask(&["space", "show", "-", "--json"], Some(&stdout(&g)));
    assert!(shown.status.success(), "{}", stderr(&shown));
    let v: serde_json::Value = serde_json::from_str(&stdout(&shown)).unwrap();
    let layers = v["layers"].as_array().unwrap();
    let sum: u64 = layers.iter().map(|l| l["params"].as_u64().unwrap()).sum();
    assert_eq!(sum, v["totals"]["params"].as_u64().unwrap());
    assert_eq!(v["source"], "predicted");
}

#[test]
fn bad_genomes_are_rejected_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = stdout(&xtask(&["space", "sample", "--seed", "4"], None));

    let cases = [
        (
            "kernel.json",
            good.replacen("\"kernel\": ", "\"kernel\": 1", 1),
            "kernel",
        ),
        (
            "unknown.json",
            good.replacen("\"head_width\"", "\"hed_width\"", 1),
            "hed_width",
        ),
        (
            "truncated.json",
            good[..good.len() / 2].to_string(),
            "truncated.json",
        ),
        (
            "space.json",
            good.replacen("\"mobile\"", "\"nope\"", 1),
            "space",
        ),
    ];
    for (name, text, needle) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let o = xtask(&["space", "show", path.to_str().unwrap()], None);
        assert!(!o.status.success(), "{name} was accepted");
        let err = stderr(&o);
        assert!(err.contains(needle) && err.contains(name), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}

#[test]
fn bad_space_file_is_rejected_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("space.toml");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("spaces/mobile.toml")).unwrap();
    std::fs::write(
        &path,
        text.replacen("expand = [1, 3, 4, 6]", "expand = [0, 3]", 1),
    )
    .unwrap();
    let o = xtask(
        &["space", "sample", "--space", path.to_str().unwrap()],
        None,
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("space.toml") && err.contains("stage[0].expand"),
        "{err}"
    );
}

#[test]
fn targets_lists_the_five_profiles() {
    let o = xtask(&["targets"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for name in ["pixel", "jetson", "jetson-orin", "wasm-sim", "host"] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{text}"
        );
    }
    assert!(
        text.contains("p50 < 80 ms") && text.contains(">= 30 FPS"),
        "{text}"
    );
}

/// `cargo xtask targets | head`: a reader that has gone ends the command with the shell's
/// status for SIGPIPE, without a panic.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["targets", "--targets-dir"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets"))
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(141), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn bad_target_file_is_rejected_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join("targets/jetson.toml")).unwrap();
    std::fs::write(
        dir.path().join("board.toml"),
        text.replace("watts = 5.0", "watts = 0.0"),
    )
    .unwrap();
    let o = xtask(&["targets", "--dir", dir.path().to_str().unwrap()], None);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("board.toml") && err.contains("power_mode[1].watts"),
        "{err}"
    );
}

#[test]
fn export_onnx_writes_a_model_tract_runs() {
    use tract_onnx::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let genome = dir.path().join("g.json");
    std::fs::write(
        &genome,
        stdout(&xtask(&["space", "sample", "--seed", "5"], None)),
    )
    .unwrap();
    let model = dir.path().join("m.onnx");
    let o = xtask(
        &[
            "export-onnx",
            "--genome",
            genome.to_str().unwrap(),
            "-o",
            model.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = tract_onnx::onnx()
        .model_for_path(&model)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let x = Tensor::from(tract_ndarray::Array4::<f32>::from_shape_fn(
        (1, 1, 28, 28),
        |(_, _, h, w)| ((h * 28 + w) % 17) as f32 / 17.0,
    ));
    let out = plan.run(tvec!(x.into())).unwrap();
    let logits = out[0].to_plain_array_view::<f32>().unwrap();
    assert_eq!(logits.shape(), &[1, 10]);
    assert!(logits.iter().all(|v| v.is_finite()));
}
