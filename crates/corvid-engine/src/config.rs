//! [`EngineArgs`] resolved against a loaded model: the [`EngineConfig`] the engine runs
//! with. The KV pool size, the context length in force, the batch limits and the served
//! name are computed here once; the server and the metrics read them, never redo them.

use crate::error::EngineError;
use crate::params::{EngineArgs, KvCacheDtype};
use crate::scheduler::SchedulerConfig;
use corvid_model::config::ModelConfig;
use corvid_model::default_model::{default_model_path, DEFAULT_MODEL_NAME};
use corvid_model::KvCache;

/// Largest KV block the attention kernels take, in tokens.
const MAX_BLOCK_SIZE: usize = 256;

/// What a running engine is: fixed at start, unlike the [`crate::EngineSnapshot`].
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// The name the model is served under (the API's `model`, the metrics' `model_name`).
    pub served_model_name: String,
    /// Longest prompt + output in force: the requested length clamped to the model's
    /// context and to what the KV pool holds.
    pub max_model_len: usize,
    /// KV blocks in the pool.
    pub num_blocks: usize,
    /// Tokens per KV block.
    pub block_size: usize,
    /// KV cache element format.
    pub kv_cache_dtype: KvCacheDtype,
    /// Bytes reserved for the KV pool.
    pub kv_bytes: usize,
    /// Most sequences in one batch (1 with `no_batching`).
    pub max_num_seqs: usize,
    /// Most tokens in one step.
    pub max_num_batched_tokens: usize,
    /// Whether shared prompt prefixes reuse KV blocks.
    pub enable_prefix_caching: bool,
    /// Most sequences allowed to wait before requests are refused.
    pub max_waiting_requests: usize,
    /// The model's vocabulary size (prompt token ids must be below it).
    pub vocab_size: usize,
    /// Whether prefix-cache changes are recorded as KV-cache events (never without
    /// prefix caching: there is nothing to describe).
    pub enable_kv_cache_events: bool,
}

impl EngineArgs {
    /// The name the model is served under: `served_model_name`, else
    /// `SmolLM2-135M-Instruct` for the default model, else the model file's stem. Known
    /// before the model loads, so the metrics carry it from the first scrape.
    pub fn served_name(&self) -> String {
        self.served_model_name.clone().unwrap_or_else(|| {
            if self.model == default_model_path() {
                DEFAULT_MODEL_NAME.to_string()
            } else {
                self.model
                    .file_stem()
                    .map_or_else(|| "model".to_string(), |s| s.to_string_lossy().into_owned())
            }
        })
    }

    /// Sizes the KV pool for `model` and fixes the limits in force.
    pub fn resolve(&self, model: &ModelConfig) -> Result<EngineConfig, EngineError> {
        let bad = |m: String| Err(EngineError::InvalidConfig(m));
        if self.block_size == 0 || self.block_size > MAX_BLOCK_SIZE {
            return bad(format!("block_size must be between 1 and {MAX_BLOCK_SIZE}"));
        }
        let per_block =
            KvCache::bytes_per_block(model, self.block_size, self.kv_cache_dtype.resolve());
        let mut max_model_len = self
            .max_model_len
            .unwrap_or(model.max_position_embeddings)
            .min(model.max_position_embeddings);
        let (max_num_seqs, enable_prefix_caching, max_num_batched_tokens) = if self.no_batching {
            (1, false, max_model_len)
        } else {
            (
                self.max_num_seqs.max(1),
                self.enable_prefix_caching,
                self.max_num_batched_tokens.max(1),
            )
        };
        let budget_blocks = (self.kv_cache_memory.bytes() as usize / per_block).max(1);
        // Never reserve more than every batch slot could use at full length.
        let useful = max_num_seqs * max_model_len.div_ceil(self.block_size);
        let num_blocks = budget_blocks.min(useful.max(1));
        max_model_len = max_model_len.min(num_blocks * self.block_size);
        if max_model_len < 2 {
            return bad(format!(
                "the KV cache budget holds only {num_blocks} blocks; raise --kv-cache-memory"
            ));
        }
        Ok(EngineConfig {
            served_model_name: self.served_name(),
            max_model_len,
            num_blocks,
            block_size: self.block_size,
            kv_cache_dtype: self.kv_cache_dtype,
            kv_bytes: num_blocks * per_block,
            max_num_seqs,
            max_num_batched_tokens,
            enable_prefix_caching,
            max_waiting_requests: self.max_waiting_requests,
            vocab_size: model.vocab_size,
            enable_kv_cache_events: self.enable_kv_cache_events && enable_prefix_caching,
        })
    }
}

impl EngineConfig {
    /// The scheduler's share of the limits.
    pub fn scheduler(&self) -> SchedulerConfig {
        SchedulerConfig {
            max_num_seqs: self.max_num_seqs,
            max_num_batched_tokens: self.max_num_batched_tokens,
        }
    }
}
