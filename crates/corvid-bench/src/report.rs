//! The serving benchmark's result: aggregate numbers computed from per-request
//! results, printed as a table and written as JSON.

use crate::client::RequestResult;
use crate::stats::Summary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Aggregate results of one measured run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServeMetrics {
    /// Requests that completed.
    pub completed: usize,
    /// Requests that failed.
    pub failed: usize,
    /// Failures by class.
    pub errors: BTreeMap<String, usize>,
    /// First-seen message of each failure class.
    pub error_examples: BTreeMap<String, String>,
    /// Wall time from the first send to the last completion, seconds.
    pub duration_s: f64,
    /// Prompt tokens of completed requests.
    pub total_input_tokens: usize,
    /// Generated tokens of completed requests.
    pub total_output_tokens: usize,
    /// Completed requests per second.
    pub request_throughput: f64,
    /// Generated tokens per second.
    pub output_throughput: f64,
    /// Prompt + generated tokens per second.
    pub total_token_throughput: f64,
    /// Time to first token, ms.
    pub ttft_ms: Summary,
    /// Time per output token after the first, per request, ms.
    pub tpot_ms: Summary,
    /// Gaps between streamed chunks over all requests, ms.
    pub itl_ms: Summary,
    /// End-to-end latency, ms.
    pub e2el_ms: Summary,
    /// Completed requests whose server sent no `usage` (token counts are chunk counts).
    pub usage_missing: usize,
}

impl ServeMetrics {
    /// Aggregates per-request results over a run of `duration_s` seconds.
    pub fn compute(results: &[RequestResult], duration_s: f64) -> Self {
        let mut m = Self {
            duration_s,
            ..Default::default()
        };
        let (mut ttft, mut tpot, mut itl, mut e2el) = (vec![], vec![], vec![], vec![]);
        for r in results {
            if !r.success {
                m.failed += 1;
                let kind = r.error_kind.clone().unwrap_or_else(|| "unknown".into());
                *m.errors.entry(kind.clone()).or_default() += 1;
                m.error_examples
                    .entry(kind)
                    .or_insert_with(|| r.error.clone().unwrap_or_default());
                continue;
            }
            m.completed += 1;
            m.usage_missing += usize::from(!r.usage_reported);
            m.total_input_tokens += r.prompt_tokens;
            m.total_output_tokens += r.output_tokens;
            if let Some(t) = r.ttft {
                ttft.push(t);
                if r.output_tokens > 1 {
                    tpot.push((r.latency - t) / (r.output_tokens - 1) as f64);
                }
            }
            itl.extend_from_slice(&r.itl);
            e2el.push(r.latency);
        }
        if duration_s > 0.0 {
            m.request_throughput = m.completed as f64 / duration_s;
            m.output_throughput = m.total_output_tokens as f64 / duration_s;
            m.total_token_throughput =
                (m.total_input_tokens + m.total_output_tokens) as f64 / duration_s;
        }
        m.ttft_ms = Summary::from_seconds(&ttft);
        m.tpot_ms = Summary::from_seconds(&tpot);
        m.itl_ms = Summary::from_seconds(&itl);
        m.e2el_ms = Summary::from_seconds(&e2el);
        m
    }

    /// The human-readable table.
    pub fn table(&self, title: &str) -> String {
        let mut s = String::new();
        let line = |s: &mut String, k: &str, v: String| s.push_str(&format!("{k:<40}{v:>14}\n"));
        s.push_str(&format!("{:=^54}\n", format!(" {title} ")));
        line(&mut s, "Successful requests:", self.completed.to_string());
        line(&mut s, "Failed requests:", self.failed.to_string());
        for (k, n) in &self.errors {
            line(&mut s, &format!("  {k}:"), n.to_string());
        }
        line(
            &mut s,
            "Benchmark duration (s):",
            format!("{:.2}", self.duration_s),
        );
        line(
            &mut s,
            "Total input tokens:",
            self.total_input_tokens.to_string(),
        );
        line(
            &mut s,
            "Total generated tokens:",
            self.total_output_tokens.to_string(),
        );
        line(
            &mut s,
            "Request throughput (req/s):",
            format!("{:.2}", self.request_throughput),
        );
        line(
            &mut s,
            "Output token throughput (tok/s):",
            format!("{:.2}", self.output_throughput),
        );
        line(
            &mut s,
            "Total token throughput (tok/s):",
            format!("{:.2}", self.total_token_throughput),
        );
        for (name, abbrev, sm) in [
            ("Time to First Token", "TTFT", &self.ttft_ms),
            (
                "Time per Output Token (excl. 1st token)",
                "TPOT",
                &self.tpot_ms,
            ),
            ("Inter-token Latency", "ITL", &self.itl_ms),
            ("End-to-end Latency", "E2EL", &self.e2el_ms),
        ] {
            s.push_str(&format!("{:-^54}\n", format!(" {name} ")));
            line(
                &mut s,
                &format!("Mean {abbrev} (ms):"),
                format!("{:.2}", sm.mean),
            );
            line(
                &mut s,
                &format!("P50 {abbrev} (ms):"),
                format!("{:.2}", sm.p50),
            );
            line(
                &mut s,
                &format!("P90 {abbrev} (ms):"),
                format!("{:.2}", sm.p90),
            );
            line(
                &mut s,
                &format!("P99 {abbrev} (ms):"),
                format!("{:.2}", sm.p99),
            );
        }
        if self.usage_missing > 0 {
            line(
                &mut s,
                "Requests without usage (counted chunks):",
                self.usage_missing.to_string(),
            );
        }
        s.push_str(&"=".repeat(54));
        s.push('\n');
        s
    }
}
