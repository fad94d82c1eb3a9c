//! Progress of a model load, in tensor groups (embedding, each layer, output head).
//!
//! With the `progress` feature (the `corvid` binary enables it) it is a terminal bar;
//! without it, a library user (a server test, a Python process) gets `tracing` debug
//! lines instead of terminal escape codes, and this crate no indicatif dependency.

/// The load's progress display.
#[cfg(feature = "progress")]
pub(crate) struct LoadProgress(indicatif::ProgressBar);

#[cfg(feature = "progress")]
impl LoadProgress {
    /// Starts a bar of `total` groups labelled with the model file's `name`.
    pub(crate) fn new(name: String, total: u64) -> Self {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "loading {msg} [{bar:30}] {pos}/{len} tensors groups",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_message(name);
        Self(bar)
    }

    /// One more group loaded.
    pub(crate) fn inc(&self) {
        self.0.inc(1);
    }

    /// Removes the bar (the loader logs the finished load).
    pub(crate) fn finish(self) {
        self.0.finish_and_clear();
    }
}

/// The load's progress display.
#[cfg(not(feature = "progress"))]
pub(crate) struct LoadProgress {
    total: u64,
    done: std::cell::Cell<u64>,
}

#[cfg(not(feature = "progress"))]
impl LoadProgress {
    /// Starts counting `total` groups of the model file `name`.
    pub(crate) fn new(name: String, total: u64) -> Self {
        tracing::debug!("loading {name}: {total} tensor groups");
        Self {
            total,
            done: std::cell::Cell::new(0),
        }
    }

    /// One more group loaded.
    pub(crate) fn inc(&self) {
        self.done.set(self.done.get() + 1);
        tracing::debug!("loaded tensor group {}/{}", self.done.get(), self.total);
    }

    /// Ends the count (the loader logs the finished load).
    pub(crate) fn finish(self) {}
}
