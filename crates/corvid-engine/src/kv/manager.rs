//! Per-request KV bookkeeping: block tables, prefix-cache lookups and slot allocation.

use super::block_pool::{BlockHash, BlockId, BlockPool};
use super::events::KvCacheEvent;
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
    /// Prefix-cache changes since the last [`KvManager::take_events`], when recording.
    events: Option<Vec<KvCacheEvent>>,
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
            events: None,
        }
    }

    /// Starts recording [`KvCacheEvent`]s (only meaningful with prefix caching on).
    pub fn record_events(&mut self) {
        self.pool.record_evictions();
        self.events.get_or_insert_with(Vec::new);
    }

    /// The events recorded since the last call, in the order they happened.
    pub fn take_events(&mut self) -> Vec<KvCacheEvent> {
        self.note_evictions();
        self.events.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Turns the pool's evictions so far into a `BlockRemoved`, keeping event order.
    fn note_evictions(&mut self) {
        let evicted = self.pool.take_evicted();
        if let (Some(events), false) = (&mut self.events, evicted.is_empty()) {
            events.push(KvCacheEvent::BlockRemoved {
                block_hashes: evicted,
            });
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
        // Evictions (by this step's allocations) come before what this call stores.
        self.note_evictions();
        let Some(table) = self.tables.get(&seq) else {
            return;
        };
        let (mut done, mut parent) = self.hashed.get(&seq).copied().unwrap_or((0, 0));
        let full = (computed.len() / self.block_size).min(table.len());
        while done < full {
            let chunk = &computed[done * self.block_size..(done + 1) * self.block_size];
            let before = (done > 0).then_some(parent);
            parent = Self::chain(parent, chunk);
            let stored = self.pool.register(table[done], parent);
            if let (Some(events), true) = (&mut self.events, stored) {
                // Consecutive new blocks of one sequence share one event, as in vLLM.
                match events.last_mut() {
                    Some(KvCacheEvent::BlockStored {
                        block_hashes,
                        token_ids,
                        ..
                    }) if before.is_some() && block_hashes.last() == before.as_ref() => {
                        block_hashes.push(parent);
                        token_ids.extend_from_slice(chunk);
                    }
                    _ => events.push(KvCacheEvent::BlockStored {
                        block_hashes: vec![parent],
                        parent_block_hash: before,
                        token_ids: chunk.to_vec(),
                        block_size: self.block_size,
                    }),
                }
            }
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

    /// The hashes of every reusable cached prefix block.
    pub fn cached_hashes(&self) -> impl Iterator<Item = BlockHash> + '_ {
        self.pool.cached_hashes()
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

    /// Applying the recorded events in order rebuilds exactly the pool's cached set, through
    /// shared prefixes, re-registration of an already cached prefix, and evictions.
    #[test]
    fn events_replayed_in_order_equal_the_cached_blocks() {
        let mut m = KvManager::new(8, 4, true);
        m.record_events();
        let mut replayed = std::collections::HashSet::new();
        let mut stored_tokens = 0;
        let mut apply = |m: &mut KvManager| {
            for e in m.take_events() {
                match e {
                    KvCacheEvent::BlockStored {
                        block_hashes,
                        token_ids,
                        block_size,
                        ..
                    } => {
                        assert_eq!(token_ids.len(), block_hashes.len() * block_size);
                        stored_tokens += token_ids.len();
                        replayed.extend(block_hashes);
                    }
                    KvCacheEvent::BlockRemoved { block_hashes } => {
                        for h in block_hashes {
                            assert!(replayed.remove(&h), "removed a block never stored");
                        }
                    }
                }
            }
            let actual: std::collections::HashSet<_> = m.cached_hashes().collect();
            assert_eq!(replayed, actual);
        };
        let a: Vec<u32> = (0..13).collect();
        let b: Vec<u32> = (0..8).chain(100..105).collect();
        for (seq, p) in [(1, &a), (2, &b), (3, &a)] {
            m.reuse_prefix(seq, p);
            assert!(m.allocate_slots(seq, p.len()));
            m.cache_full_blocks(seq, p);
            apply(&mut m);
        }
        m.free(1);
        m.free(2);
        m.free(3);
        // Fresh content needing every block evicts all cached prefixes.
        let c: Vec<u32> = (200..232).collect();
        m.reuse_prefix(4, &c);
        assert!(m.allocate_slots(4, c.len()));
        apply(&mut m);
        m.cache_full_blocks(4, &c);
        apply(&mut m);
        assert_eq!(m.cached_hashes().count(), 8);
        assert!(stored_tokens > 0);
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
