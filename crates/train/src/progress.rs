//! Progress reporting during training.

use indicatif::{ProgressBar, ProgressStyle};

use crate::EpochMetrics;

/// Told about the run as it goes. `Send` because training runs on its own thread pool.
pub trait Observer: Send {
    /// Before epoch `epoch` (1-based) of `epochs`, which has `batches` training steps.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    /// After each batch: batches done in this epoch, running mean loss and top-1 (a fraction)
    /// over the epoch so far.
    fn batch(&mut self, _done: usize, _loss: f64, _top1: f64) {}
    /// After the epoch's validation, with its figures.
    fn epoch_end(&mut self, _metrics: &EpochMetrics) {}
}

/// Reports nothing.
pub struct Silent;

impl Observer for Silent {}

/// One indicatif bar per epoch with loss and accuracy (in percent) and throughput (images/s);
/// the finished bar stays as a log line.
#[derive(Default)]
pub struct ProgressBars {
    bar: Option<ProgressBar>,
}

impl Observer for ProgressBars {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        let bar = ProgressBar::new(batches as u64);
        let style =
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("epoch {epoch:>2}/{epochs}"));
        self.bar = Some(bar);
    }

    fn batch(&mut self, done: usize, loss: f64, top1: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            bar.set_message(format!("loss {loss:.4} train {:.2}%", top1 * 100.0));
        }
    }

    fn epoch_end(&mut self, m: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            let val = m
                .validation_top1
                .map(|v| format!(" val {:.2}%", v * 100.0))
                .unwrap_or_default();
            bar.finish_with_message(format!(
                "loss {:.4} train {:.2}%{val} {:.0} img/s",
                m.train_loss,
                m.train_top1 * 100.0,
                m.images_per_second
            ));
        }
    }
}
