//! What happened to the prefix cache, as vLLM's KV-cache events describe it, for routers
//! that route by which replica holds a prompt's blocks (llm-d's precise prefix-cache
//! scorer, `vllm-router --policy kv_aware`). The engine only records them; publishing
//! (ZMQ, msgpack) is the server's job.

use super::block_pool::BlockHash;

/// One change to the set of cached blocks (vLLM's `BlockStored` / `BlockRemoved`; corvid
/// never forgets its whole cache at once, so it has no `AllBlocksCleared`). A consumer
/// that applies them in order holds exactly the blocks a new request could reuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvCacheEvent {
    /// Full blocks became reusable: `block_hashes[i]` holds `token_ids[i * block_size ..
    /// (i + 1) * block_size]`, each block chained to the one before it, the first to
    /// `parent_block_hash` (`None` at the start of a prompt).
    BlockStored {
        /// The blocks' chained hashes, in prompt order.
        block_hashes: Vec<BlockHash>,
        /// The hash of the block before the first one.
        parent_block_hash: Option<BlockHash>,
        /// The tokens of all the blocks, concatenated.
        token_ids: Vec<u32>,
        /// Tokens per block.
        block_size: usize,
    },
    /// Cached blocks were evicted (their memory reused for new content).
    BlockRemoved {
        /// The evicted blocks' hashes.
        block_hashes: Vec<BlockHash>,
    },
}
