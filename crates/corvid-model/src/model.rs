//! The interface between the engine and a model: one batched forward step over several
//! sequences, each with its own positions and KV block table.

use crate::config::ModelConfig;
use crate::error::Result;
use crate::kv_cache::KvCache;

/// One sequence's share of a forward step.
#[derive(Clone, Copy, Debug)]
pub struct SeqInput<'a> {
    /// Tokens to run this step (a prefill chunk, or one decode token).
    pub tokens: &'a [u32],
    /// Position of `tokens[0]` (tokens before it are already in the KV cache).
    pub start_pos: usize,
    /// KV blocks of the sequence, one table per [`crate::KvGroups`] group, each covering
    /// at least `start_pos + tokens.len()` tokens (a window group's entries before its
    /// window may name a placeholder block: they are never read).
    pub block_tables: &'a [Vec<u32>],
    /// Whether to return logits for the last token (false for non-final prefill chunks).
    pub want_logits: bool,
}

/// A causal language model that runs batched steps against a paged KV cache.
pub trait CausalLm: Send + Sync {
    /// Shape of the model.
    fn config(&self) -> &ModelConfig;

    /// Runs one step: writes the K/V of every input token into `kv` and returns the
    /// logits (`vocab_size` each) of the last token of every sequence with
    /// `want_logits`, in input order.
    fn forward(&self, batch: &[SeqInput<'_>], kv: &mut KvCache) -> Result<Vec<Vec<f32>>>;
}
