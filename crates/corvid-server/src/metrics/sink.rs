//! The engine's stats callbacks → Prometheus counters, histograms and step gauges.
//! Runs on the engine thread: only atomic updates, no locks held across calls.

use corvid_engine::{IterationStats, RequestStats, StatsSink};

use super::Metrics;

impl StatsSink for Metrics {
    fn on_step(&self, s: &IterationStats) {
        self.batch_size.observe(s.batch_size as f64);
        self.tokens_per_step.observe(s.num_tokens as f64);
        // Prompt tokens of the step's requests: prefilled plus served from the prefix
        // cache, so the counter sums the `usage.prompt_tokens` clients see (vLLM's rule).
        let prompt = (s.num_prompt_tokens + s.num_cached_tokens) as u64;
        self.prompt_tokens.inc_by(prompt);
        self.generation_tokens
            .inc_by(s.num_generation_tokens as u64);
        self.preemptions.inc_by(s.num_preemptions as u64);
        self.prefix_cache_hit_tokens
            .inc_by(s.num_cached_tokens as u64);
        if let Some(v) = &self.vllm {
            v.on_step(s, prompt);
        }
        self.set_engine_gauges(&s.state);
    }

    fn on_request_finished(&self, r: &RequestStats) {
        let reason = r.finish_reason.as_str();
        self.request_throughput.inc();
        self.request_finished.with_label_values(&[reason]).inc();
        if reason == "abort" {
            self.request_aborted.inc();
        }
        self.request_latency.observe(r.e2e_seconds);
        self.queue_time.observe(r.queue_seconds);
        self.prefill_time.observe(r.prefill_seconds);
        self.decode_time.observe(r.decode_seconds);
        if let Some(t) = r.ttft_seconds {
            self.ttft.observe(t);
        }
        for &t in &r.inter_token_seconds {
            self.itl.observe(t);
        }
        if let Some(v) = &self.vllm {
            v.on_request_finished(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Format, MetricsOptions};
    use corvid_engine::{EngineSnapshot, FinishReason};

    fn finished(reason: FinishReason) -> RequestStats {
        RequestStats {
            finish_reason: reason,
            prompt_tokens: 10,
            generation_tokens: 5,
            max_sample_tokens: 5,
            cached_tokens: 4,
            e2e_seconds: 0.3,
            queue_seconds: 0.01,
            prefill_seconds: 0.05,
            decode_seconds: 0.2,
            ttft_seconds: Some(0.06),
            inter_token_seconds: vec![0.05; 4],
            n: 1,
            max_tokens: 16,
        }
    }

    #[test]
    fn request_finished_fills_counters_and_histograms() {
        let m = Metrics::new("m", &MetricsOptions::default()).unwrap();
        m.on_request_finished(&finished(FinishReason::Stop));
        m.on_request_finished(&finished(FinishReason::Abort));
        let t = m.encode(Format::Text);
        assert!(
            t.contains("vllm_request_throughput{model_name=\"m\"} 2"),
            "{t}"
        );
        assert!(t.contains("vllm_request_aborted_total{model_name=\"m\"} 1"));
        assert!(
            t.contains("vllm_request_finished_total{finished_reason=\"stop\",model_name=\"m\"} 1")
        );
        assert!(t.contains(
            "vllm:request_success_total{engine=\"0\",finished_reason=\"abort\",model_name=\"m\"} 1"
        ));
        assert!(t.contains("vllm_request_latency_seconds_count{model_name=\"m\"} 2"));
        assert!(t.contains("vllm_inter_token_latency_seconds_count{model_name=\"m\"} 8"));
    }

    #[test]
    fn step_fills_token_counters_and_gauges() {
        let m = Metrics::new("m", &MetricsOptions::default()).unwrap();
        m.on_step(&IterationStats {
            state: EngineSnapshot {
                running: 2,
                waiting: 1,
                kv_blocks_used: 5,
                kv_blocks_total: 10,
                busy_fraction: 0.9,
            },
            batch_size: 2,
            num_tokens: 12,
            num_prompt_tokens: 10,
            num_generation_tokens: 2,
            num_preemptions: 1,
            num_cached_tokens: 4,
            num_prefix_queries: 10,
            step_seconds: 0.02,
        });
        let t = m.encode(Format::Text);
        assert!(t.contains("vllm_prompt_tokens_total{model_name=\"m\"} 14"));
        assert!(t.contains("vllm:prompt_tokens_total{engine=\"0\",model_name=\"m\"} 14"));
        assert!(t.contains("vllm:generation_tokens_total{engine=\"0\",model_name=\"m\"} 2"));
        assert!(t.contains("vllm_preemptions_total{model_name=\"m\"} 1"));
        assert!(t.contains("vllm_running_requests{model_name=\"m\"} 2"));
        assert!(t.contains("vllm_kv_cache_usage_ratio{model_name=\"m\"} 0.5"));
        assert!(t.contains("vllm_batch_size_count{model_name=\"m\"} 1"));
        assert!(t.contains("vllm_prefix_cache_hit_tokens_total{model_name=\"m\"} 4"));
        assert!(t.contains("vllm:prefix_cache_queries_total{engine=\"0\",model_name=\"m\"} 10"));
    }
}
