//! Per-request KV bookkeeping: block tables, prefix-cache lookups and slot allocation.

use super::block_pool::{BlockHash, BlockId, BlockPool};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Key of a sequence in the manager (the engine's sequence id).
pub type SeqKey = u64;

/// Owns the block pool and every running sequence's block table.
pub struct KvManager {
    pool: BlockPool,
    block_size: usize,
    prefix_caching: bool,
    tables: HashMap<SeqKey, Vec<BlockId>>,
    /// How many of a sequence's leading full blocks are already registered as cached.
    hashed: HashMap<SeqKey, (usize, BlockHash)>,
}

impl KvManager {
    /// A manager over `num_blocks` blocks of `block_size` tokens.
    pub fn new(num_blocks: usize, block_size: usize, prefix_caching: bool) -> Self {
        Self {
            pool: BlockPool::new(num_blocks),
            block_size,
            prefix_caching,
            tables: HashMap::new(),
            hashed: HashMap::new(),
        }
    }

    /// Tokens per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Total blocks in the pool.
    pub fn num_blocks(&self) -> usize {
        self.pool.num_blocks()
    }

    /// Blocks referenced by running sequences.
    pub fn num_used(&self) -> usize {
        self.pool.num_used()
    }

    /// The block table of a sequence.
    pub fn block_table(&self, seq: SeqKey) -> &[BlockId] {
        self.tables.get(&seq).map_or(&[], Vec::as_slice)
    }

    fn chain(parent: BlockHash, tokens: &[u32]) -> BlockHash {
        let mut h = DefaultHasher::new();
        parent.hash(&mut h);
        tokens.hash(&mut h);
        h.finish()
    }

    /// Looks up the longest cached prefix of `tokens` (whole blocks, always leaving at
    /// least one token to compute), takes references on those blocks and makes them the
    /// start of the sequence's table. Returns the number of tokens reused.
    pub fn reuse_prefix(&mut self, seq: SeqKey, tokens: &[u32]) -> usize {
        if !self.prefix_caching {
            return 0;
        }
        let max_blocks = tokens.len().saturating_sub(1) / self.block_size;
        let mut parent = 0;
        let mut blocks = Vec::new();
        for chunk in tokens.chunks_exact(self.block_size).take(max_blocks) {
            let h = Self::chain(parent, chunk);
            match self.pool.touch_cached(h) {
                Some(b) => blocks.push(b),
                None => break,
            }
            parent = h;
        }
        let n = blocks.len();
        if n > 0 {
            self.hashed.insert(seq, (n, parent));
        }
        self.tables.insert(seq, blocks);
        n * self.block_size
    }

    /// Makes sure the sequence has blocks for `num_tokens` tokens in total. Returns
    /// false, allocating nothing, if the pool cannot provide them (the scheduler then
    /// preempts or waits).
    pub fn allocate_slots(&mut self, seq: SeqKey, num_tokens: usize) -> bool {
        let have = self.tables.get(&seq).map_or(0, Vec::len);
        let need = num_tokens.div_ceil(self.block_size).saturating_sub(have);
        if need == 0 {
            return true;
        }
        match self.pool.allocate(need) {
            Some(new) => {
                self.tables.entry(seq).or_default().extend(new);
                true
            }
            None => false,
        }
    }

    /// Registers the sequence's newly completed full blocks in the prefix cache, given
    /// the sequence's tokens whose KV is now computed.
    pub fn cache_full_blocks(&mut self, seq: SeqKey, computed: &[u32]) {
        if !self.prefix_caching {
            return;
        }
        let Some(table) = self.tables.get(&seq) else {
            return;
        };
        let (mut done, mut parent) = self.hashed.get(&seq).copied().unwrap_or((0, 0));
        let full = (computed.len() / self.block_size).min(table.len());
        while done < full {
            let chunk = &computed[done * self.block_size..(done + 1) * self.block_size];
            parent = Self::chain(parent, chunk);
            self.pool.register(table[done], parent);
            done += 1;
        }
        self.hashed.insert(seq, (done, parent));
    }

    /// Releases all blocks of a sequence (finish, abort or preemption).
    pub fn free(&mut self, seq: SeqKey) {
        self.hashed.remove(&seq);
        if let Some(table) = self.tables.remove(&seq) {
            self.pool.free(table.into_iter().rev());
        }
    }

    /// Number of sequences holding blocks.
    pub fn num_sequences(&self) -> usize {
        self.tables.len()
    }

    /// Reference count of a block (for invariant checks in tests).
    pub fn ref_count(&self, b: BlockId) -> u32 {
        self.pool.ref_count(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_prefix_is_reused_and_freed() {
        let mut m = KvManager::new(8, 4, true);
        let prompt: Vec<u32> = (0..10).collect();
        assert_eq!(m.reuse_prefix(1, &prompt), 0);
        assert!(m.allocate_slots(1, 10));
        m.cache_full_blocks(1, &prompt);
        // Same prompt: two full blocks reused (the third is partial).
        assert_eq!(m.reuse_prefix(2, &prompt), 8);
        assert!(m.allocate_slots(2, 10));
        assert_eq!(m.block_table(1)[..2], m.block_table(2)[..2]);
        assert_eq!(m.ref_count(m.block_table(1)[0]), 2);
        m.free(1);
        m.free(2);
        assert_eq!(m.num_used(), 0);
        // After freeing, the cached prefix survives until evicted.
        assert_eq!(m.reuse_prefix(3, &prompt), 8);
        m.free(3);
    }

    #[test]
    fn a_prompt_of_exactly_whole_blocks_still_computes_its_last_token() {
        let mut m = KvManager::new(8, 4, true);
        let prompt: Vec<u32> = (0..8).collect();
        m.reuse_prefix(1, &prompt);
        assert!(m.allocate_slots(1, 8));
        m.cache_full_blocks(1, &prompt);
        assert_eq!(m.reuse_prefix(2, &prompt), 4);
        m.free(1);
        m.free(2);
    }
}
