//! Storage for the paged KV cache: per layer, one pool of fixed-size blocks for keys and
//! one for values (f16, as llama.cpp's default cache type). Which block belongs to which
//! sequence is the engine's business; the model only reads and writes through block tables.

use crate::config::ModelConfig;
use corvid_kernels::attention::KvLayout;
use half::f16;

/// One layer's key and value pools.
pub struct LayerKv {
    /// Keys, `num_blocks * block_size * kv_dim` elements.
    pub k: Vec<f16>,
    /// Values, same shape as `k`.
    pub v: Vec<f16>,
}

/// The whole KV pool of a model: `num_blocks` blocks of `block_size` tokens in every layer.
pub struct KvCache {
    /// Geometry shared by all layers.
    pub layout: KvLayout,
    /// Blocks per layer.
    pub num_blocks: usize,
    /// Per-layer pools.
    pub layers: Vec<LayerKv>,
}

impl KvCache {
    /// Bytes one block takes across all layers (keys and values).
    pub fn bytes_per_block(config: &ModelConfig, block_size: usize) -> usize {
        2 * config.num_layers * block_size * config.kv_dim() * std::mem::size_of::<f16>()
    }

    /// Allocates a zeroed pool (pages are committed lazily by the OS as blocks are used).
    pub fn new(config: &ModelConfig, block_size: usize, num_blocks: usize) -> Self {
        let n = num_blocks * block_size * config.kv_dim();
        Self {
            layout: KvLayout {
                block_size,
                n_kv_heads: config.num_kv_heads,
                head_dim: config.head_dim,
            },
            num_blocks,
            layers: (0..config.num_layers)
                .map(|_| LayerKv {
                    k: vec![f16::ZERO; n],
                    v: vec![f16::ZERO; n],
                })
                .collect(),
        }
    }

    /// Total bytes reserved.
    pub fn nbytes(&self) -> usize {
        self.layers.len() * 2 * self.layers.first().map_or(0, |l| l.k.len()) * 2
    }
}
