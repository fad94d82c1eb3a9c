//! Per-request KV bookkeeping: block tables, prefix-cache lookups and slot allocation.
//!
//! A sequence holds one block table per KV group (see [`corvid_model::KvGroups`]): one for a
//! model without sliding windows; for Gemma 3, full-attention groups and window groups. A
//! window group's blocks that fall wholly before the window of the next token to compute
//! are released as the sequence advances (vLLM's `SlidingWindowManager`), and the table
//! entry then names the null block, a block reserved at start that is never handed out or
//! read. Released blocks keep their prefix-cache entry until evicted, like a finished
//! sequence's.

use super::block_pool::{BlockHash, BlockId, BlockPool};
use super::events::KvCacheEvent;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Key of a sequence in the manager (the engine's sequence id).
pub type SeqKey = u64;

/// The blocks of one sequence.
struct SeqBlocks {
    /// One table per KV group; released window blocks are the null block.
    tables: Vec<Vec<BlockId>>,
    /// How many leading full blocks are registered in the prefix cache...
    hashed: usize,
    /// ...and the hash of the last of them (the chain's parent for the next).
    parent: BlockHash,
}

/// Owns the block pool and every running sequence's block tables.
pub struct KvManager {
    pool: BlockPool,
    block_size: usize,
    prefix_caching: bool,
    /// Each KV group's sliding window (`None`: full attention).
    windows: Vec<Option<usize>>,
    /// The placeholder for released window blocks (only when some group has a window).
    null_block: Option<BlockId>,
    seqs: HashMap<SeqKey, SeqBlocks>,
    /// Prefix-cache changes since the last [`KvManager::take_events`], when recording.
    events: Option<Vec<KvCacheEvent>>,
}

impl KvManager {
    /// A manager over `num_blocks` blocks of `block_size` tokens for a model whose layers
    /// all attend to the whole context (one KV group).
    pub fn new(num_blocks: usize, block_size: usize, prefix_caching: bool) -> Self {
        Self::with_windows(num_blocks, block_size, vec![None], prefix_caching)
    }

    /// A manager for a model with one KV group per entry of `windows` (each group's
    /// sliding window, `None` for full attention). With a window, one block is reserved
    /// as the null block.
    pub fn with_windows(
        num_blocks: usize,
        block_size: usize,
        windows: Vec<Option<usize>>,
        prefix_caching: bool,
    ) -> Self {
        let mut pool = BlockPool::new(num_blocks);
        let null_block = windows.iter().any(Option::is_some).then(|| {
            pool.allocate(1)
                .expect("a KV pool with a window has a block")[0]
        });
        Self {
            pool,
            block_size,
            prefix_caching,
            windows,
            null_block,
            seqs: HashMap::new(),
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

    /// Turns the pool's evictions so far into a `BlockRemoved`, keeping event order. Events
    /// describe the first KV group only (see [`KvManager::cached_hashes`]).
    fn note_evictions(&mut self) {
        let evicted: Vec<BlockHash> = self
            .pool
            .take_evicted()
            .into_iter()
            .filter(|&(_, group)| group == 0)
            .map(|(h, _)| h)
            .collect();
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

    /// Blocks sequences can use (the pool less the null block).
    pub fn num_blocks(&self) -> usize {
        self.pool.num_blocks() - self.num_reserved()
    }

    /// Blocks referenced by running sequences (the null block not counted).
    pub fn num_used(&self) -> usize {
        self.pool.num_used() - self.num_reserved()
    }

    fn num_reserved(&self) -> usize {
        usize::from(self.null_block.is_some())
    }

    /// The block tables of a sequence, one per KV group (empty for an unknown sequence).
    pub fn block_tables(&self, seq: SeqKey) -> &[Vec<BlockId>] {
        self.seqs.get(&seq).map_or(&[], |s| s.tables.as_slice())
    }

    /// Blocks a sequence holds in each KV group (released window blocks not counted).
    pub fn blocks_held(&self, seq: SeqKey) -> Vec<usize> {
        self.block_tables(seq)
            .iter()
            .map(|t| t.iter().filter(|&&b| Some(b) != self.null_block).count())
            .collect()
    }

    fn chain(parent: BlockHash, tokens: &[u32]) -> BlockHash {
        let mut h = DefaultHasher::new();
        parent.hash(&mut h);
        tokens.hash(&mut h);
        h.finish()
    }

    /// Blocks a window group needs cached before position `blocks * block_size` for the
    /// next token to find its whole window (the token itself is computed, hence `- 1`).
    fn window_blocks(&self, window: usize) -> usize {
        (window - 1).div_ceil(self.block_size)
    }

    /// The longest prefix of `hashes` (in blocks) group `g` can serve: every block for a
    /// full-attention group; for a window group, a length whose last window of blocks is
    /// cached (or that is all cached from the start), searched from the right.
    fn longest_hit(&self, g: usize, hashes: &[BlockHash]) -> usize {
        let cached = |h: BlockHash| self.pool.is_cached((h, g));
        let Some(window) = self.windows[g] else {
            return hashes.iter().take_while(|&&h| cached(h)).count();
        };
        let need = self.window_blocks(window);
        if need == 0 {
            return hashes.len();
        }
        let mut run = 0;
        for i in (0..hashes.len()).rev() {
            if !cached(hashes[i]) {
                run = 0;
                continue;
            }
            run += 1;
            if run == need {
                return i + run;
            }
        }
        run
    }

    /// Looks up the longest cached prefix of `tokens` that every KV group can serve
    /// (whole blocks, always leaving at least one token to compute), takes references on
    /// those blocks (a window group only on the prefix's last window) and makes them the
    /// start of the sequence's tables. Returns the number of tokens reused.
    pub fn reuse_prefix(&mut self, seq: SeqKey, tokens: &[u32]) -> usize {
        let groups = self.windows.len();
        if !self.prefix_caching {
            self.seqs.insert(seq, SeqBlocks::empty(groups));
            return 0;
        }
        let max_blocks = tokens.len().saturating_sub(1) / self.block_size;
        let mut hashes = Vec::new();
        let mut parent = 0;
        for chunk in tokens.chunks_exact(self.block_size).take(max_blocks) {
            parent = Self::chain(parent, chunk);
            // A full-attention first group bounds the hit: no need to hash past its miss.
            if self.windows[0].is_none() && !self.pool.is_cached((parent, 0)) {
                break;
            }
            hashes.push(parent);
        }
        // Each group can only shorten the hit; repeat until every group agrees.
        let mut hit = hashes.len();
        loop {
            let before = hit;
            for g in 0..groups {
                hit = self.longest_hit(g, &hashes[..hit]);
            }
            if hit == before {
                break;
            }
        }
        let mut tables = Vec::with_capacity(groups);
        for g in 0..groups {
            let (from, mut table) = match self.windows[g] {
                None => (0, Vec::with_capacity(hit)),
                Some(w) => {
                    let from = hit.saturating_sub(self.window_blocks(w));
                    (from, vec![self.null(); from])
                }
            };
            for &h in &hashes[from..hit] {
                table.push(self.pool.touch_cached((h, g)).expect("found cached above"));
            }
            tables.push(table);
        }
        self.seqs.insert(
            seq,
            SeqBlocks {
                tables,
                hashed: hit,
                parent: hit.checked_sub(1).map_or(0, |i| hashes[i]),
            },
        );
        hit * self.block_size
    }

    fn null(&self) -> BlockId {
        self.null_block.expect("only window groups release blocks")
    }

    /// Makes sure the sequence, whose first `num_computed` tokens are in the cache, has
    /// blocks for `num_tokens` tokens in total. First releases the window groups' blocks
    /// that no token from `num_computed` on attends to. Returns false, allocating
    /// nothing, if the pool cannot provide the rest (the scheduler then preempts or waits).
    pub fn allocate_slots(&mut self, seq: SeqKey, num_computed: usize, num_tokens: usize) -> bool {
        let bs = self.block_size;
        let groups = self.windows.len();
        let s = self
            .seqs
            .entry(seq)
            .or_insert_with(|| SeqBlocks::empty(groups));
        for (table, window) in s.tables.iter_mut().zip(&self.windows) {
            let (Some(w), Some(null)) = (window, self.null_block) else {
                continue;
            };
            // The first token to compute attends from position `num_computed + 1 - w` on.
            let keep_from = ((num_computed + 1).saturating_sub(*w) / bs).min(table.len());
            let start = table[..keep_from]
                .iter()
                .rposition(|&b| b == null)
                .map_or(0, |i| i + 1);
            self.pool.free(table[start..keep_from].iter().copied());
            table[start..keep_from].fill(null);
        }
        let want = num_tokens.div_ceil(bs);
        let need: usize = s.tables.iter().map(|t| want.saturating_sub(t.len())).sum();
        if need == 0 {
            return true;
        }
        let Some(new) = self.pool.allocate(need) else {
            return false;
        };
        let mut new = new.into_iter();
        for table in &mut s.tables {
            while table.len() < want {
                table.push(new.next().expect("allocated one per missing entry"));
            }
        }
        true
    }

    /// Registers the sequence's newly completed full blocks in the prefix cache (in every
    /// KV group), given the sequence's tokens whose KV is now computed.
    pub fn cache_full_blocks(&mut self, seq: SeqKey, computed: &[u32]) {
        if !self.prefix_caching {
            return;
        }
        // Evictions (by this step's allocations) come before what this call stores.
        self.note_evictions();
        let bs = self.block_size;
        let Some(s) = self.seqs.get_mut(&seq) else {
            return;
        };
        let allocated = s.tables.iter().map(Vec::len).min().unwrap_or(0);
        let full = (computed.len() / bs).min(allocated);
        while s.hashed < full {
            let done = s.hashed;
            let chunk = &computed[done * bs..(done + 1) * bs];
            let before = (done > 0).then_some(s.parent);
            s.parent = Self::chain(s.parent, chunk);
            let mut stored = false;
            for (g, table) in s.tables.iter().enumerate() {
                if Some(table[done]) != self.null_block {
                    let new = self.pool.register(table[done], (s.parent, g));
                    stored |= new && g == 0;
                }
            }
            if let (Some(events), true) = (&mut self.events, stored) {
                // Consecutive new blocks of one sequence share one event, as in vLLM.
                match events.last_mut() {
                    Some(KvCacheEvent::BlockStored {
                        block_hashes,
                        token_ids,
                        ..
                    }) if before.is_some() && block_hashes.last() == before.as_ref() => {
                        block_hashes.push(s.parent);
                        token_ids.extend_from_slice(chunk);
                    }
                    _ => events.push(KvCacheEvent::BlockStored {
                        block_hashes: vec![s.parent],
                        parent_block_hash: before,
                        token_ids: chunk.to_vec(),
                        block_size: bs,
                    }),
                }
            }
            s.hashed += 1;
        }
    }

    /// Releases all blocks of a sequence (finish, abort or preemption).
    pub fn free(&mut self, seq: SeqKey) {
        let Some(s) = self.seqs.remove(&seq) else {
            return;
        };
        for table in s.tables.into_iter().rev() {
            let null = self.null_block;
            self.pool
                .free(table.into_iter().rev().filter(|&b| Some(b) != null));
        }
    }

    /// Number of sequences holding blocks.
    pub fn num_sequences(&self) -> usize {
        self.seqs.len()
    }

    /// Reference count of a block (for invariant checks in tests).
    pub fn ref_count(&self, b: BlockId) -> u32 {
        self.pool.ref_count(b)
    }

    /// The hashes of every reusable cached prefix block of the first KV group: what the
    /// KV-cache events describe. For a model with window groups that is the
    /// full-attention layers' cache; a prefix whose window blocks were evicted is reused
    /// only up to the last block that still has its window cached.
    pub fn cached_hashes(&self) -> impl Iterator<Item = BlockHash> + '_ {
        self.pool
            .cached_keys()
            .filter(|&(_, g)| g == 0)
            .map(|(h, _)| h)
    }
}

impl SeqBlocks {
    fn empty(groups: usize) -> Self {
        Self {
            tables: vec![Vec::new(); groups],
            hashed: 0,
            parent: 0,
        }
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
        assert!(m.allocate_slots(1, 0, 10));
        m.cache_full_blocks(1, &prompt);
        // Same prompt: two full blocks reused (the third is partial).
        assert_eq!(m.reuse_prefix(2, &prompt), 8);
        assert!(m.allocate_slots(2, 8, 10));
        assert_eq!(m.block_tables(1)[0][..2], m.block_tables(2)[0][..2]);
        assert_eq!(m.ref_count(m.block_tables(1)[0][0]), 2);
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
            let done = m.reuse_prefix(seq, p);
            assert!(m.allocate_slots(seq, done, p.len()));
            m.cache_full_blocks(seq, p);
            apply(&mut m);
        }
        m.free(1);
        m.free(2);
        m.free(3);
        // Fresh content needing every block evicts all cached prefixes.
        let c: Vec<u32> = (200..232).collect();
        m.reuse_prefix(4, &c);
        assert!(m.allocate_slots(4, 0, c.len()));
        apply(&mut m);
        m.cache_full_blocks(4, &c);
        apply(&mut m);
        assert_eq!(m.cached_hashes().count(), 8);
        assert!(stored_tokens > 0);
    }

    /// A full group and a window group of 6 positions, blocks of 4 tokens: the window group
    /// keeps at most ceil(6 / 4) + 1 blocks while decoding, the released blocks are free,
    /// and a repeated prompt reuses the full group's blocks from the start but the window
    /// group's last window only (the null block standing in before it).
    #[test]
    fn window_groups_release_blocks_and_reuse_only_the_last_window() {
        let mut m = KvManager::with_windows(32, 4, vec![None, Some(6)], true);
        assert_eq!(m.num_blocks(), 31, "the null block is not capacity");
        let tokens: Vec<u32> = (0..21).collect();
        assert_eq!(m.reuse_prefix(1, &tokens[..9]), 0);
        assert!(m.allocate_slots(1, 0, 9));
        m.cache_full_blocks(1, &tokens[..9]);
        assert_eq!(m.blocks_held(1), vec![3, 3]);
        for computed in 9..20 {
            assert!(m.allocate_slots(1, computed, computed + 1));
            m.cache_full_blocks(1, &tokens[..computed + 1]);
            let (all, first_kept) = ((computed + 1).div_ceil(4), (computed - 5) / 4);
            assert_eq!(m.blocks_held(1), vec![all, all - first_kept]);
            assert!(all - first_kept <= 6usize.div_ceil(4) + 1);
            assert_eq!(m.num_used(), 2 * all - first_kept);
        }
        m.free(1);
        assert_eq!(m.num_used(), 0);
        assert_eq!(m.reuse_prefix(2, &tokens), 20);
        let null = m.null();
        let window_table = &m.block_tables(2)[1];
        assert_eq!(window_table[..3], [null; 3]);
        assert!(!window_table[3..].contains(&null));
        assert_eq!(m.blocks_held(2), vec![5, 2]);
        m.free(2);
        assert_eq!(m.num_used(), 0);
    }

    #[test]
    fn a_prompt_of_exactly_whole_blocks_still_computes_its_last_token() {
        let mut m = KvManager::new(8, 4, true);
        let prompt: Vec<u32> = (0..8).collect();
        m.reuse_prefix(1, &prompt);
        assert!(m.allocate_slots(1, 0, 8));
        m.cache_full_blocks(1, &prompt);
        assert_eq!(m.reuse_prefix(2, &prompt), 4);
        m.free(1);
        m.free(2);
    }
}
