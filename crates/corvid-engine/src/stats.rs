//! Plain data the engine produces for observability. The engine fills these structs;
//! exporters (the server's Prometheus metrics, the benchmark) consume them through
//! [`StatsSink`]. The engine itself knows nothing of Prometheus.

use crate::output::FinishReason;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What one engine step did.
#[derive(Clone, Debug, Default)]
pub struct IterationStats {
    /// The engine's state after the step (the gauges exporters show).
    pub state: EngineSnapshot,
    /// Sequences in the step's batch.
    pub batch_size: usize,
    /// Tokens computed in the step.
    pub num_tokens: usize,
    /// Of which prompt (prefill) tokens.
    pub num_prompt_tokens: usize,
    /// Tokens sampled in the step.
    pub num_generation_tokens: usize,
    /// Sequences preempted while scheduling the step.
    pub num_preemptions: usize,
    /// Prompt tokens of newly admitted sequences served from the prefix cache.
    pub num_cached_tokens: usize,
    /// Prompt tokens of newly admitted sequences looked up in the prefix cache.
    pub num_prefix_queries: usize,
    /// Wall time of the step.
    pub step_seconds: f64,
}

/// The life of one finished request.
#[derive(Clone, Debug)]
pub struct RequestStats {
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens over all its samples.
    pub generation_tokens: usize,
    /// Generated tokens of its longest sample (vLLM's
    /// `vllm:request_max_num_generation_tokens`; equals `generation_tokens` when n = 1).
    pub max_sample_tokens: usize,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
    /// Arrival to finish.
    pub e2e_seconds: f64,
    /// Arrival to first scheduled.
    pub queue_seconds: f64,
    /// First scheduled to first token.
    pub prefill_seconds: f64,
    /// First token to last token.
    pub decode_seconds: f64,
    /// Arrival to first token.
    pub ttft_seconds: Option<f64>,
    /// Gaps between consecutive tokens.
    pub inter_token_seconds: Vec<f64>,
    /// Samples requested.
    pub n: usize,
    /// Token limit in force.
    pub max_tokens: usize,
}

/// Receives engine statistics (called on the engine thread: keep it cheap).
pub trait StatsSink: Send + Sync {
    /// After every step.
    fn on_step(&self, s: &IterationStats);
    /// When a request's last sample finishes.
    fn on_request_finished(&self, r: &RequestStats);
    /// After a step that changed the prefix cache, when the engine records KV-cache
    /// events ([`crate::EngineArgs::enable_kv_cache_events`]), in the order they happened.
    fn on_kv_events(&self, _events: &[crate::kv::KvCacheEvent]) {}
}

/// The engine's changing state, readable at any time (e.g. at scrape time) and
/// carried by every [`IterationStats`]; what does not change lives in
/// [`crate::EngineConfig`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineSnapshot {
    /// Sequences running.
    pub running: usize,
    /// Sequences waiting.
    pub waiting: usize,
    /// KV blocks in use.
    pub kv_blocks_used: usize,
    /// KV blocks in the pool (the denominator of KV usage).
    pub kv_blocks_total: usize,
    /// Fraction of the last ten seconds spent in steps.
    pub busy_fraction: f64,
}

/// Busy time over a sliding window.
pub struct BusyWindow {
    window: Duration,
    started: Instant,
    steps: VecDeque<(Instant, Duration)>,
    busy: Duration,
}

impl BusyWindow {
    /// A window of the given length.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            started: Instant::now(),
            steps: VecDeque::new(),
            busy: Duration::ZERO,
        }
    }

    /// Records a step that ended at `end` and took `took`.
    pub fn record(&mut self, end: Instant, took: Duration) {
        self.steps.push_back((end, took));
        self.busy += took;
    }

    /// Busy fraction of the window ending `now`.
    pub fn fraction(&mut self, now: Instant) -> f64 {
        while let Some(&(end, took)) = self.steps.front() {
            if now.duration_since(end) > self.window {
                self.busy -= took;
                self.steps.pop_front();
            } else {
                break;
            }
        }
        let span = now
            .duration_since(self.started)
            .min(self.window)
            .as_secs_f64();
        if span <= 0.0 {
            0.0
        } else {
            (self.busy.as_secs_f64() / span).min(1.0)
        }
    }
}
