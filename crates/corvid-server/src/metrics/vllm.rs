//! vLLM's own `vllm:` series, kept apart so `--disable-vllm-compat-metrics` can leave
//! them out entirely (not registered, not updated). They mirror corvid's own series and
//! are fed by the same engine callbacks and gauges.

use corvid_engine::{IterationStats, RequestStats};
use prometheus::{Gauge, GaugeVec, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

use super::builder::Builder;
use super::names::*;
use super::FINISH_REASONS;

/// Every `vllm:` metric.
pub(super) struct VllmMetrics {
    running: IntGauge,
    waiting: IntGauge,
    gpu_cache_usage: Gauge,
    kv_cache_usage: Gauge,
    prompt_tokens: IntCounter,
    generation_tokens: IntCounter,
    preemptions: IntCounter,
    request_success: IntCounterVec,
    prefix_queries: IntCounter,
    prefix_hits: IntCounter,
    ttft: Histogram,
    tpot: Histogram,
    itl: Histogram,
    e2e: Histogram,
    queue_time: Histogram,
    inference_time: Histogram,
    prefill_time: Histogram,
    decode_time: Histogram,
    prompt_len: Histogram,
    generation_len: Histogram,
    max_sample_len: Histogram,
    iteration_tokens: Histogram,
    params_n: Histogram,
    params_max_tokens: Histogram,
    cache_config_info: IntGaugeVec,
    lora_requests_info: GaugeVec,
}

impl VllmMetrics {
    /// Creates and registers every `vllm:` metric.
    pub(super) fn new(b: &Builder) -> VllmMetrics {
        let m = VllmMetrics {
            running: b.int_gauge(V_NUM_REQUESTS_RUNNING),
            waiting: b.int_gauge(V_NUM_REQUESTS_WAITING),
            gpu_cache_usage: b.gauge(V_GPU_CACHE_USAGE_PERC),
            kv_cache_usage: b.gauge(V_KV_CACHE_USAGE_PERC),
            prompt_tokens: b.counter(V_PROMPT_TOKENS),
            generation_tokens: b.counter(V_GENERATION_TOKENS),
            preemptions: b.counter(V_NUM_PREEMPTIONS),
            request_success: b.counter_vec(V_REQUEST_SUCCESS, &["finished_reason"]),
            prefix_queries: b.counter(V_PREFIX_CACHE_QUERIES),
            prefix_hits: b.counter(V_PREFIX_CACHE_HITS),
            ttft: b.histogram(V_TIME_TO_FIRST_TOKEN, TOKEN_LATENCY_BUCKETS),
            tpot: b.histogram(V_TIME_PER_OUTPUT_TOKEN, TOKEN_LATENCY_BUCKETS),
            itl: b.histogram(V_INTER_TOKEN_LATENCY, TOKEN_LATENCY_BUCKETS),
            e2e: b.histogram(V_E2E_REQUEST_LATENCY, LATENCY_BUCKETS),
            queue_time: b.histogram(V_REQUEST_QUEUE_TIME, LATENCY_BUCKETS),
            inference_time: b.histogram(V_REQUEST_INFERENCE_TIME, LATENCY_BUCKETS),
            prefill_time: b.histogram(V_REQUEST_PREFILL_TIME, LATENCY_BUCKETS),
            decode_time: b.histogram(V_REQUEST_DECODE_TIME, LATENCY_BUCKETS),
            prompt_len: b.histogram(V_REQUEST_PROMPT_TOKENS, TOKEN_COUNT_BUCKETS),
            generation_len: b.histogram(V_REQUEST_GENERATION_TOKENS, TOKEN_COUNT_BUCKETS),
            max_sample_len: b.histogram(V_REQUEST_MAX_NUM_GENERATION_TOKENS, TOKEN_COUNT_BUCKETS),
            iteration_tokens: b.histogram(V_ITERATION_TOKENS, TOKEN_COUNT_BUCKETS),
            params_n: b.histogram(V_REQUEST_PARAMS_N, N_BUCKETS),
            params_max_tokens: b.histogram(V_REQUEST_PARAMS_MAX_TOKENS, TOKEN_COUNT_BUCKETS),
            cache_config_info: b.info(
                V_CACHE_CONFIG_INFO,
                &[
                    "block_size",
                    "cache_dtype",
                    "num_gpu_blocks",
                    "enable_prefix_caching",
                ],
            ),
            lora_requests_info: b.gauge_vec(
                V_LORA_REQUESTS_INFO,
                &["max_lora", "running_lora_adapters", "waiting_lora_adapters"],
            ),
        };
        for r in FINISH_REASONS {
            m.request_success.with_label_values(&[r]);
        }
        m.stamp_lora(super::history::unix_ms() as f64 / 1000.0);
        m
    }

    /// Sets `vllm:cache_config_info` to 1 with the KV configuration.
    pub(super) fn set_cache_config(
        &self,
        block_size: &str,
        dtype: &str,
        blocks: &str,
        prefix: &str,
    ) {
        self.cache_config_info.reset();
        self.cache_config_info
            .with_label_values(&[block_size, dtype, blocks, prefix])
            .set(1);
    }

    /// Sets the scheduler gauges, and stamps the (empty) LoRA adapter lists with `now`
    /// (Unix seconds).
    pub(super) fn set_gauges(&self, running: i64, waiting: i64, kv_ratio: f64, now: f64) {
        self.stamp_lora(now);
        self.running.set(running);
        self.waiting.set(waiting);
        self.gpu_cache_usage.set(kv_ratio);
        self.kv_cache_usage.set(kv_ratio);
    }

    /// `vllm:lora_requests_info` at `now` (Unix seconds): no adapter loaded or waiting.
    fn stamp_lora(&self, now: f64) {
        self.lora_requests_info
            .with_label_values(&["0", "", ""])
            .set(now);
    }

    /// Counts one engine step whose requests had `prompt_tokens` prompt tokens
    /// (prefilled or cached).
    pub(super) fn on_step(&self, s: &IterationStats, prompt_tokens: u64) {
        self.iteration_tokens.observe(s.num_tokens as f64);
        self.prompt_tokens.inc_by(prompt_tokens);
        self.generation_tokens
            .inc_by(s.num_generation_tokens as u64);
        self.prefix_hits.inc_by(s.num_cached_tokens as u64);
        self.prefix_queries.inc_by(s.num_prefix_queries as u64);
        self.preemptions.inc_by(s.num_preemptions as u64);
    }

    /// Counts one finished request.
    pub(super) fn on_request_finished(&self, r: &RequestStats) {
        self.request_success
            .with_label_values(&[r.finish_reason.as_str()])
            .inc();
        self.e2e.observe(r.e2e_seconds);
        self.queue_time.observe(r.queue_seconds);
        self.prefill_time.observe(r.prefill_seconds);
        self.decode_time.observe(r.decode_seconds);
        self.inference_time
            .observe(r.prefill_seconds + r.decode_seconds);
        if let Some(t) = r.ttft_seconds {
            self.ttft.observe(t);
        }
        for &t in &r.inter_token_seconds {
            self.itl.observe(t);
            self.tpot.observe(t);
        }
        self.prompt_len.observe(r.prompt_tokens as f64);
        self.generation_len.observe(r.generation_tokens as f64);
        self.max_sample_len.observe(r.max_sample_tokens as f64);
        self.params_n.observe(r.n as f64);
        self.params_max_tokens.observe(r.max_tokens as f64);
    }
}
