//! Prometheus export. [`Metrics`] owns a registry whose every series carries
//! `model_name`; counters and histograms are filled by the engine's [`StatsSink`]
//! callbacks (`sink.rs`), gauges are refreshed from [`EngineSnapshot`] at scrape time
//! ([`Metrics::encode`]), HTTP metrics come from a middleware (`http.rs`). vLLM's own
//! `vllm:` series live in `vllm.rs` (optional), the two exposition formats in `format.rs`,
//! the built-in dashboard's bounded 15-minute history of the same series in `history.rs`.
//!
//! [`StatsSink`]: corvid_engine::StatsSink
//! [`EngineSnapshot`]: corvid_engine::EngineSnapshot

pub mod buckets;
mod builder;
pub mod format;
pub mod history;
pub mod http;
pub mod names;
mod sink;
mod vllm;

use std::collections::HashMap;

use corvid_engine::{EngineConfig, EngineSnapshot};

use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Registry, TextEncoder,
};

use buckets::HistogramBuckets;
use builder::Builder;
pub use format::Format;
use history::{History, HISTORY_SAMPLES};
use vllm::VllmMetrics;

/// What `--disable-vllm-compat-metrics` and `--histogram-buckets` change.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsOptions {
    /// Also export vLLM's own `vllm:` names (on by default).
    pub vllm_compat: bool,
    /// Bucket overrides by histogram name (the last one for a name wins).
    pub buckets: Vec<HistogramBuckets>,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            vllm_compat: true,
            buckets: Vec::new(),
        }
    }
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
    pub(crate) request_rejected: IntCounterVec,
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
    /// vLLM's `vllm:` series, unless disabled.
    vllm: Option<VllmMetrics>,
    /// The last 15 minutes of the dashboard's series, sampled once a second.
    pub history: History,
}

/// The finish reasons pre-created on the `finished_reason` counters, so every series
/// exists (at 0) from the first scrape.
pub const FINISH_REASONS: [&str; 4] = ["stop", "length", "abort", "error"];

/// The reasons pre-created on `vllm_request_rejected_total` (the codes of the 503s).
pub const REJECT_REASONS: [&str; 2] = ["queue_full", "service_unavailable"];

impl Metrics {
    /// Creates and registers every metric, each series labelled `model_name`.
    /// Fails only when `model_name` cannot be a label value.
    pub fn new(model_name: &str, opts: &MetricsOptions) -> anyhow::Result<Metrics> {
        use names::*;
        let labels = HashMap::from([("model_name".to_string(), model_name.to_string())]);
        let b = Builder {
            registry: Registry::new_custom(None, Some(labels))?,
            overrides: &opts.buckets,
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
            request_rejected: b.counter_vec(REQUEST_REJECTED, &["reason"]),
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
            vllm: opts.vllm_compat.then(|| VllmMetrics::new(&b)),
            history: History::new(HISTORY_SAMPLES),
            registry: b.registry,
        };
        for r in FINISH_REASONS {
            m.request_finished.with_label_values(&[r]);
        }
        for r in REJECT_REASONS {
            m.request_rejected.with_label_values(&[r]);
        }
        Ok(m)
    }

    /// Publishes the engine's fixed configuration: the two info gauges
    /// (`vllm_engine_info`, `vllm:cache_config_info`, set to 1) and the KV pool's bytes.
    pub fn set_engine_info(&self, info: &EngineConfig) {
        let (bs, blocks, seqs, batched, prefix, len) = (
            info.block_size.to_string(),
            info.num_blocks.to_string(),
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
        if let Some(v) = &self.vllm {
            v.set_cache_config(&bs, info.kv_cache_dtype.name(), &blocks, &prefix);
        }
        self.kv_bytes.set(info.kv_bytes as i64);
    }

    /// Sets the scheduler gauges from the engine's state: running and waiting requests,
    /// KV blocks, and the engine's busy fraction.
    pub fn set_engine_gauges(&self, g: &EngineSnapshot) {
        let ratio = if g.kv_blocks_total == 0 {
            0.0
        } else {
            g.kv_blocks_used as f64 / g.kv_blocks_total as f64
        };
        self.running_requests.set(g.running as i64);
        self.waiting_requests.set(g.waiting as i64);
        self.kv_blocks_used.set(g.kv_blocks_used as i64);
        self.kv_blocks_total.set(g.kv_blocks_total as i64);
        self.kv_cache_usage_ratio.set(ratio);
        if let Some(v) = &self.vllm {
            let now = history::unix_ms() as f64 / 1000.0;
            v.set_gauges(g.running as i64, g.waiting as i64, ratio, now);
        }
        self.gpu_utilization.set(g.busy_fraction.clamp(0.0, 1.0));
    }

    /// Counts requests cut off by the shutdown deadline.
    pub fn inc_timeouts(&self, n: usize) {
        self.request_timeout.inc_by(n as u64);
    }

    /// Refreshes the process gauges and gathers every family (what `/metrics` renders).
    pub fn gather(&self) -> Vec<MetricFamily> {
        if let Some(rss) = resident_memory_bytes() {
            self.resident_memory.set(rss as i64);
        }
        self.registry.gather()
    }

    /// Refreshes the process gauges and renders the registry in `format`.
    pub fn encode(&self, format: Format) -> String {
        let families = self.gather();
        match format {
            Format::OpenMetrics => format::encode_openmetrics(&families),
            Format::Text => {
                let mut buf = Vec::new();
                TextEncoder::new()
                    .encode(&families, &mut buf)
                    .expect("text encoding cannot fail");
                String::from_utf8(buf).expect("text format is UTF-8")
            }
        }
    }
}

/// Resident set size of this process, from `/proc/self/statm` (Linux).
pub fn resident_memory_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small engine configuration for the info gauges.
    fn engine_config() -> EngineConfig {
        EngineConfig {
            served_model_name: "m".into(),
            max_model_len: 64,
            num_blocks: 10,
            kv_windows: vec![None],
            block_size: 16,
            kv_cache_dtype: Default::default(),
            kv_bytes: 1 << 20,
            max_num_seqs: 4,
            max_num_batched_tokens: 64,
            enable_prefix_caching: true,
            max_waiting_requests: 8,
            vocab_size: 320,
            enable_kv_cache_events: false,
            tensor_parallel_size: 1,
            commit_kv_cache: false,
        }
    }

    #[test]
    fn every_name_is_exposed_with_model_name() {
        let m = Metrics::new("m1", &MetricsOptions::default()).unwrap();
        m.set_engine_info(&engine_config());
        m.http_requests
            .with_label_values(&["/health", "GET", "200"])
            .inc();
        m.http_duration
            .with_label_values(&["/health", "GET"])
            .observe(0.01);
        let text = m.encode(Format::Text);
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
            assert_eq!(
                sample.contains("engine=\"0\""),
                d.is_vllm_compat(),
                "{sample}"
            );
        }
    }

    /// The series (name and labels, without values) of an exposition.
    fn series(text: &str) -> Vec<String> {
        let mut s: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').unwrap().0.to_string())
            .collect();
        s.sort();
        s
    }

    fn busy_metrics(opts: &MetricsOptions) -> Metrics {
        let m = Metrics::new("m", opts).unwrap();
        m.set_engine_info(&engine_config());
        m.request_throughput.inc_by(3);
        m.prompt_tokens.inc_by(7);
        m.request_latency.observe(0.3);
        m.http_requests
            .with_label_values(&["/metrics", "GET", "200"])
            .inc();
        m
    }

    #[test]
    fn openmetrics_has_the_same_series_as_text() {
        let m = busy_metrics(&MetricsOptions::default());
        let text = m.encode(Format::Text);
        let om = m.encode(Format::OpenMetrics);
        assert_eq!(series(&text), series(&om));
        assert!(om.ends_with("\n# EOF\n") && om.matches("# EOF").count() == 1);
        assert!(!om.contains("_created"));
        // the user's counter keeps its exact sample name, typed `unknown`
        assert!(om.contains("# TYPE vllm_request_throughput unknown\n"));
        assert!(om.contains("\nvllm_request_throughput{model_name=\"m\"} 3\n"));
        // counters: family without `_total`, samples with it (colon names too)
        assert!(om.contains("# TYPE vllm_prompt_tokens counter\n"));
        assert!(om.contains("\nvllm_prompt_tokens_total{model_name=\"m\"} 7\n"));
        assert!(om.contains("# HELP vllm:request_success Count of"));
        assert!(om.contains("# TYPE vllm:request_success counter\n"));
        assert!(om.contains(
            "vllm:request_success_total{engine=\"0\",finished_reason=\"stop\",model_name=\"m\"} 0"
        ));
        assert!(om.contains("# TYPE vllm:iteration_tokens_total histogram\n"));
        assert!(om.contains("vllm_request_latency_seconds_bucket{model_name=\"m\",le=\"0.5\"} 1"));
        assert!(om.contains("vllm_request_latency_seconds_bucket{model_name=\"m\",le=\"+Inf\"} 1"));
        assert!(om.contains("vllm_request_latency_seconds_count{model_name=\"m\"} 1"));
        // every sample belongs to the family declared just before it
        let mut family = ("", "");
        for line in om.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let (f, k) = t.split_once(' ').unwrap();
                family = (f, k);
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let ok = match family.1 {
                    "counter" => name == format!("{}_total", family.0),
                    "histogram" => ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{}{s}", family.0)),
                    _ => name == family.0,
                };
                assert!(ok, "{line} after # TYPE {} {}", family.0, family.1);
            }
        }
    }

    #[test]
    fn vllm_compat_series_can_be_left_out() {
        let opts = MetricsOptions {
            vllm_compat: false,
            ..Default::default()
        };
        let m = busy_metrics(&opts);
        m.set_engine_gauges(&EngineSnapshot::default());
        for f in [Format::Text, Format::OpenMetrics] {
            let t = m.encode(f);
            assert!(!t.contains("vllm:"), "{t}");
            assert!(t.contains("vllm_request_throughput{"));
        }
    }

    #[test]
    fn histogram_buckets_can_be_overridden() {
        let opts = MetricsOptions {
            buckets: vec![
                "vllm_request_latency_seconds=9,10".parse().unwrap(),
                "vllm_request_latency_seconds=0.5,2".parse().unwrap(),
            ],
            ..Default::default()
        };
        let t = busy_metrics(&opts).encode(Format::Text);
        let les = |name: &str| -> Vec<String> {
            t.lines()
                .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
                .map(|l| {
                    l.split("le=\"")
                        .nth(1)
                        .unwrap()
                        .split('"')
                        .next()
                        .unwrap()
                        .into()
                })
                .collect()
        };
        assert_eq!(les("vllm_request_latency_seconds"), ["0.5", "2", "+Inf"]);
        assert_eq!(
            les("vllm:e2e_request_latency_seconds").len(),
            names::LATENCY_BUCKETS.len() + 1
        );
    }

    #[test]
    fn counters_keep_their_exact_names() {
        let m = Metrics::new("m", &MetricsOptions::default()).unwrap();
        m.request_throughput.inc();
        let text = m.encode(Format::Text);
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
        let m = Metrics::new("m", &MetricsOptions::default()).unwrap();
        m.set_engine_info(&engine_config());
        m.set_engine_gauges(&EngineSnapshot {
            running: 3,
            waiting: 2,
            kv_blocks_used: 25,
            kv_blocks_total: 100,
            busy_fraction: 0.5,
        });
        let text = m.encode(Format::Text);
        assert!(text.contains("vllm_kv_cache_usage_ratio{model_name=\"m\"} 0.25"));
        assert!(text.contains("vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 2"));
        assert!(text.contains("vllm_gpu_utilization{model_name=\"m\"} 0.5"));
        assert!(
            text.contains("vllm_kv_cache_bytes{model_name=\"m\"} 1048576"),
            "{text}"
        );
        assert!(resident_memory_bytes().unwrap() > 0);
    }
}
