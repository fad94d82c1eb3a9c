//! The engine core (vLLM's `EngineCore`): one step is schedule → one batched forward
//! → sample → record statistics → emit. It runs on the engine thread and owns the model
//! and the KV cache; the queues belong to the [`Scheduler`].

use crate::config::EngineConfig;
use crate::kv::KvManager;
use crate::output::FinishReason;
use crate::sampler::sample;
use crate::scheduler::Scheduler;
use crate::sequence::{Outbox, Sequence};
use crate::stats::{BusyWindow, EngineSnapshot, IterationStats, RequestStats, StatsSink};
use corvid_model::{CausalLm, KvCache, Logits};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Aggregates a request's samples until the last one finishes.
struct RequestAgg {
    remaining: usize,
    n: usize,
    generation_tokens: usize,
    max_sample_tokens: usize,
}

/// State the engine thread publishes for its handles.
pub struct Shared {
    /// Latest snapshot.
    pub snapshot: Mutex<EngineSnapshot>,
    /// Requests added and not yet finished.
    pub unfinished: AtomicUsize,
    /// Sequences waiting in the scheduler (read by admission control without locking).
    pub waiting: AtomicUsize,
    /// Sequences admitted by a handle whose `Add` the engine thread has not applied yet:
    /// admission counts them with [`Shared::waiting`], so a burst of concurrent requests
    /// cannot overshoot the waiting limit between two engine steps.
    pub pending: AtomicUsize,
    /// Set once the engine thread has died (a panic in a step); never cleared.
    pub dead: tokio::sync::watch::Sender<bool>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            snapshot: Mutex::default(),
            unfinished: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            dead: tokio::sync::watch::Sender::new(false),
        }
    }
}

/// Model, KV cache and scheduler, stepped by the engine loop.
pub struct EngineCore {
    model: Arc<dyn CausalLm>,
    kv_cache: KvCache,
    /// Every step's logits, in one buffer kept across steps.
    logits: Logits,
    sched: Scheduler,
    eos: Vec<u32>,
    sink: Option<Arc<dyn StatsSink>>,
    busy: BusyWindow,
    log: StatsLog,
    requests: HashMap<String, RequestAgg>,
    shared: Arc<Shared>,
}

impl EngineCore {
    /// A core over a loaded model, sized by `config`; `eos` ends generation.
    pub fn new(
        model: Arc<dyn CausalLm>,
        config: &EngineConfig,
        eos: Vec<u32>,
        sink: Option<Arc<dyn StatsSink>>,
        shared: Arc<Shared>,
    ) -> Self {
        let mut kv_cache = KvCache::new(
            model.config(),
            config.block_size,
            config.num_blocks,
            config.kv_cache_dtype.resolve(),
        );
        if config.commit_kv_cache {
            let start = Instant::now();
            kv_cache.commit_pages();
            tracing::info!(
                bytes = config.kv_bytes,
                seconds = start.elapsed().as_secs_f64(),
                "KV cache pages committed"
            );
        }
        let mut kv = KvManager::with_windows(
            config.num_blocks,
            config.block_size,
            config.kv_windows.clone(),
            config.enable_prefix_caching,
        );
        if config.enable_kv_cache_events {
            kv.record_events();
        }
        let mut core = Self {
            logits: Logits::new(model.config().vocab_size),
            model,
            kv_cache,
            sched: Scheduler::new(config.scheduler(), kv),
            eos,
            sink,
            busy: BusyWindow::new(Duration::from_secs(10)),
            log: StatsLog::new(Instant::now()),
            requests: HashMap::new(),
            shared,
        };
        core.publish(Instant::now());
        core
    }

    /// True when there is nothing to do.
    pub fn is_idle(&self) -> bool {
        self.sched.is_idle()
    }

    /// Queues the sequences of one request.
    pub fn add(&mut self, seqs: Vec<Sequence>) {
        if let Some(first) = seqs.first() {
            self.requests.insert(
                first.request_id.clone(),
                RequestAgg {
                    remaining: seqs.len(),
                    n: seqs.len(),
                    generation_tokens: 0,
                    max_sample_tokens: 0,
                },
            );
        }
        let n = seqs.len();
        self.sched.add(seqs);
        self.publish(Instant::now());
        // Counted as waiting now (published above), so no longer pending.
        self.shared.pending.fetch_sub(n, Ordering::Relaxed);
    }

    /// Aborts every sequence of a request.
    pub fn abort(&mut self, request_id: &str) {
        let mut outbox = Outbox::default();
        for mut seq in self.sched.abort(request_id) {
            outbox.push(seq.update(String::new(), Some(FinishReason::Abort)));
            self.finished(&seq, FinishReason::Abort, Instant::now());
        }
        self.publish(Instant::now());
        outbox.deliver();
    }

    /// Runs one step. Returns false if there was nothing to run.
    pub fn step(&mut self) -> bool {
        let start = Instant::now();
        let plan = self.sched.schedule(start);
        if plan.scheduled.is_empty() {
            self.publish(start);
            return false;
        }
        let result = self.model.forward(
            &self.sched.model_inputs(&plan),
            &mut self.kv_cache,
            &mut self.logits,
        );
        let now = Instant::now();
        let logits = match result {
            Ok(()) => Some(&mut self.logits),
            Err(e) => {
                tracing::error!("model step failed: {e}");
                None
            }
        };
        let eos = &self.eos;
        let mut generated = 0;
        let mut outbox = Outbox::default();
        let finished = self.sched.update_from_output(&plan, logits, |seq, row| {
            generated += 1;
            Self::advance(seq, row, eos, now, &mut outbox)
        });
        for (mut seq, reason) in finished {
            if reason == FinishReason::Error {
                outbox.push(seq.update(String::new(), Some(reason)));
            }
            self.finished(&seq, reason, now);
        }
        let took = now - start;
        self.busy.record(now, took);
        let stats = IterationStats {
            state: self.snapshot(now),
            batch_size: plan.scheduled.len(),
            num_tokens: plan.num_tokens(),
            num_prompt_tokens: plan.num_prompt_tokens,
            num_generation_tokens: generated,
            num_preemptions: plan.num_preempted,
            num_cached_tokens: plan.num_cached_tokens,
            num_prefix_queries: plan.num_queried_tokens,
            step_seconds: took.as_secs_f64(),
        };
        self.log.record(&stats, now);
        let kv_events = self.sched.take_kv_events();
        if let Some(sink) = &self.sink {
            sink.on_step(&stats);
            if !kv_events.is_empty() {
                sink.on_kv_events(&kv_events);
            }
        }
        self.publish(now);
        outbox.deliver();
        true
    }

    /// Samples the next token of a sequence whose logits are ready, puts its text in the
    /// step's outbox, and says whether it finished.
    fn advance(
        seq: &mut Sequence,
        logits: &mut [f32],
        eos: &[u32],
        now: Instant,
        outbox: &mut Outbox,
    ) -> Option<FinishReason> {
        let p = Arc::clone(&seq.params);
        let before_min = seq.num_output() < p.min_tokens;
        let mut banned: Vec<u32> = Vec::new();
        if before_min {
            if !p.ignore_eos {
                banned.extend_from_slice(eos);
            }
            banned.extend_from_slice(&p.stop_token_ids);
        }
        let (token, lp) = {
            let (prompt, output) = seq.tokens.split_at(seq.prompt_len);
            sample(logits, &p, prompt, output, &banned, &mut seq.rng)
        };
        seq.append(token, lp, now);
        let check_stops = !before_min;
        let mut text = String::new();
        let mut reason = None;
        if (!p.ignore_eos && eos.contains(&token)) || p.stop_token_ids.contains(&token) {
            reason = Some(FinishReason::Stop);
        } else {
            let (t, stopped) = seq.text.push(token, check_stops);
            text = t;
            if stopped {
                reason = Some(FinishReason::Stop);
            }
        }
        if reason.is_none() && seq.num_output() >= seq.max_tokens {
            reason = Some(FinishReason::Length);
        }
        if reason.is_some() {
            text.push_str(&seq.text.finish(check_stops));
        }
        outbox.push(seq.update(text, reason));
        reason
    }

    fn finished(&mut self, seq: &Sequence, reason: FinishReason, now: Instant) {
        let Some(agg) = self.requests.get_mut(&seq.request_id) else {
            return;
        };
        agg.remaining -= 1;
        agg.generation_tokens += seq.num_output();
        agg.max_sample_tokens = agg.max_sample_tokens.max(seq.num_output());
        if agg.remaining > 0 {
            return;
        }
        let agg = self.requests.remove(&seq.request_id).expect("present");
        self.shared.unfinished.fetch_sub(1, Ordering::Relaxed);
        let Some(sink) = &self.sink else {
            return;
        };
        let t = &seq.times;
        let secs = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) if b >= a => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        sink.on_request_finished(&RequestStats {
            finish_reason: reason,
            prompt_tokens: seq.prompt_len,
            generation_tokens: agg.generation_tokens,
            max_sample_tokens: agg.max_sample_tokens,
            cached_tokens: seq.num_cached,
            e2e_seconds: (now - t.arrival).as_secs_f64(),
            queue_seconds: secs(Some(t.arrival), t.first_scheduled.or(Some(now))),
            prefill_seconds: secs(t.first_scheduled, t.first_token),
            decode_seconds: secs(t.first_token, t.last_token),
            ttft_seconds: t.first_token.map(|f| (f - t.arrival).as_secs_f64()),
            inter_token_seconds: t.inter_token.clone(),
            n: agg.n,
            max_tokens: seq.max_tokens,
        });
    }

    /// The engine's state right now (answers [`crate::EngineHandle::snapshot_now`]).
    pub fn snapshot_now(&mut self) -> EngineSnapshot {
        self.snapshot(Instant::now())
    }

    /// The engine's state at `now`.
    fn snapshot(&mut self, now: Instant) -> EngineSnapshot {
        EngineSnapshot {
            running: self.sched.num_running(),
            waiting: self.sched.num_waiting(),
            kv_blocks_used: self.sched.kv_blocks_used(),
            kv_blocks_total: self.sched.kv_blocks_total(),
            busy_fraction: self.busy.fraction(now),
        }
    }

    /// Makes the state at `now` visible to the handles.
    fn publish(&mut self, now: Instant) {
        let snap = self.snapshot(now);
        self.shared.waiting.store(snap.waiting, Ordering::Relaxed);
        *self.shared.snapshot.lock().expect("snapshot lock") = snap;
    }
}

/// Token counts since the last log line, for vLLM-style periodic stats logging.
struct StatsLog {
    since: Instant,
    prompt_tokens: usize,
    generation_tokens: usize,
    queried_tokens: usize,
    cached_tokens: usize,
}

/// How often a busy engine logs its one-line summary.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

impl StatsLog {
    fn new(now: Instant) -> Self {
        Self {
            since: now,
            prompt_tokens: 0,
            generation_tokens: 0,
            queried_tokens: 0,
            cached_tokens: 0,
        }
    }

    /// Accumulates a step; every [`LOG_INTERVAL`] logs throughput, queue and cache state.
    fn record(&mut self, s: &IterationStats, now: Instant) {
        self.prompt_tokens += s.num_prompt_tokens;
        self.generation_tokens += s.num_generation_tokens;
        self.queried_tokens += s.num_prefix_queries;
        self.cached_tokens += s.num_cached_tokens;
        let elapsed = now.duration_since(self.since);
        if elapsed < LOG_INTERVAL {
            return;
        }
        let secs = elapsed.as_secs_f64();
        let hit_rate = if self.queried_tokens > 0 {
            100.0 * self.cached_tokens as f64 / self.queried_tokens as f64
        } else {
            0.0
        };
        tracing::info!(
            "avg prompt throughput: {:.1} tokens/s, avg generation throughput: {:.1} tokens/s, running: {} reqs, waiting: {} reqs, KV cache usage: {:.1}%, prefix cache hit rate: {:.1}%",
            self.prompt_tokens as f64 / secs,
            self.generation_tokens as f64 / secs,
            s.state.running,
            s.state.waiting,
            100.0 * s.state.kv_blocks_used as f64 / s.state.kv_blocks_total.max(1) as f64,
            hit_rate,
        );
        *self = Self::new(now);
    }
}
