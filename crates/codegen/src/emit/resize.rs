//! [`OpKind::Resize`](kiln_ir::OpKind::Resize): the row and column taps
//! become `static` tables of the generated crate, read by `rt::resize2d`.

use std::fmt::Write as _;

use kiln_ir::{Op, Tap};

use super::{Emitter, f};
use crate::CodegenError;

impl Emitter<'_> {
    /// A `static [rt::Tap; n]` named after op `i` and `what`; returns its name.
    fn tap_table(&mut self, i: usize, what: &str, taps: &[Tap]) -> String {
        let name = format!("R{i}_{what}");
        let items: Vec<String> = taps
            .iter()
            .map(|t| {
                format!(
                    "rt::Tap {{ lo: {}, hi: {}, frac: {} }}",
                    t.lo,
                    t.hi,
                    f(t.frac)
                )
            })
            .collect();
        let _ = writeln!(
            self.params,
            "static {name}: [rt::Tap; {}] = [{}];",
            taps.len(),
            items.join(", ")
        );
        name
    }

    /// `rt::resize2d` from the input image into the output image.
    pub(super) fn resize(
        &mut self,
        i: usize,
        op: &Op,
        rows: &[Tap],
        cols: &[Tap],
    ) -> Result<String, CodegenError> {
        let (x, y) = (op.inputs[0], op.output);
        let (h, w, c) = self.image(op, x, "resize input")?;
        let (oh, ow, oc) = self.image(op, y, "resize output")?;
        let fits = |t: &[Tap], n| t.iter().all(|t| t.lo < n && t.hi < n);
        if oh != rows.len() || ow != cols.len() || oc != c || !fits(rows, h) || !fits(cols, w) {
            return Err(Self::unsupported(
                op,
                format!("resize taps do not fit {h}x{w} -> {oh}x{ow}"),
            ));
        }
        self.kernels.insert("resize2d");
        let r = self.tap_table(i, "ROWS", rows);
        let k = self.tap_table(i, "COLS", cols);
        Ok(format!(
            "{{ {} rt::resize2d(x, y, ({w}, {c}), &{r}, &{k}); }}",
            self.io1(x, y)
        ))
    }
}
