//! `cargo xtask lower MODEL.onnx -o DIR`: lowers an ONNX model, writes the
//! generated crate, prints the op list with shapes and the arena plan.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct LowerArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Folder for the generated crate (created if missing).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Full input shape, batch first (e.g. 1,3,96,96); needed when the model
    /// has symbolic dimensions other than the batch.
    #[arg(long, value_delimiter = ',')]
    pub input_shape: Option<Vec<usize>>,
}

pub fn run(args: LowerArgs) -> anyhow::Result<()> {
    let options = kiln_lower::LowerOptions {
        input_shape: args.input_shape,
    };
    let graph = kiln_lower::lower_file(&args.model, &options)?;
    let source = args.model.display().to_string();
    for w in kiln_pipeline::graph_warnings(&graph, &source) {
        eprintln!("warning: {w}");
    }
    let generated = kiln_codegen::generate(
        &graph,
        &args.output,
        &kiln_codegen::GenerateOptions::new(&source),
    )
    .with_context(|| format!("generating the crate for {source}"))?;
    print!("{}", describe(&graph, &generated.plan));
    println!(
        "weights: {} bytes; kernels: {}",
        generated.weight_bytes,
        generated.kernels.join(", ")
    );
    println!("crate written to {}", args.output.display());
    Ok(())
}

/// The op list with shapes and arena offsets, then the arena figures.
pub fn describe(graph: &kiln_ir::Graph, plan: &kiln_ir::ArenaPlan) -> String {
    let mut s = String::new();
    s.extend(graph.batch_note().map(|note| note + "\n"));
    s.push_str(&format!(
        "{:>4} {:<28} {:<44} {:<24} {:>10}\n",
        "#", "onnx node", "op", "output", "arena@f32"
    ));
    for (i, op) in graph.ops.iter().enumerate() {
        let t = &graph.tensors[op.output];
        let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        let place = if plan.in_place[i] { " (in place)" } else { "" };
        s.push_str(&format!(
            "{i:>4} {:<28} {:<44} {:<24} {:>10}{place}\n",
            op.node,
            op.kind.to_string(),
            format!("[{}]", shape.join(",")),
            plan.offsets[op.output]
        ));
    }
    s.push_str(&format!(
        "arena: {} bytes; lower bound (largest live set): {} bytes; ratio {:.3}\n",
        plan.arena_bytes(),
        plan.lower_bound_bytes(),
        plan.arena_len as f64 / plan.lower_bound.max(1) as f64
    ));
    s
}
