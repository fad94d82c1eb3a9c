//! The engine's command-line flags (vLLM's names), defined once and flattened into every
//! corvid subcommand that runs an engine (`generate`, `serve`, `bench throughput`).

use crate::params::{Dtype, EngineArgs, KvCacheDtype, KvCacheMemory, LoadQuantization};
use std::path::PathBuf;

/// Engine flags; each can also be set through the environment variable shown.
#[derive(Clone, Debug, clap::Args)]
pub struct EngineCliArgs {
    /// A .gguf file or a Hugging Face model folder; `default` (or nothing) is the
    /// installed SmolLM2-135M-Instruct (also accepted by that name).
    #[arg(long, env = "CORVID_MODEL", default_value = "default")]
    pub model: String,
    /// Name reported by the API and in metrics.
    #[arg(long, env = "CORVID_SERVED_MODEL_NAME")]
    pub served_model_name: Option<String>,
    /// Longest prompt + output in tokens (default: the model's context length).
    #[arg(long, env = "CORVID_MAX_MODEL_LEN")]
    pub max_model_len: Option<usize>,
    /// Most sequences batched together.
    #[arg(long, env = "CORVID_MAX_NUM_SEQS", default_value_t = 64)]
    pub max_num_seqs: usize,
    /// Most tokens (prefill + decode) per engine step.
    #[arg(long, env = "CORVID_MAX_NUM_BATCHED_TOKENS", default_value_t = 1024)]
    pub max_num_batched_tokens: usize,
    /// Tokens per KV block.
    #[arg(long, env = "CORVID_BLOCK_SIZE", default_value_t = 16)]
    pub block_size: usize,
    /// KV pool budget: a fraction of RAM (0.1) or a size (512MiB, 2GiB).
    #[arg(long, env = "CORVID_KV_CACHE_MEMORY", default_value = "1GiB")]
    pub kv_cache_memory: KvCacheMemory,
    /// KV cache element format: auto (= f16), f16, or q8_0 (i8 with a scale per token
    /// and KV head: about twice the blocks per GiB, less memory read per decode step).
    #[arg(long, env = "CORVID_KV_CACHE_DTYPE", default_value = "auto")]
    pub kv_cache_dtype: KvCacheDtype,
    /// Reuse KV blocks of shared prompt prefixes (on by default).
    #[arg(long, env = "CORVID_ENABLE_PREFIX_CACHING", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_prefix_caching: bool,
    /// Turn prefix caching off.
    #[arg(long, conflicts_with = "enable_prefix_caching")]
    pub no_enable_prefix_caching: bool,
    /// Naive baseline: one request at a time, no prefix cache.
    #[arg(long, env = "CORVID_NO_BATCHING")]
    pub no_batching: bool,
    /// Quantize unquantized (safetensors) weights at load: q8_0, q4_0, q4_1, q4_k or
    /// q5_k. The K-quants need rows that are a multiple of 256 long; other matrices fall back to
    /// Q8_0 with a warning (llama.cpp's quantizer also falls back for them).
    #[arg(long, env = "CORVID_QUANTIZATION")]
    pub quantization: Option<LoadQuantization>,
    /// auto or float32 (corvid computes in float32 on CPU; weights keep their format), or
    /// half/float16: float32 compute with an f16 KV cache. bfloat16 is refused.
    #[arg(long, env = "CORVID_DTYPE", default_value = "auto")]
    pub dtype: Dtype,
    /// Most requests allowed to wait; more get HTTP 503.
    #[arg(long, env = "CORVID_MAX_WAITING_REQUESTS", default_value_t = 1024)]
    pub max_waiting_requests: usize,
    /// Split the model's heads and FFN columns into this many shards, each on its own
    /// pinned share of the cores, summed by an all-reduce in shared memory (vLLM's
    /// tensor parallelism on CPU). At most the model's KV heads, or a multiple of them
    /// up to its query heads (the KV heads then replicated).
    #[arg(long, env = "CORVID_TENSOR_PARALLEL_SIZE", default_value_t = 1, value_parser = at_least_one)]
    pub tensor_parallel_size: usize,
}

/// A count that must be 1 or more.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number of at least 1")),
    }
}

impl EngineCliArgs {
    /// The validated engine arguments.
    pub fn to_engine_args(&self) -> EngineArgs {
        if let Some(note) = self.dtype.note() {
            tracing::warn!("{note}");
        }
        let is_default = [
            "default",
            "",
            corvid_model::default_model::DEFAULT_MODEL_NAME,
        ]
        .contains(&self.model.as_str());
        let model = if is_default {
            corvid_model::default_model::default_model_path()
        } else {
            PathBuf::from(&self.model)
        };
        EngineArgs {
            model,
            served_model_name: self.served_model_name.clone(),
            max_model_len: self.max_model_len,
            max_num_seqs: self.max_num_seqs,
            max_num_batched_tokens: self.max_num_batched_tokens,
            block_size: self.block_size,
            kv_cache_memory: self.kv_cache_memory,
            kv_cache_dtype: self.dtype.kv_cache_dtype(self.kv_cache_dtype),
            enable_prefix_caching: self.enable_prefix_caching && !self.no_enable_prefix_caching,
            no_batching: self.no_batching,
            quantization: self.quantization,
            max_waiting_requests: self.max_waiting_requests,
            enable_kv_cache_events: false,
            tensor_parallel_size: self.tensor_parallel_size,
            commit_kv_cache: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        engine: EngineCliArgs,
    }

    #[test]
    fn dtype_half_means_an_f16_kv_cache_and_bfloat16_is_refused() {
        let cli = Cli::try_parse_from(["corvid", "--dtype", "half"]).unwrap();
        assert_eq!(cli.engine.dtype, Dtype::Float16);
        assert_eq!(
            cli.engine.to_engine_args().kv_cache_dtype,
            KvCacheDtype::F16
        );
        let e = Cli::try_parse_from(["corvid", "--dtype", "bfloat16"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--dtype") && e.contains("no bfloat16"), "{e}");
    }

    #[test]
    fn tensor_parallel_size_reaches_the_engine_and_zero_is_refused() {
        let cli = Cli::try_parse_from(["corvid", "--tensor-parallel-size", "2"]).unwrap();
        assert_eq!(cli.engine.to_engine_args().tensor_parallel_size, 2);
        let one = Cli::try_parse_from(["corvid"]).unwrap();
        assert_eq!(one.engine.to_engine_args().tensor_parallel_size, 1);
        for bad in ["0", "two"] {
            let e = Cli::try_parse_from(["corvid", "--tensor-parallel-size", bad])
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.contains("--tensor-parallel-size") && e.contains("at least 1"),
                "{e}"
            );
        }
    }
}
