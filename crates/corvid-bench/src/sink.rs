//! A [`StatsSink`] that keeps what the offline benchmark reports: peaks of the running
//! batch and of KV blocks in use, preemptions, and every finished request's timings.

use corvid_engine::{IterationStats, RequestStats, StatsSink};
use std::sync::Mutex;

/// What the engine reported during a run.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    /// Most sequences in one step's running set.
    pub peak_running: usize,
    /// Most KV blocks in use after a step.
    pub peak_blocks_used: usize,
    /// KV blocks in the pool.
    pub blocks_total: usize,
    /// Sequences preempted.
    pub preemptions: usize,
    /// Engine steps.
    pub steps: usize,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
    /// Finished requests, in finishing order.
    pub requests: Vec<RequestStats>,
}

/// Collects engine statistics behind a mutex (the engine thread calls it per step).
#[derive(Default)]
pub struct CollectingSink {
    state: Mutex<Collected>,
}

impl CollectingSink {
    /// Waits (at most `timeout`) until `n` finished requests are recorded: the engine
    /// reports a request's stats just after sending its last output.
    pub fn wait_for_requests(&self, n: usize, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.state.lock().expect("sink lock").requests.len() >= n {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Returns what was collected and starts afresh.
    pub fn take(&self) -> Collected {
        std::mem::take(&mut *self.state.lock().expect("sink lock"))
    }
}

impl StatsSink for CollectingSink {
    fn on_step(&self, s: &IterationStats) {
        let mut c = self.state.lock().expect("sink lock");
        c.peak_running = c.peak_running.max(s.state.running.max(s.batch_size));
        c.peak_blocks_used = c.peak_blocks_used.max(s.state.kv_blocks_used);
        c.blocks_total = s.state.kv_blocks_total;
        c.preemptions += s.num_preemptions;
        c.cached_tokens += s.num_cached_tokens;
        c.steps += 1;
    }

    fn on_request_finished(&self, r: &RequestStats) {
        self.state
            .lock()
            .expect("sink lock")
            .requests
            .push(r.clone());
    }
}
