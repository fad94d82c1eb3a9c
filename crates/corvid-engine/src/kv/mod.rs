//! Paged KV cache management: the block pool and per-sequence block tables.

pub mod block_pool;
pub mod events;
pub mod manager;

pub use block_pool::{BlockHash, BlockId, BlockPool};
pub use events::KvCacheEvent;
pub use manager::{KvManager, SeqKey};
