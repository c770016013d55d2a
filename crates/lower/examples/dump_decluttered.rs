//! Prints tract's decluttered graph of an ONNX file, node by node: what
//! kiln-lower sees. `cargo run -p kiln-lower --example dump_decluttered -- MODEL.onnx`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: dump_decluttered MODEL.onnx")?;
    let bytes = std::fs::read(&path)?;
    let model = kiln_lower::decluttered_model(&bytes, &path, &Default::default())?;
    for id in model.eval_order()? {
        let n = model.node(id);
        let ins: Vec<String> = n
            .inputs
            .iter()
            .map(|o| format!("{}/{}", o.node, o.slot))
            .collect();
        let info = n.op.info().unwrap_or_default().join("; ");
        println!(
            "{id:4} {:<36} {:<16} in={:<18} out={:?}  {info}",
            n.name,
            n.op.name(),
            ins.join(","),
            n.outputs[0].fact
        );
    }
    Ok(())
}
