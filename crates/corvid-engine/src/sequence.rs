//! One sequence in the engine: its tokens, progress, sampling state, timings and the
//! channel its outputs go to. A request with `n > 1` becomes `n` sequences that share
//! the prompt (and, through the prefix cache, its KV blocks).

use crate::kv::SeqKey;
use crate::output::{FinishReason, RequestOutput, TextTracker, TokenLogprob};
use crate::params::SamplingParams;
use rand::rngs::StdRng;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// When things happened to a sequence, for latency metrics.
#[derive(Clone, Debug)]
pub struct SeqTimes {
    /// Request arrival.
    pub arrival: Instant,
    /// First time it was scheduled.
    pub first_scheduled: Option<Instant>,
    /// First generated token.
    pub first_token: Option<Instant>,
    /// Latest generated token.
    pub last_token: Option<Instant>,
    /// Gaps between consecutive tokens, seconds.
    pub inter_token: Vec<f64>,
}

/// A sequence the engine is working on.
pub struct Sequence {
    /// Engine-unique key (also the KV manager's key).
    pub key: SeqKey,
    /// The caller's request id.
    pub request_id: String,
    /// Index among the request's `n` samples.
    pub index: usize,
    /// Prompt followed by generated tokens.
    pub tokens: Vec<u32>,
    /// Prompt length.
    pub prompt_len: usize,
    /// Tokens whose KV is in the cache.
    pub num_computed: usize,
    /// Prompt tokens reused from the prefix cache (first scheduling).
    pub num_cached: usize,
    /// Generation limit (already clamped to the context).
    pub max_tokens: usize,
    /// Sampling controls.
    pub params: Arc<SamplingParams>,
    /// This sequence's random stream.
    pub rng: StdRng,
    /// Text and stop strings.
    pub text: TextTracker,
    /// Where outputs go.
    pub tx: UnboundedSender<RequestOutput>,
    /// Timings.
    pub times: SeqTimes,
    /// Times it was preempted.
    pub preemptions: usize,
    /// Tokens and logprobs not yet sent.
    pending_tokens: Vec<u32>,
    pending_logprobs: Vec<TokenLogprob>,
}

impl Sequence {
    /// A new waiting sequence.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: SeqKey,
        request_id: String,
        index: usize,
        prompt: Vec<u32>,
        max_tokens: usize,
        params: Arc<SamplingParams>,
        rng: StdRng,
        text: TextTracker,
        tx: UnboundedSender<RequestOutput>,
        arrival: Instant,
    ) -> Self {
        Self {
            key,
            request_id,
            index,
            prompt_len: prompt.len(),
            tokens: prompt,
            num_computed: 0,
            num_cached: 0,
            max_tokens,
            params,
            rng,
            text,
            tx,
            times: SeqTimes {
                arrival,
                first_scheduled: None,
                first_token: None,
                last_token: None,
                inter_token: Vec::new(),
            },
            preemptions: 0,
            pending_tokens: Vec::new(),
            pending_logprobs: Vec::new(),
        }
    }

    /// Generated tokens so far.
    pub fn output(&self) -> &[u32] {
        &self.tokens[self.prompt_len..]
    }

    /// Number of generated tokens.
    pub fn num_output(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    /// Tokens still to run through the model before the next sample.
    pub fn num_uncomputed(&self) -> usize {
        self.tokens.len() - self.num_computed
    }

    /// Records a sampled token (timing included).
    pub fn append(&mut self, token: u32, logprob: Option<TokenLogprob>, now: Instant) {
        self.tokens.push(token);
        if self.times.first_token.is_none() {
            self.times.first_token = Some(now);
        }
        if let Some(prev) = self.times.last_token {
            self.times.inter_token.push((now - prev).as_secs_f64());
        }
        self.times.last_token = Some(now);
        self.pending_tokens.push(token);
        self.pending_logprobs.extend(logprob);
    }

    /// The update with `text` and the pending tokens, addressed to this sequence's
    /// stream, or `None` when there is nothing to say. The engine delivers a step's
    /// updates only after it has recorded the step's statistics ([`Outbox`]).
    pub fn update(&mut self, text: String, finish: Option<FinishReason>) -> Option<Delivery> {
        if text.is_empty() && self.pending_tokens.is_empty() && finish.is_none() {
            return None;
        }
        Some(Delivery {
            tx: self.tx.clone(),
            output: RequestOutput {
                index: self.index,
                text,
                token_ids: std::mem::take(&mut self.pending_tokens),
                logprobs: std::mem::take(&mut self.pending_logprobs),
                finish_reason: finish,
                prompt_tokens: self.prompt_len,
                completion_tokens: self.num_output(),
                cached_tokens: self.num_cached,
            },
        })
    }
}

/// One update on its way to a request's stream.
pub struct Delivery {
    tx: UnboundedSender<RequestOutput>,
    output: RequestOutput,
}

/// A step's updates, held back until the step's statistics are recorded: a client that has
/// its answer and then scrapes `/metrics` must find its request (its prefix-cache hits, its
/// tokens, its completion) already counted, or a router or test that reads the counters
/// right after a response would see them lag by a step.
#[derive(Default)]
pub struct Outbox(Vec<Delivery>);

impl Outbox {
    /// Adds an update, if there is one.
    pub fn push(&mut self, delivery: Option<Delivery>) {
        self.0.extend(delivery);
    }

    /// Sends every update in the order they were made. A send to a dropped stream is
    /// ignored: the engine aborts such requests through the abort path.
    pub fn deliver(self) {
        for Delivery { tx, output } in self.0 {
            let _ = tx.send(output);
        }
    }
}
