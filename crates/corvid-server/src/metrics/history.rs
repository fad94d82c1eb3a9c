//! The dashboard's memory: once a second the same families `/metrics` exports are
//! gathered from the registry (after the same gauge refresh a scrape does) and the values
//! of a fixed set of series are appended to a ring of the last [`HISTORY_SAMPLES`]
//! samples (15 minutes). `/dashboard/api/series` reads it; the page computes `rate()` and
//! `histogram_quantile()` from these raw samples exactly as PromQL does from a 1 s scrape.
//!
//! Memory is bounded and allocated once, at the first sample: `HISTORY_SAMPLES × (8 +
//! 8 × columns)` bytes of samples plus the column names. With the default buckets there
//! are 91 columns (see [`WANTED`]), so 900 × 736 B = 662,400 B ≈ 647 KiB; bucket overrides
//! change the count by their number of bounds ([`History::bytes`] tells the exact figure,
//! and `/dashboard/api/series` reports it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::proto::{MetricFamily, MetricType};
use serde::Serialize;

use super::format::number;
use super::names::{self, MetricDef};

/// Samples kept: 15 minutes at one a second.
pub const HISTORY_SAMPLES: usize = 900;
/// How often the sampler gathers.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Which parts of a family the dashboard keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Every series of a counter or gauge (all label sets).
    Value,
    /// Every `_bucket`, `_sum` and `_count` of a histogram.
    Buckets,
    /// Only `_sum` and `_count` (averages).
    SumCount,
}

/// The families the dashboard charts, corvid's own names only (the `vllm:` copies carry
/// the same values).
const WANTED: &[(MetricDef, Part)] = &[
    (names::REQUEST_THROUGHPUT, Part::Value),
    (names::PROMPT_TOKENS, Part::Value),
    (names::GENERATION_TOKENS, Part::Value),
    (names::PREFIX_CACHE_HIT_TOKENS, Part::Value),
    (names::REQUEST_FINISHED, Part::Value),
    (names::REQUEST_ABORTED, Part::Value),
    (names::REQUEST_TIMEOUT, Part::Value),
    (names::PREEMPTIONS, Part::Value),
    (names::RUNNING_REQUESTS, Part::Value),
    (names::WAITING_REQUESTS, Part::Value),
    (names::KV_CACHE_USAGE_RATIO, Part::Value),
    (names::KV_CACHE_BLOCKS_USED, Part::Value),
    (names::KV_CACHE_BLOCKS_CAPACITY, Part::Value),
    (names::KV_CACHE_BYTES, Part::Value),
    (names::GPU_UTILIZATION, Part::Value),
    (names::PROCESS_RESIDENT_MEMORY, Part::Value),
    (names::REQUEST_LATENCY, Part::Buckets),
    (names::TIME_TO_FIRST_TOKEN, Part::Buckets),
    (names::INTER_TOKEN_LATENCY, Part::Buckets),
    (names::REQUEST_QUEUE_TIME, Part::Buckets),
    (names::BATCH_SIZE, Part::SumCount),
    (names::TOKENS_PER_STEP, Part::SumCount),
];

/// The ring of samples (see the module docs for its bound).
pub struct History {
    ring: Mutex<Ring>,
    /// Identifies this process's history: the page starts over when it changes (a
    /// restarted server numbers its samples from 0 again).
    boot: String,
    capacity: usize,
}

#[derive(Default)]
struct Ring {
    /// Series keys as `/metrics` spells them, without `model_name` (`name{k="v"}`); fixed
    /// by the first sample.
    columns: Vec<String>,
    index: HashMap<String, usize>,
    /// `vllm_engine_info`'s labels (the engine configuration), from the last sample.
    info: Vec<(String, String)>,
    /// Sample times, Unix milliseconds, `capacity` slots.
    times: Vec<i64>,
    /// `capacity × columns.len()` values, row-major.
    values: Vec<f64>,
    /// Sequence number of the next sample; sample `s` lives in slot `s % capacity`.
    next: u64,
}

/// What `/dashboard/api/series` answers: samples `[first, next)` column by column.
#[derive(Serialize)]
pub struct Series {
    /// The [`History`]'s identity; a different one means the server restarted.
    pub boot: String,
    /// Milliseconds between samples.
    pub interval_ms: u64,
    /// Samples kept at most.
    pub capacity: usize,
    /// Bytes the ring holds (times and values).
    pub bytes: usize,
    /// Sequence number of the first sample returned.
    pub first: u64,
    /// Sequence number of the next sample to come (ask for `since=next`).
    pub next: u64,
    /// The series keys; only in a full answer (no or a stale `since`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// The engine configuration (`vllm_engine_info`'s labels).
    pub info: Vec<(String, String)>,
    /// Sample times, Unix milliseconds.
    pub t: Vec<i64>,
    /// One array per column, aligned with `t` (`null` for a non-finite value).
    pub v: Vec<Vec<f64>>,
}

impl History {
    /// An empty history of `capacity` samples (memory is taken at the first sample).
    pub fn new(capacity: usize) -> History {
        let now = unix_ms();
        History {
            ring: Mutex::new(Ring::default()),
            boot: format!("{now:x}-{:x}", std::process::id()),
            capacity: capacity.max(2),
        }
    }

    /// Bytes held by the ring's samples (0 before the first sample).
    pub fn bytes(&self) -> usize {
        let r = self.ring.lock().expect("history lock");
        r.times.capacity() * 8 + r.values.capacity() * 8
    }

    /// Appends one sample taken at `t_ms` from gathered `families`. The first call fixes
    /// the columns; series that appear later are not kept (the wanted ones all exist from
    /// the start), a column missing from a later gather keeps its last value.
    pub fn record(&self, t_ms: i64, families: &[MetricFamily]) {
        let mut r = self.ring.lock().expect("history lock");
        let first = r.columns.is_empty();
        let mut row: Vec<(String, f64)> = Vec::with_capacity(r.columns.len().max(128));
        for mf in families {
            let name = mf.get_name();
            if name == names::ENGINE_INFO.name {
                if let Some(m) = mf.get_metric().first() {
                    r.info = m
                        .get_label()
                        .iter()
                        .filter(|l| l.get_name() != "model_name")
                        .map(|l| (l.get_name().to_string(), l.get_value().to_string()))
                        .collect();
                }
                continue;
            }
            let Some(&(_, part)) = WANTED.iter().find(|(d, _)| d.name == name) else {
                continue;
            };
            for m in mf.get_metric() {
                let labels: String = m
                    .get_label()
                    .iter()
                    .filter(|l| l.get_name() != "model_name")
                    .map(|l| format!("{}=\"{}\"", l.get_name(), l.get_value()))
                    .collect::<Vec<_>>()
                    .join(",");
                let key = |suffix: &str, extra: Option<String>| {
                    let all: Vec<&str> = [labels.as_str()]
                        .into_iter()
                        .chain(extra.as_deref())
                        .filter(|s| !s.is_empty())
                        .collect();
                    if all.is_empty() {
                        format!("{name}{suffix}")
                    } else {
                        format!("{name}{suffix}{{{}}}", all.join(","))
                    }
                };
                match mf.get_field_type() {
                    MetricType::COUNTER => row.push((key("", None), m.get_counter().get_value())),
                    MetricType::GAUGE => row.push((key("", None), m.get_gauge().get_value())),
                    MetricType::HISTOGRAM => {
                        let h = m.get_histogram();
                        if part == Part::Buckets {
                            let mut inf = false;
                            for b in h.get_bucket() {
                                inf |= b.get_upper_bound() == f64::INFINITY;
                                let le = format!("le=\"{}\"", number(b.get_upper_bound()));
                                row.push((
                                    key("_bucket", Some(le)),
                                    b.get_cumulative_count() as f64,
                                ));
                            }
                            if !inf {
                                let le = "le=\"+Inf\"".to_string();
                                row.push((key("_bucket", Some(le)), h.get_sample_count() as f64));
                            }
                        }
                        row.push((key("_sum", None), h.get_sample_sum()));
                        row.push((key("_count", None), h.get_sample_count() as f64));
                    }
                    _ => {}
                }
            }
        }
        if first {
            if row.is_empty() {
                return;
            }
            r.columns = row.iter().map(|(k, _)| k.clone()).collect();
            r.index = r
                .columns
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i))
                .collect();
            r.times = vec![0; self.capacity];
            r.values = vec![0.0; self.capacity * r.columns.len()];
        }
        let n = r.columns.len();
        let slot = (r.next % self.capacity as u64) as usize;
        if r.next > 0 {
            // carry the previous values (a series absent from this gather keeps its last)
            let prev = ((r.next - 1) % self.capacity as u64) as usize;
            let (src, dst) = (prev * n, slot * n);
            if src != dst {
                r.values.copy_within(src..src + n, dst);
            }
        }
        for (k, v) in row {
            if let Some(&i) = r.index.get(&k) {
                r.values[slot * n + i] = v;
            }
        }
        r.times[slot] = t_ms;
        r.next += 1;
    }

    /// The samples from sequence number `since` on (all kept ones when `since` is `None`,
    /// older than the ring, or from another `boot`). Column names are sent with full
    /// answers only.
    pub fn series(&self, since: Option<u64>, boot: Option<&str>) -> Series {
        let r = self.ring.lock().expect("history lock");
        let oldest = r.next.saturating_sub(self.capacity as u64);
        let delta =
            since.filter(|&s| boot == Some(self.boot.as_str()) && s >= oldest && s <= r.next);
        let first = delta.unwrap_or(oldest);
        let n = r.columns.len();
        let count = (r.next - first) as usize;
        let mut t = Vec::with_capacity(count);
        let mut v = vec![Vec::with_capacity(count); n];
        for s in first..r.next {
            let slot = (s % self.capacity as u64) as usize;
            t.push(r.times[slot]);
            for (c, col) in v.iter_mut().enumerate() {
                col.push(r.values[slot * n + c]);
            }
        }
        Series {
            boot: self.boot.clone(),
            interval_ms: SAMPLE_INTERVAL.as_millis() as u64,
            capacity: self.capacity,
            bytes: r.times.capacity() * 8 + r.values.capacity() * 8,
            first,
            next: r.next,
            columns: delta.is_none().then(|| r.columns.clone()),
            info: r.info.clone(),
            t,
            v,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metrics, MetricsOptions};
    use corvid_engine::{EngineSnapshot, StatsSink};

    fn metrics() -> Metrics {
        Metrics::new("m", &MetricsOptions::default()).unwrap()
    }

    fn col<'a>(s: &'a Series, cols: &[String], key: &str) -> &'a [f64] {
        let i = cols
            .iter()
            .position(|c| c == key)
            .unwrap_or_else(|| panic!("no column {key} in {cols:?}"));
        &s.v[i]
    }

    #[test]
    fn columns_are_the_exposed_series_and_the_bound_holds() {
        let m = metrics();
        let h = History::new(HISTORY_SAMPLES);
        h.record(1000, &m.gather());
        let s = h.series(None, None);
        let cols = s.columns.clone().unwrap();
        assert_eq!(cols.len(), 91, "{cols:?}");
        // every column is a series of the text exposition, spelled the same way
        let text = m.encode(crate::metrics::Format::Text);
        let exposed: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let key = l.rsplit_once(' ').unwrap().0;
                key.replace(",model_name=\"m\"", "")
                    .replace("model_name=\"m\",", "")
                    .replace("{model_name=\"m\"}", "")
            })
            .collect();
        for c in &cols {
            assert!(exposed.contains(c), "{c} is not exposed");
        }
        assert_eq!(h.bytes(), HISTORY_SAMPLES * (8 + 8 * 91));
        assert_eq!(h.bytes(), 662_400);
        assert!(cols.contains(&"vllm_request_latency_seconds_bucket{le=\"+Inf\"}".to_string()));
        assert!(
            cols.contains(&"vllm_request_finished_total{finished_reason=\"error\"}".to_string())
        );
    }

    #[test]
    fn ring_keeps_the_last_capacity_samples_and_answers_deltas() {
        let m = metrics();
        let h = History::new(5);
        for i in 0..12 {
            m.request_throughput.inc();
            m.set_engine_gauges(&EngineSnapshot {
                running: i,
                ..Default::default()
            });
            h.record(1000 * i as i64, &m.gather());
        }
        let full = h.series(None, None);
        let cols = full.columns.clone().unwrap();
        assert_eq!((full.first, full.next), (7, 12));
        assert_eq!(full.t, vec![7000, 8000, 9000, 10000, 11000]);
        assert_eq!(
            col(&full, &cols, "vllm_request_throughput"),
            [8.0, 9.0, 10.0, 11.0, 12.0]
        );
        assert_eq!(
            col(&full, &cols, "vllm_running_requests"),
            [7.0, 8.0, 9.0, 10.0, 11.0]
        );
        let d = h.series(Some(10), Some(&full.boot));
        assert!(d.columns.is_none());
        assert_eq!((d.first, d.next, d.t.len()), (10, 12, 2));
        assert_eq!(d.v.len(), cols.len());
        // a stale sequence number or another boot gets the full answer
        assert!(h.series(Some(3), Some(&full.boot)).columns.is_some());
        assert!(h.series(Some(10), Some("other")).columns.is_some());
        assert_eq!(h.bytes(), 5 * (8 + 8 * cols.len()));
    }

    #[test]
    fn histograms_are_kept_bucket_by_bucket() {
        let m = metrics();
        let h = History::new(10);
        m.on_request_finished(&corvid_engine::RequestStats {
            finish_reason: corvid_engine::FinishReason::Stop,
            prompt_tokens: 3,
            generation_tokens: 2,
            max_sample_tokens: 2,
            cached_tokens: 0,
            e2e_seconds: 0.3,
            queue_seconds: 0.01,
            prefill_seconds: 0.1,
            decode_seconds: 0.2,
            ttft_seconds: Some(0.07),
            inter_token_seconds: vec![0.05],
            n: 1,
            max_tokens: 2,
        });
        h.record(5, &m.gather());
        let s = h.series(None, None);
        let cols = s.columns.clone().unwrap();
        let b = |le: &str| {
            col(
                &s,
                &cols,
                &format!("vllm_request_latency_seconds_bucket{{le=\"{le}\"}}"),
            )[0]
        };
        assert_eq!((b("0.25"), b("0.5"), b("+Inf")), (0.0, 1.0, 1.0));
        assert_eq!(col(&s, &cols, "vllm_request_latency_seconds_sum"), [0.3]);
        assert_eq!(col(&s, &cols, "vllm_batch_size_count"), [0.0]);
        assert!(!cols.iter().any(|c| c.starts_with("vllm_batch_size_bucket")));
        assert_eq!(
            col(
                &s,
                &cols,
                "vllm_request_finished_total{finished_reason=\"stop\"}"
            ),
            [1.0]
        );
    }
}
