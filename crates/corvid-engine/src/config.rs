//! [`EngineArgs`] resolved against a loaded model: the [`EngineConfig`] the engine runs
//! with. The KV pool size, the context length in force, the batch limits and the served
//! name are computed here once; the server and the metrics read them, never redo them.

use crate::error::EngineError;
use crate::params::{EngineArgs, KvCacheDtype};
use crate::scheduler::SchedulerConfig;
use corvid_model::config::ModelConfig;
use corvid_model::default_model::{default_model_path, DEFAULT_MODEL_NAME};
use corvid_model::kv_cache::max_blocks;
use corvid_model::{KvCache, KvGroups};

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
    /// KV blocks in the pool (with the null block when a KV group has a window).
    pub num_blocks: usize,
    /// Each KV group's sliding window (`None`: full attention); one entry for a model
    /// without sliding windows (see [`corvid_model::KvGroups`]).
    pub kv_windows: Vec<Option<usize>>,
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
    /// Shards the model runs on (vLLM's `tensor_parallel_size`; 1 = unsharded).
    pub tensor_parallel_size: usize,
    /// Whether the KV pool's pages are committed at start ([`EngineArgs::commit_kv_cache`]).
    pub commit_kv_cache: bool,
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
        let kv_windows = KvGroups::of(model).windows;
        let reserved = usize::from(kv_windows.iter().any(Option::is_some));
        let blocks_for =
            |len: usize| max_blocks(&kv_windows, len, self.block_size, max_num_batched_tokens);
        let budget_blocks = (self.kv_cache_memory.bytes() as usize / per_block).max(1);
        // Never reserve more than every batch slot could use at full length.
        let useful = max_num_seqs * blocks_for(max_model_len) + reserved;
        let num_blocks = budget_blocks.min(useful.max(1));
        // The longest sequence the pool holds on its own.
        let usable = num_blocks.saturating_sub(reserved);
        let (mut lo, mut hi) = (0, max_model_len);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if blocks_for(mid) <= usable {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        max_model_len = lo;
        if max_model_len < 2 {
            return bad(format!(
                "the KV cache budget holds only {num_blocks} blocks; raise --kv-cache-memory"
            ));
        }
        Ok(EngineConfig {
            served_model_name: self.served_name(),
            max_model_len,
            num_blocks,
            kv_windows,
            block_size: self.block_size,
            kv_cache_dtype: self.kv_cache_dtype,
            kv_bytes: num_blocks * per_block,
            max_num_seqs,
            max_num_batched_tokens,
            enable_prefix_caching,
            max_waiting_requests: self.max_waiting_requests,
            vocab_size: model.vocab_size,
            enable_kv_cache_events: self.enable_kv_cache_events && enable_prefix_caching,
            tensor_parallel_size: self.tensor_parallel_size,
            commit_kv_cache: self.commit_kv_cache,
        })
    }
}

impl EngineConfig {
    /// Most KV blocks one sequence of `num_tokens` tokens holds at once.
    pub fn kv_blocks_for(&self, num_tokens: usize) -> usize {
        max_blocks(
            &self.kv_windows,
            num_tokens,
            self.block_size,
            self.max_num_batched_tokens,
        )
    }

    /// KV blocks sequences can use: the pool less the null block of window groups.
    pub fn usable_kv_blocks(&self) -> usize {
        self.num_blocks - usize::from(self.kv_windows.iter().any(Option::is_some))
    }

    /// The scheduler's share of the limits.
    pub fn scheduler(&self) -> SchedulerConfig {
        SchedulerConfig {
            max_num_seqs: self.max_num_seqs,
            max_num_batched_tokens: self.max_num_batched_tokens,
        }
    }
}
