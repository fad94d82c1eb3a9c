//! The pool of KV blocks: reference counts, an O(1) LRU free list, and the prefix-cache
//! index from block-content hash to block.
//!
//! A block with reference count zero sits in the free list. If it still holds a cached
//! prefix (it has a hash), it can be revived by a later request with the same prefix
//! until the pool hands it out for new content, at which point its hash is dropped.
//! Blocks are taken from the front of the free list (least recently freed first).

use std::collections::HashMap;

/// Index of a block in the pool.
pub type BlockId = u32;

/// Hash of a full block's tokens chained with its parent's hash.
pub type BlockHash = u64;

/// What a cached block holds: a prefix (its hash) in one KV group. The groups of a
/// sequence store the same tokens in different blocks (different layers' KV), so the
/// prefix cache tells them apart.
pub type CacheKey = (BlockHash, usize);

const NIL: u32 = u32::MAX;

/// Reference-counted blocks with an intrusive doubly linked free list.
pub struct BlockPool {
    ref_count: Vec<u32>,
    hash: Vec<Option<CacheKey>>,
    prev: Vec<u32>,
    next: Vec<u32>,
    head: u32,
    tail: u32,
    num_free: usize,
    cached: HashMap<CacheKey, BlockId>,
    /// Keys evicted since the last [`BlockPool::take_evicted`], when recording.
    evicted: Option<Vec<CacheKey>>,
}

impl BlockPool {
    /// A pool of `num_blocks` free blocks.
    pub fn new(num_blocks: usize) -> Self {
        let n = num_blocks as u32;
        let mut pool = Self {
            ref_count: vec![0; num_blocks],
            hash: vec![None; num_blocks],
            prev: vec![NIL; num_blocks],
            next: vec![NIL; num_blocks],
            head: NIL,
            tail: NIL,
            num_free: 0,
            cached: HashMap::new(),
            evicted: None,
        };
        for b in 0..n {
            pool.push_back(b);
        }
        pool
    }

    /// Starts recording which cached prefixes allocation evicts (for KV-cache events).
    pub fn record_evictions(&mut self) {
        self.evicted.get_or_insert_with(Vec::new);
    }

    /// The keys evicted since the last call, oldest first (empty when not recording).
    pub fn take_evicted(&mut self) -> Vec<CacheKey> {
        self.evicted
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Total blocks.
    pub fn num_blocks(&self) -> usize {
        self.ref_count.len()
    }

    /// Blocks with reference count zero (free or evictable cached).
    pub fn num_free(&self) -> usize {
        self.num_free
    }

    /// Blocks referenced by at least one sequence.
    pub fn num_used(&self) -> usize {
        self.num_blocks() - self.num_free
    }

    fn push_back(&mut self, b: BlockId) {
        self.prev[b as usize] = self.tail;
        self.next[b as usize] = NIL;
        if self.tail != NIL {
            self.next[self.tail as usize] = b;
        } else {
            self.head = b;
        }
        self.tail = b;
        self.num_free += 1;
    }

    fn unlink(&mut self, b: BlockId) {
        let (p, n) = (self.prev[b as usize], self.next[b as usize]);
        if p != NIL {
            self.next[p as usize] = n;
        } else {
            self.head = n;
        }
        if n != NIL {
            self.prev[n as usize] = p;
        } else {
            self.tail = p;
        }
        self.prev[b as usize] = NIL;
        self.next[b as usize] = NIL;
        self.num_free -= 1;
    }

    /// Takes `n` blocks for new content, evicting cached prefixes in LRU order.
    /// `None` (and nothing taken) if fewer than `n` are free.
    pub fn allocate(&mut self, n: usize) -> Option<Vec<BlockId>> {
        if n > self.num_free {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let b = self.head;
            self.unlink(b);
            if let Some(h) = self.hash[b as usize].take() {
                if self.cached.get(&h) == Some(&b) {
                    self.cached.remove(&h);
                    if let Some(evicted) = &mut self.evicted {
                        evicted.push(h);
                    }
                }
            }
            self.ref_count[b as usize] = 1;
            out.push(b);
        }
        Some(out)
    }

    /// Whether some block holds this prefix (without taking a reference).
    pub fn is_cached(&self, key: CacheKey) -> bool {
        self.cached.contains_key(&key)
    }

    /// The cached block holding this prefix, taking a reference on it.
    pub fn touch_cached(&mut self, key: CacheKey) -> Option<BlockId> {
        let b = *self.cached.get(&key)?;
        if self.ref_count[b as usize] == 0 {
            self.unlink(b);
        }
        self.ref_count[b as usize] += 1;
        Some(b)
    }

    /// Records that block `b` (full, computed) holds the prefix `h`. True when that makes
    /// the prefix newly reusable (no other block already holds it).
    pub fn register(&mut self, b: BlockId, h: CacheKey) -> bool {
        if self.hash[b as usize].is_some() {
            return false;
        }
        self.hash[b as usize] = Some(h);
        match self.cached.entry(h) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(b);
                true
            }
        }
    }

    /// Drops one reference to each block; blocks reaching zero go to the free list in
    /// the order given (so pass a sequence's blocks tail first: its last blocks are
    /// evicted before its shared prefix).
    pub fn free(&mut self, blocks: impl IntoIterator<Item = BlockId>) {
        for b in blocks {
            let rc = &mut self.ref_count[b as usize];
            assert!(*rc > 0, "double free of KV block {b}");
            *rc -= 1;
            if *rc == 0 {
                self.push_back(b);
            }
        }
    }

    /// Forgets every cached prefix (e.g. when prefix caching is off).
    pub fn reset_prefix_cache(&mut self) {
        self.cached.clear();
        self.hash.iter_mut().for_each(|h| *h = None);
    }

    /// Reference count of a block (for invariant checks).
    pub fn ref_count(&self, b: BlockId) -> u32 {
        self.ref_count[b as usize]
    }

    /// The keys of every reusable cached prefix block.
    pub fn cached_keys(&self) -> impl Iterator<Item = CacheKey> + '_ {
        self.cached.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_free_and_revive_cached() {
        let mut p = BlockPool::new(4);
        let a = p.allocate(3).unwrap();
        assert_eq!(p.num_free(), 1);
        assert!(p.allocate(2).is_none());
        p.register(a[0], (42, 0));
        p.free(a.iter().rev().copied());
        assert_eq!(p.num_free(), 4);
        // The cached block can be revived while it sits in the free list.
        assert_eq!(p.touch_cached((42, 1)), None, "another group's prefix");
        assert_eq!(p.touch_cached((42, 0)), Some(a[0]));
        assert_eq!(p.num_free(), 3);
        p.free([a[0]]);
        // Allocating everything evicts it.
        let all = p.allocate(4).unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(p.touch_cached((42, 0)), None);
    }
}
