//! The training loop's report: a bar in a terminal; in a notebook (stdout is not a
//! terminal) a short line every `log_every` steps and after about ten evenly spaced
//! epochs, since stdout streams into the cell; nothing at all when the run is quiet.

use super::{EpochRecord, StepRecord, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub(super) struct Progress {
    bar: Option<ProgressBar>,
    log_every: usize,
    epochs: usize,
    quiet: bool,
}

impl Progress {
    pub(super) fn new(config: &TrainConfig, steps_per_epoch: usize) -> Progress {
        let bar = (!config.quiet && std::io::stderr().is_terminal()).then(|| {
            let style =
                ProgressStyle::with_template("{bar:30} {pos}/{len} steps, {msg} [{elapsed}<{eta}]")
                    .expect("a valid template");
            ProgressBar::new((config.epochs * steps_per_epoch) as u64).with_style(style)
        });
        Progress {
            bar,
            log_every: config.log_every,
            epochs: config.epochs,
            quiet: config.quiet,
        }
    }

    pub(super) fn step(&self, record: &StepRecord) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("loss {:.4}", record.loss));
                bar.inc(1);
            }
            None if !self.quiet
                && self.log_every > 0
                && record.step.is_multiple_of(self.log_every) =>
            {
                let accuracy = measured(", batch accuracy", record.accuracy);
                println!(
                    "epoch {} step {}: loss {:.4}{accuracy}",
                    record.epoch, record.step, record.loss
                );
            }
            None => {}
        }
    }

    pub(super) fn epoch(&self, r: &EpochRecord) {
        let last = r.epoch == self.epochs;
        let thinned = !last && !r.epoch.is_multiple_of(self.epochs.div_ceil(10));
        if self.quiet || (self.bar.is_none() && thinned) {
            return;
        }
        let line = format!(
            "epoch {}: train loss {:.4}{}{}{}",
            r.epoch,
            r.train_loss,
            measured(", accuracy", r.train_accuracy),
            measured(" | test loss", r.test_loss),
            measured(", accuracy", r.test_accuracy),
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `"{label} {value}"`, or nothing for a quantity the run did not measure (NaN).
fn measured(label: &str, value: f32) -> String {
    if value.is_nan() {
        String::new()
    } else {
        format!("{label} {value:.4}")
    }
}
