//! Storage for the paged KV cache: per layer, one pool of fixed-size blocks for keys and
//! one for values (f16, as llama.cpp's default cache type, or q8_0: i8 with one scale per
//! token and KV head). Which block belongs to which sequence is the engine's business;
//! the model only reads and writes through block tables.

use crate::config::ModelConfig;
pub use corvid_kernels::attention::KvDtype;
use corvid_kernels::attention::{KvLayout, KvStore};

/// The whole KV pool of a model: `num_blocks` blocks of `block_size` tokens in every layer.
pub struct KvCache {
    /// Geometry shared by all layers.
    pub layout: KvLayout,
    /// Blocks per layer.
    pub num_blocks: usize,
    /// Per-layer pools.
    pub layers: Vec<KvStore>,
}

/// The pool geometry of a model.
fn layout(config: &ModelConfig, block_size: usize) -> KvLayout {
    KvLayout {
        block_size,
        n_kv_heads: config.num_kv_heads,
        head_dim: config.head_dim,
    }
}

impl KvCache {
    /// Bytes one block takes across all layers (keys and values, with q8_0's scales).
    pub fn bytes_per_block(config: &ModelConfig, block_size: usize, dtype: KvDtype) -> usize {
        config.num_layers * layout(config, block_size).block_bytes(dtype)
    }

    /// Allocates a zeroed pool (pages are committed lazily by the OS as blocks are used).
    pub fn new(config: &ModelConfig, block_size: usize, num_blocks: usize, dtype: KvDtype) -> Self {
        let layout = layout(config, block_size);
        Self {
            layout,
            num_blocks,
            layers: (0..config.num_layers)
                .map(|_| KvStore::new(dtype, &layout, num_blocks))
                .collect(),
        }
    }
}
