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
    /// Grows to the largest step's rows and never shrinks: a step with fewer rows than
    /// the last one would otherwise zero the difference again when the next one grows.
    data: Vec<f32>,
    /// Values of `data` in use: the current step's rows × `vocab`.
    len: usize,
    vocab: usize,
}

impl Logits {
    /// An empty buffer for rows of `vocab` values.
    pub fn new(vocab: usize) -> Self {
        Self {
            data: Vec::new(),
            len: 0,
            vocab,
        }
    }

    /// Sets the number of rows and returns all of them, to be overwritten: they hold
    /// whatever an earlier step left, and only rows beyond the largest step so far are
    /// allocated (and zeroed).
    pub fn reset(&mut self, rows: usize) -> &mut [f32] {
        self.len = rows * self.vocab;
        if self.data.len() < self.len {
            self.data.resize(self.len, 0.0);
        }
        &mut self.data[..self.len]
    }

    /// Whether the step produced no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The rows in order, mutable (sampling applies penalties and temperature in place).
    pub fn rows_mut(&mut self) -> std::slice::ChunksExactMut<'_, f32> {
        self.data[..self.len].chunks_exact_mut(self.vocab.max(1))
    }

    /// The rows in order.
    pub fn iter(&self) -> std::slice::ChunksExact<'_, f32> {
        self.data[..self.len].chunks_exact(self.vocab.max(1))
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
        &self.data[..self.len][i * self.vocab..(i + 1) * self.vocab]
    }
}

#[cfg(test)]
mod tests {
    use super::Logits;

    #[test]
    fn a_step_sees_only_its_own_rows_after_a_larger_one() {
        let mut logits = Logits::new(3);
        logits
            .reset(2)
            .copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        logits.reset(1).copy_from_slice(&[7.0, 8.0, 9.0]);
        assert_eq!(logits.iter().collect::<Vec<_>>(), [&[7.0, 8.0, 9.0][..]]);
        assert_eq!(logits.rows_mut().count(), 1);
        assert_eq!(&logits[0], &[7.0, 8.0, 9.0]);
        // Growing again returns both rows (the second as the larger step left it).
        assert_eq!(logits.reset(2).len(), 6);
        assert_eq!(&logits[1], &[4.0, 5.0, 6.0]);
        logits.reset(0);
        assert!(logits.is_empty());
        assert_eq!(logits.iter().count(), 0);
    }
}
