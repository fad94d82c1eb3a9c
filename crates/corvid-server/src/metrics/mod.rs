//! Prometheus export. [`Metrics`] owns a registry whose every series carries
//! `model_name`; counters and histograms are filled by the engine's [`StatsSink`]
//! callbacks (`sink.rs`), gauges are refreshed from [`EngineSnapshot`] at scrape time
//! ([`Metrics::encode`]), HTTP metrics come from a middleware (`http.rs`).
//!
//! [`StatsSink`]: corvid_engine::StatsSink
//! [`EngineSnapshot`]: corvid_engine::EngineSnapshot

pub mod http;
pub mod names;
mod sink;

use std::collections::HashMap;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use names::MetricDef;

/// The engine configuration shown by `vllm_engine_info` and `vllm:cache_config_info`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineInfo {
    /// Tokens per KV block.
    pub block_size: usize,
    /// KV blocks in the pool.
    pub num_gpu_blocks: usize,
    /// Most sequences per step.
    pub max_num_seqs: usize,
    /// Most tokens per step.
    pub max_num_batched_tokens: usize,
    /// Prefix caching on.
    pub enable_prefix_caching: bool,
    /// Context length.
    pub max_model_len: usize,
}

/// Every metric of the server, registered in one registry.
pub struct Metrics {
    registry: Registry,
    // the user's contract
    pub(crate) request_throughput: IntCounter,
    pub(crate) request_latency: Histogram,
    pub(crate) gpu_utilization: Gauge,
    pub(crate) kv_cache_usage_ratio: Gauge,
    pub(crate) running_requests: IntGauge,
    pub(crate) waiting_requests: IntGauge,
    // more
    pub(crate) ttft: Histogram,
    pub(crate) itl: Histogram,
    pub(crate) queue_time: Histogram,
    pub(crate) prefill_time: Histogram,
    pub(crate) decode_time: Histogram,
    pub(crate) prompt_tokens: IntCounter,
    pub(crate) generation_tokens: IntCounter,
    pub(crate) prefix_cache_hit_tokens: IntCounter,
    pub(crate) request_finished: IntCounterVec,
    pub(crate) request_aborted: IntCounter,
    pub(crate) request_timeout: IntCounter,
    pub(crate) preemptions: IntCounter,
    pub(crate) batch_size: Histogram,
    pub(crate) tokens_per_step: Histogram,
    pub(crate) kv_blocks_used: IntGauge,
    pub(crate) kv_blocks_total: IntGauge,
    pub(crate) kv_bytes: IntGauge,
    pub(crate) resident_memory: IntGauge,
    pub(crate) http_requests: IntCounterVec,
    pub(crate) http_duration: HistogramVec,
    engine_info: IntGaugeVec,
    // vLLM's names
    pub(crate) v_running: IntGauge,
    pub(crate) v_waiting: IntGauge,
    pub(crate) v_gpu_cache_usage: Gauge,
    pub(crate) v_kv_cache_usage: Gauge,
    pub(crate) v_prompt_tokens: IntCounter,
    pub(crate) v_generation_tokens: IntCounter,
    pub(crate) v_preemptions: IntCounter,
    pub(crate) v_request_success: IntCounterVec,
    pub(crate) v_prefix_queries: IntCounter,
    pub(crate) v_prefix_hits: IntCounter,
    pub(crate) v_ttft: Histogram,
    pub(crate) v_tpot: Histogram,
    pub(crate) v_itl: Histogram,
    pub(crate) v_e2e: Histogram,
    pub(crate) v_queue_time: Histogram,
    pub(crate) v_inference_time: Histogram,
    pub(crate) v_prefill_time: Histogram,
    pub(crate) v_decode_time: Histogram,
    pub(crate) v_prompt_len: Histogram,
    pub(crate) v_generation_len: Histogram,
    pub(crate) v_iteration_tokens: Histogram,
    pub(crate) v_params_n: Histogram,
    pub(crate) v_params_max_tokens: Histogram,
    v_cache_config_info: IntGaugeVec,
}

/// The finish reasons pre-created on the `finished_reason` counters, so every series
/// exists (at 0) from the first scrape.
pub const FINISH_REASONS: [&str; 4] = ["stop", "length", "abort", "error"];

struct Builder {
    registry: Registry,
}

impl Builder {
    fn opts(d: MetricDef) -> Opts {
        Opts::new(d.name, d.help)
    }
    fn reg<T: prometheus::core::Collector + Clone + 'static>(&self, m: T) -> T {
        self.registry
            .register(Box::new(m.clone()))
            .expect("metric names are unique");
        m
    }
    fn counter(&self, d: MetricDef) -> IntCounter {
        self.reg(IntCounter::with_opts(Self::opts(d)).expect("valid metric"))
    }
    fn counter_vec(&self, d: MetricDef, labels: &[&str]) -> IntCounterVec {
        self.reg(IntCounterVec::new(Self::opts(d), labels).expect("valid metric"))
    }
    fn gauge(&self, d: MetricDef) -> Gauge {
        self.reg(Gauge::with_opts(Self::opts(d)).expect("valid metric"))
    }
    fn int_gauge(&self, d: MetricDef) -> IntGauge {
        self.reg(IntGauge::with_opts(Self::opts(d)).expect("valid metric"))
    }
    fn info(&self, d: MetricDef, labels: &[&str]) -> IntGaugeVec {
        self.reg(IntGaugeVec::new(Self::opts(d), labels).expect("valid metric"))
    }
    fn histogram(&self, d: MetricDef, buckets: &[f64]) -> Histogram {
        let o = HistogramOpts::new(d.name, d.help).buckets(buckets.to_vec());
        self.reg(Histogram::with_opts(o).expect("valid metric"))
    }
    fn histogram_vec(&self, d: MetricDef, buckets: &[f64], labels: &[&str]) -> HistogramVec {
        let o = HistogramOpts::new(d.name, d.help).buckets(buckets.to_vec());
        self.reg(HistogramVec::new(o, labels).expect("valid metric"))
    }
}

impl Metrics {
    /// Creates and registers every metric, each series labelled `model_name`.
    pub fn new(model_name: &str) -> Metrics {
        use names::*;
        let labels = HashMap::from([("model_name".to_string(), model_name.to_string())]);
        let b = Builder {
            registry: Registry::new_custom(None, Some(labels)).expect("valid label"),
        };
        let m = Metrics {
            request_throughput: b.counter(REQUEST_THROUGHPUT),
            request_latency: b.histogram(REQUEST_LATENCY, LATENCY_BUCKETS),
            gpu_utilization: b.gauge(GPU_UTILIZATION),
            kv_cache_usage_ratio: b.gauge(KV_CACHE_USAGE_RATIO),
            running_requests: b.int_gauge(RUNNING_REQUESTS),
            waiting_requests: b.int_gauge(WAITING_REQUESTS),
            ttft: b.histogram(TIME_TO_FIRST_TOKEN, TOKEN_LATENCY_BUCKETS),
            itl: b.histogram(INTER_TOKEN_LATENCY, TOKEN_LATENCY_BUCKETS),
            queue_time: b.histogram(REQUEST_QUEUE_TIME, LATENCY_BUCKETS),
            prefill_time: b.histogram(REQUEST_PREFILL_TIME, LATENCY_BUCKETS),
            decode_time: b.histogram(REQUEST_DECODE_TIME, LATENCY_BUCKETS),
            prompt_tokens: b.counter(PROMPT_TOKENS),
            generation_tokens: b.counter(GENERATION_TOKENS),
            prefix_cache_hit_tokens: b.counter(PREFIX_CACHE_HIT_TOKENS),
            request_finished: b.counter_vec(REQUEST_FINISHED, &["finished_reason"]),
            request_aborted: b.counter(REQUEST_ABORTED),
            request_timeout: b.counter(REQUEST_TIMEOUT),
            preemptions: b.counter(PREEMPTIONS),
            batch_size: b.histogram(BATCH_SIZE, BATCH_BUCKETS),
            tokens_per_step: b.histogram(TOKENS_PER_STEP, TOKEN_COUNT_BUCKETS),
            kv_blocks_used: b.int_gauge(KV_CACHE_BLOCKS_USED),
            kv_blocks_total: b.int_gauge(KV_CACHE_BLOCKS_CAPACITY),
            kv_bytes: b.int_gauge(KV_CACHE_BYTES),
            resident_memory: b.int_gauge(PROCESS_RESIDENT_MEMORY),
            http_requests: b.counter_vec(HTTP_REQUESTS, &["handler", "method", "status"]),
            http_duration: b.histogram_vec(
                HTTP_REQUEST_DURATION,
                HTTP_BUCKETS,
                &["handler", "method"],
            ),
            engine_info: b.info(
                ENGINE_INFO,
                &[
                    "block_size",
                    "num_gpu_blocks",
                    "max_num_seqs",
                    "max_num_batched_tokens",
                    "enable_prefix_caching",
                    "max_model_len",
                    "version",
                ],
            ),
            v_running: b.int_gauge(V_NUM_REQUESTS_RUNNING),
            v_waiting: b.int_gauge(V_NUM_REQUESTS_WAITING),
            v_gpu_cache_usage: b.gauge(V_GPU_CACHE_USAGE_PERC),
            v_kv_cache_usage: b.gauge(V_KV_CACHE_USAGE_PERC),
            v_prompt_tokens: b.counter(V_PROMPT_TOKENS),
            v_generation_tokens: b.counter(V_GENERATION_TOKENS),
            v_preemptions: b.counter(V_NUM_PREEMPTIONS),
            v_request_success: b.counter_vec(V_REQUEST_SUCCESS, &["finished_reason"]),
            v_prefix_queries: b.counter(V_PREFIX_CACHE_QUERIES),
            v_prefix_hits: b.counter(V_PREFIX_CACHE_HITS),
            v_ttft: b.histogram(V_TIME_TO_FIRST_TOKEN, TOKEN_LATENCY_BUCKETS),
            v_tpot: b.histogram(V_TIME_PER_OUTPUT_TOKEN, TOKEN_LATENCY_BUCKETS),
            v_itl: b.histogram(V_INTER_TOKEN_LATENCY, TOKEN_LATENCY_BUCKETS),
            v_e2e: b.histogram(V_E2E_REQUEST_LATENCY, LATENCY_BUCKETS),
            v_queue_time: b.histogram(V_REQUEST_QUEUE_TIME, LATENCY_BUCKETS),
            v_inference_time: b.histogram(V_REQUEST_INFERENCE_TIME, LATENCY_BUCKETS),
            v_prefill_time: b.histogram(V_REQUEST_PREFILL_TIME, LATENCY_BUCKETS),
            v_decode_time: b.histogram(V_REQUEST_DECODE_TIME, LATENCY_BUCKETS),
            v_prompt_len: b.histogram(V_REQUEST_PROMPT_TOKENS, TOKEN_COUNT_BUCKETS),
            v_generation_len: b.histogram(V_REQUEST_GENERATION_TOKENS, TOKEN_COUNT_BUCKETS),
            v_iteration_tokens: b.histogram(V_ITERATION_TOKENS, TOKEN_COUNT_BUCKETS),
            v_params_n: b.histogram(V_REQUEST_PARAMS_N, N_BUCKETS),
            v_params_max_tokens: b.histogram(V_REQUEST_PARAMS_MAX_TOKENS, TOKEN_COUNT_BUCKETS),
            v_cache_config_info: b.info(
                V_CACHE_CONFIG_INFO,
                &["block_size", "num_gpu_blocks", "enable_prefix_caching"],
            ),
            registry: b.registry,
        };
        for r in FINISH_REASONS {
            m.request_finished.with_label_values(&[r]);
            m.v_request_success.with_label_values(&[r]);
        }
        m
    }

    /// Sets the two info gauges (`vllm_engine_info`, `vllm:cache_config_info`) to 1.
    pub fn set_engine_info(&self, info: &EngineInfo) {
        let (bs, blocks, seqs, batched, prefix, len) = (
            info.block_size.to_string(),
            info.num_gpu_blocks.to_string(),
            info.max_num_seqs.to_string(),
            info.max_num_batched_tokens.to_string(),
            info.enable_prefix_caching.to_string(),
            info.max_model_len.to_string(),
        );
        self.engine_info.reset();
        self.engine_info
            .with_label_values(&[
                &bs,
                &blocks,
                &seqs,
                &batched,
                &prefix,
                &len,
                env!("CARGO_PKG_VERSION"),
            ])
            .set(1);
        self.v_cache_config_info.reset();
        self.v_cache_config_info
            .with_label_values(&[&bs, &blocks, &prefix])
            .set(1);
    }

    /// Sets the scheduler gauges: running and waiting requests, KV blocks and bytes, and
    /// the engine's busy fraction.
    pub fn set_engine_gauges(&self, g: &EngineGauges) {
        let ratio = if g.kv_blocks_total == 0 {
            0.0
        } else {
            g.kv_blocks_used as f64 / g.kv_blocks_total as f64
        };
        self.running_requests.set(g.running as i64);
        self.v_running.set(g.running as i64);
        self.waiting_requests.set(g.waiting as i64);
        self.v_waiting.set(g.waiting as i64);
        self.kv_blocks_used.set(g.kv_blocks_used as i64);
        self.kv_blocks_total.set(g.kv_blocks_total as i64);
        self.kv_cache_usage_ratio.set(ratio);
        self.v_gpu_cache_usage.set(ratio);
        self.v_kv_cache_usage.set(ratio);
        if let Some(b) = g.kv_bytes {
            self.kv_bytes.set(b as i64);
        }
        self.gpu_utilization.set(g.busy_fraction.clamp(0.0, 1.0));
    }

    /// Counts requests cut off by the shutdown deadline.
    pub fn inc_timeouts(&self, n: usize) {
        self.request_timeout.inc_by(n as u64);
    }

    /// Refreshes the process gauges and renders the registry in text format 0.0.4.
    pub fn encode(&self) -> String {
        if let Some(rss) = resident_memory_bytes() {
            self.resident_memory.set(rss as i64);
        }
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("text format is UTF-8")
    }
}

/// Values of the scheduler gauges, from a snapshot or the last step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineGauges {
    /// Requests running.
    pub running: usize,
    /// Requests waiting.
    pub waiting: usize,
    /// KV blocks in use.
    pub kv_blocks_used: usize,
    /// KV blocks in the pool.
    pub kv_blocks_total: usize,
    /// KV pool bytes, when known.
    pub kv_bytes: Option<usize>,
    /// Engine busy fraction over the last 10 s.
    pub busy_fraction: f64,
}

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Resident set size of this process, from `/proc/self/statm` (Linux).
pub fn resident_memory_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_exposed_with_model_name() {
        let m = Metrics::new("m1");
        m.set_engine_info(&EngineInfo {
            block_size: 16,
            num_gpu_blocks: 10,
            ..Default::default()
        });
        m.http_requests
            .with_label_values(&["/health", "GET", "200"])
            .inc();
        m.http_duration
            .with_label_values(&["/health", "GET"])
            .observe(0.01);
        let text = m.encode();
        for d in names::ALL {
            assert!(
                text.contains(&format!("# HELP {} ", d.name)),
                "missing HELP for {}",
                d.name
            );
            let sample = text
                .lines()
                .find(|l| !l.starts_with('#') && l.starts_with(d.name));
            let sample = sample.unwrap_or_else(|| panic!("no sample for {}", d.name));
            assert!(sample.contains("model_name=\"m1\""), "{sample}");
        }
    }

    #[test]
    fn counters_keep_their_exact_names() {
        let m = Metrics::new("m");
        m.request_throughput.inc();
        let text = m.encode();
        assert!(text.contains("# TYPE vllm_request_throughput counter"));
        assert!(text.contains("vllm_request_throughput{model_name=\"m\"} 1"));
        assert!(!text.contains("vllm_request_throughput_total"));
        assert!(text.contains("# TYPE vllm:iteration_tokens_total histogram"));
        assert!(
            text.contains("vllm_request_latency_seconds_bucket{model_name=\"m\",le=\"0.01\"} 0")
        );
        assert!(text
            .contains("vllm_request_finished_total{finished_reason=\"abort\",model_name=\"m\"} 0"));
    }

    #[test]
    fn gauges_from_snapshot() {
        let m = Metrics::new("m");
        m.set_engine_gauges(&EngineGauges {
            running: 3,
            waiting: 2,
            kv_blocks_used: 25,
            kv_blocks_total: 100,
            kv_bytes: Some(1 << 20),
            busy_fraction: 0.5,
        });
        let text = m.encode();
        assert!(text.contains("vllm_kv_cache_usage_ratio{model_name=\"m\"} 0.25"));
        assert!(text.contains("vllm:num_requests_waiting{model_name=\"m\"} 2"));
        assert!(text.contains("vllm_gpu_utilization{model_name=\"m\"} 0.5"));
        assert!(resident_memory_bytes().unwrap() > 0);
    }
}
