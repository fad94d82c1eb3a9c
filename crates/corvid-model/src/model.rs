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

    /// Runs one step: writes the K/V of every input token into `kv` and puts in `logits`
    /// one row (`vocab_size` wide) for the last token of every sequence with
    /// `want_logits`, in input order (whatever `logits` held before is replaced).
    fn forward(&self, batch: &[SeqInput<'_>], kv: &mut KvCache, logits: &mut Logits) -> Result<()>;

    /// [`CausalLm::forward`] into a buffer of its own, for a one-off step (tests and
    /// tools); the engine keeps one buffer for every step instead.
    fn forward_once(&self, batch: &[SeqInput<'_>], kv: &mut KvCache) -> Result<Logits> {
        let mut logits = Logits::new(self.config().vocab_size);
        self.forward(batch, kv, &mut logits)?;
        Ok(logits)
    }
}

/// A step's next-token logits: `rows` rows of `vocab` values in one buffer that the
/// caller keeps from step to step. A 64-sequence step's logits are 12.6 MB of SmolLM2's
/// 49,152-token vocabulary; allocated per step (and copied into one vector per row) they
/// were mapped, zeroed by the kernel and unmapped again every step.
#[derive(Debug)]
pub struct Logits {
    data: Vec<f32>,
    vocab: usize,
}

impl Logits {
    /// An empty buffer for rows of `vocab` values.
    pub fn new(vocab: usize) -> Self {
        Self {
            data: Vec::new(),
            vocab,
        }
    }

    /// Sets the number of rows and returns all of them, to be overwritten: only rows
    /// beyond the buffer's largest size so far are allocated (and zeroed).
    pub fn reset(&mut self, rows: usize) -> &mut [f32] {
        self.data.resize(rows * self.vocab, 0.0);
        &mut self.data
    }

    /// Whether the step produced no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The rows in order, mutable (sampling applies penalties and temperature in place).
    pub fn rows_mut(&mut self) -> std::slice::ChunksExactMut<'_, f32> {
        self.data.chunks_exact_mut(self.vocab.max(1))
    }

    /// The rows in order.
    pub fn iter(&self) -> std::slice::ChunksExact<'_, f32> {
        self.data.chunks_exact(self.vocab.max(1))
    }
}

impl<'a> IntoIterator for &'a Logits {
    type Item = &'a [f32];
    type IntoIter = std::slice::ChunksExact<'a, f32>;

    /// The rows in order.
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::ops::Index<usize> for Logits {
    type Output = [f32];

    /// Row `i`.
    fn index(&self, i: usize) -> &[f32] {
        &self.data[i * self.vocab..(i + 1) * self.vocab]
    }
}
