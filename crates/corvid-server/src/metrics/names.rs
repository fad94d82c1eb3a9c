//! Every metric name corvid exports, defined once, with its help text.
//! The names are a contract (docs/metrics.md): dashboards, alerts and autoscalers in
//! `deploy/` query them. Counters keep their exact names — `vllm_request_throughput`
//! has no `_total` suffix, so `rate(vllm_request_throughput[1m])` works as documented.

/// What kind of series a metric exposes; `--histogram-buckets` accepts only histogram
/// names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonically increasing count.
    Counter,
    /// A value that goes up and down (info gauges included).
    Gauge,
    /// Bucketed observations (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// A metric's name, kind and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// The exposed name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The `# HELP` text.
    pub help: &'static str,
}

impl MetricDef {
    /// True for vLLM's own `vllm:` names (dropped by `--disable-vllm-compat-metrics`,
    /// labelled `engine`).
    pub fn is_vllm_compat(&self) -> bool {
        self.name.starts_with("vllm:")
    }
}

macro_rules! defs {
    ($($(#[$m:meta])* $id:ident = $kind:ident $name:literal, $help:literal;)*) => {
        $( $(#[$m])* pub const $id: MetricDef = MetricDef { name: $name, kind: Kind::$kind, help: $help }; )*
        /// Every metric definition, in exposition order.
        pub const ALL: &[MetricDef] = &[$($id),*];
    };
}

defs! {
    // ---- the user's contract ----
    /// Counter of finished requests.
REQUEST_THROUGHPUT = Counter "vllm_request_throughput", "Finished requests (counter; rate() gives requests per second).";
    /// Histogram of end-to-end latency.
REQUEST_LATENCY = Histogram "vllm_request_latency_seconds", "End-to-end request latency, arrival to last token, in seconds.";
    /// Gauge of the engine's busy fraction.
GPU_UTILIZATION = Gauge "vllm_gpu_utilization", "Fraction (0-1) of the last 10 s the engine's compute device (on CPU: the engine thread) spent running model steps.";
    /// Gauge of KV usage.
KV_CACHE_USAGE_RATIO = Gauge "vllm_kv_cache_usage_ratio", "KV cache blocks in use / KV cache blocks total (0-1).";
    /// Gauge of running requests.
RUNNING_REQUESTS = Gauge "vllm_running_requests", "Requests in the running batch.";
    /// Gauge of waiting requests.
WAITING_REQUESTS = Gauge "vllm_waiting_requests", "Requests waiting to be scheduled.";
    // ---- more, same style ----
    /// Histogram of TTFT.
TIME_TO_FIRST_TOKEN = Histogram "vllm_time_to_first_token_seconds", "Time from arrival to the first generated token, in seconds.";
    /// Histogram of ITL.
INTER_TOKEN_LATENCY = Histogram "vllm_inter_token_latency_seconds", "Time between consecutive generated tokens of a request, in seconds.";
    /// Histogram of queue time.
REQUEST_QUEUE_TIME = Histogram "vllm_request_queue_time_seconds", "Time a request waited before its first scheduling, in seconds.";
    /// Histogram of prefill time.
REQUEST_PREFILL_TIME = Histogram "vllm_request_prefill_time_seconds", "Time a request spent in prefill, in seconds.";
    /// Histogram of decode time.
REQUEST_DECODE_TIME = Histogram "vllm_request_decode_time_seconds", "Time a request spent in decode, in seconds.";
    /// Counter of prompt tokens.
PROMPT_TOKENS = Counter "vllm_prompt_tokens_total", "Prompt tokens processed.";
    /// Counter of generated tokens.
GENERATION_TOKENS = Counter "vllm_generation_tokens_total", "Tokens generated.";
    /// Counter of prefix-cache hit tokens.
PREFIX_CACHE_HIT_TOKENS = Counter "vllm_prefix_cache_hit_tokens_total", "Prompt tokens served from the prefix cache.";
    /// Counter of finished requests by reason.
REQUEST_FINISHED = Counter "vllm_request_finished_total", "Finished requests by finished_reason (stop, length, abort, error).";
    /// Counter of aborted requests.
REQUEST_ABORTED = Counter "vllm_request_aborted_total", "Requests aborted (client disconnected or server gave up).";
    /// Counter of timed-out requests.
REQUEST_TIMEOUT = Counter "vllm_request_timeout_total", "Requests cut off by a deadline (still running when --shutdown-timeout expired).";
    /// Counter of requests refused with 503 (overload shows here first).
REQUEST_REJECTED = Counter "vllm_request_rejected_total", "Requests refused with HTTP 503 before reaching the engine, by reason (queue_full: the waiting queue is full; service_unavailable: loading, draining or the engine failed).";
    /// Counter of preemptions.
PREEMPTIONS = Counter "vllm_preemptions_total", "Sequences preempted (KV blocks reclaimed, recomputed later).";
    /// Histogram of batch size per step.
BATCH_SIZE = Histogram "vllm_batch_size", "Sequences per engine step.";
    /// Histogram of tokens per step.
TOKENS_PER_STEP = Histogram "vllm_tokens_per_step", "Tokens (prefill + decode) per engine step.";
    /// Gauge of KV blocks in use.
KV_CACHE_BLOCKS_USED = Gauge "vllm_kv_cache_blocks_used", "KV cache blocks in use.";
    /// Gauge of KV blocks in the pool.
KV_CACHE_BLOCKS_CAPACITY = Gauge "vllm_kv_cache_blocks_capacity", "KV cache blocks in the pool.";
    /// Gauge of KV pool bytes.
KV_CACHE_BYTES = Gauge "vllm_kv_cache_bytes", "Bytes reserved for the KV cache pool.";
    /// Gauge of resident memory.
PROCESS_RESIDENT_MEMORY = Gauge "vllm_process_resident_memory_bytes", "Resident memory of the server process, in bytes.";
    /// Counter of HTTP requests.
HTTP_REQUESTS = Counter "vllm_http_requests_total", "HTTP requests by handler (matched route), method and status.";
    /// Histogram of HTTP request duration.
HTTP_REQUEST_DURATION = Histogram "vllm_http_request_duration_seconds", "HTTP request duration until the response head, by handler and method, in seconds.";
    /// Info gauge of the engine configuration.
ENGINE_INFO = Gauge "vllm_engine_info", "Engine configuration (value 1).";
    // ---- vLLM's own names ----
    /// vLLM: running requests.
V_NUM_REQUESTS_RUNNING = Gauge "vllm:num_requests_running", "Number of requests in model execution batches.";
    /// vLLM: waiting requests.
V_NUM_REQUESTS_WAITING = Gauge "vllm:num_requests_waiting", "Number of requests waiting to be processed.";
    /// vLLM (v0 name): KV usage.
V_GPU_CACHE_USAGE_PERC = Gauge "vllm:gpu_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.";
    /// vLLM: KV usage.
V_KV_CACHE_USAGE_PERC = Gauge "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.";
    /// vLLM: prompt tokens.
V_PROMPT_TOKENS = Counter "vllm:prompt_tokens_total", "Number of prefill tokens processed.";
    /// vLLM: generation tokens.
V_GENERATION_TOKENS = Counter "vllm:generation_tokens_total", "Number of generation tokens processed.";
    /// vLLM: preemptions.
V_NUM_PREEMPTIONS = Counter "vllm:num_preemptions_total", "Cumulative number of preemptions from the engine.";
    /// vLLM: finished requests by reason.
V_REQUEST_SUCCESS = Counter "vllm:request_success_total", "Count of successfully processed requests.";
    /// vLLM: prefix cache queries (tokens).
V_PREFIX_CACHE_QUERIES = Counter "vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens.";
    /// vLLM: prefix cache hits (tokens).
V_PREFIX_CACHE_HITS = Counter "vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens.";
    /// vLLM: TTFT.
V_TIME_TO_FIRST_TOKEN = Histogram "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.";
    /// vLLM: TPOT.
V_TIME_PER_OUTPUT_TOKEN = Histogram "vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.";
    /// vLLM: ITL.
V_INTER_TOKEN_LATENCY = Histogram "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.";
    /// vLLM: e2e latency.
    V_E2E_REQUEST_LATENCY = Histogram "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.";
    /// vLLM: queue time.
V_REQUEST_QUEUE_TIME = Histogram "vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.";
    /// vLLM: inference time.
V_REQUEST_INFERENCE_TIME = Histogram "vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.";
    /// vLLM: prefill time.
V_REQUEST_PREFILL_TIME = Histogram "vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.";
    /// vLLM: decode time.
V_REQUEST_DECODE_TIME = Histogram "vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.";
    /// vLLM: prompt length.
V_REQUEST_PROMPT_TOKENS = Histogram "vllm:request_prompt_tokens", "Number of prefill tokens processed.";
    /// vLLM: generation length.
V_REQUEST_GENERATION_TOKENS = Histogram "vllm:request_generation_tokens", "Number of generation tokens processed.";
    /// vLLM: tokens per step.
V_ITERATION_TOKENS = Histogram "vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.";
    /// vLLM: the longest sample's generation length (a panel of vLLM's own dashboard).
V_REQUEST_MAX_NUM_GENERATION_TOKENS = Histogram "vllm:request_max_num_generation_tokens", "Histogram of maximum number of requested generation tokens.";
    /// vLLM: n.
V_REQUEST_PARAMS_N = Histogram "vllm:request_params_n", "Histogram of the n request parameter.";
    /// vLLM: max_tokens.
V_REQUEST_PARAMS_MAX_TOKENS = Histogram "vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.";
    /// vLLM: cache config.
V_CACHE_CONFIG_INFO = Gauge "vllm:cache_config_info", "Information of the KV cache configuration (value 1).";
    /// vLLM: the LoRA adapters loaded and waiting, which the Gateway API Inference
    /// Extension's endpoint picker reads for adapter affinity; the value is the Unix time of
    /// the update (the picker keeps the newest series). corvid serves no adapters yet, so
    /// both lists are empty and `max_lora` is 0.
V_LORA_REQUESTS_INFO = Gauge "vllm:lora_requests_info", "Running stats on lora requests.";
}

/// Buckets of request-level latencies, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
];
/// Buckets of per-token latencies (TTFT, ITL), in seconds.
pub const TOKEN_LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of HTTP durations, in seconds.
pub const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of sequences per step.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Buckets of tokens per step / per request.
pub const TOKEN_COUNT_BUCKETS: &[f64] = &[
    1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
    32768.0,
];
/// Buckets of the `n` parameter.
pub const N_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique() {
        let set: HashSet<_> = ALL.iter().map(|d| d.name).collect();
        assert_eq!(set.len(), ALL.len());
    }

    /// docs/metrics.md and this module name the same metrics.
    #[test]
    fn names_match_the_contract() {
        let doc = include_str!("../../../../docs/metrics.md");
        let mut documented = HashSet::new();
        for part in doc.split('`').skip(1).step_by(2) {
            let name = part.split('{').next().unwrap();
            if (name.starts_with("vllm_") || name.starts_with("vllm:"))
                && !name.contains('[')
                && !name.contains('(')
            {
                documented.insert(name.to_string());
            }
        }
        documented.remove("vllm_request_throughput[1m]");
        let ours: HashSet<String> = ALL.iter().map(|d| d.name.to_string()).collect();
        let missing: Vec<_> = documented.difference(&ours).collect();
        let extra: Vec<_> = ours.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "documented but not defined: {missing:?}"
        );
        assert!(extra.is_empty(), "defined but not documented: {extra:?}");
    }
}
