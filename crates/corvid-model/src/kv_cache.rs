//! Storage for the paged KV cache: pools of fixed-size blocks for keys and values (f16, as
//! llama.cpp's default cache type, or q8_0: i8 with one scale per token and KV head).
//! Which block belongs to which sequence is the engine's business; the model only reads
//! and writes through block tables.
//!
//! Layers that attend to different spans keep their KV in different *groups* (vLLM's
//! hybrid KV cache): a model with sliding-window layers holds, per sequence, one block
//! table for each group, so the engine can release a window group's blocks once they
//! slide out of the window while the full-attention groups keep theirs. Every group has
//! the same number of layers, so one block id means the same bytes in every group and all
//! groups draw from one pool: a block is `block_size` tokens of [`KvGroups::layers_per_block`]
//! layers.

use crate::config::ModelConfig;
pub use corvid_kernels::attention::KvDtype;
use corvid_kernels::attention::{KvLayout, KvStore};

/// How a model's layers are grouped by attention span, and where each layer's KV lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvGroups {
    /// Each group's sliding window in positions (`None`: the group attends to the whole
    /// context). Full-attention groups come first.
    pub windows: Vec<Option<usize>>,
    /// Layers in each group: the stores one block id spans.
    pub layers_per_block: usize,
    /// For each layer, its group and its store within a block.
    pub placement: Vec<(usize, usize)>,
}

impl KvGroups {
    /// The grouping of `config`'s layers: one group for a model without sliding windows
    /// (every layer in it, as before groups existed); otherwise full-attention layers and
    /// window layers in separate groups of `gcd(#full, #window)` layers each, so no group
    /// is padded (Gemma 3 270M: 3 global and 15 local layers make 1 + 5 groups of 3).
    pub fn of(config: &ModelConfig) -> Self {
        let n = config.num_layers;
        let (full, local): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&l| config.layer_window(l).is_none());
        let per = gcd(full.len(), local.len());
        let window = config.sliding_window.map(|w| w.size);
        let mut windows = vec![None; full.len() / per];
        windows.extend(std::iter::repeat_n(window, local.len() / per));
        let first_local = full.len() / per;
        let mut placement = vec![(0, 0); n];
        for (j, &l) in full.iter().enumerate() {
            placement[l] = (j / per, j % per);
        }
        for (j, &l) in local.iter().enumerate() {
            placement[l] = (first_local + j / per, j % per);
        }
        Self {
            windows,
            layers_per_block: per,
            placement,
        }
    }

    /// Number of groups (block tables per sequence).
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// True for a model with no layers (never for a loaded model).
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Whether some group releases blocks that leave its window.
    pub fn has_window(&self) -> bool {
        self.windows.iter().any(Option::is_some)
    }
}

/// Most blocks one sequence of `num_tokens` tokens holds at once, over KV groups with these
/// `windows`, when its tokens are computed at most `chunk` per step: every block in a
/// full-attention group; in a window group, the window before the step plus the step's
/// tokens, and one more where the two straddle block boundaries.
pub fn max_blocks(
    windows: &[Option<usize>],
    num_tokens: usize,
    block_size: usize,
    chunk: usize,
) -> usize {
    let all = num_tokens.div_ceil(block_size);
    windows
        .iter()
        .map(|w| match w {
            None => all,
            Some(w) => all.min((w - 1 + chunk.max(1)).div_ceil(block_size) + 1),
        })
        .sum()
}

/// Greatest common divisor: the layers per KV group here, and (through `lcm`) the block
/// width tensor-parallel FFN slices must respect.
pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The whole KV pool of a model: `num_blocks` blocks of `block_size` tokens in each of
/// [`KvGroups::layers_per_block`] stores.
pub struct KvCache {
    /// Geometry shared by all stores.
    pub layout: KvLayout,
    /// Blocks per store.
    pub num_blocks: usize,
    /// One pool per layer of a group; layer `l` uses `stores[placement[l].1]`.
    pub stores: Vec<KvStore>,
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
    /// Bytes one block takes across the layers of a group (keys and values, with q8_0's
    /// scales): the unit the KV budget is divided into.
    pub fn bytes_per_block(config: &ModelConfig, block_size: usize, dtype: KvDtype) -> usize {
        KvGroups::of(config).layers_per_block * layout(config, block_size).block_bytes(dtype)
    }

    /// Commits every page of every store now ([`KvStore::commit_pages`]): a server takes
    /// its whole KV budget at start instead of under its first load.
    pub fn commit_pages(&mut self) {
        self.stores.iter_mut().for_each(KvStore::commit_pages);
    }

    /// Allocates a zeroed pool (pages are committed lazily by the OS as blocks are used,
    /// unless [`KvCache::commit_pages`] asks for them all).
    pub fn new(config: &ModelConfig, block_size: usize, num_blocks: usize, dtype: KvDtype) -> Self {
        let layout = layout(config, block_size);
        Self {
            layout,
            num_blocks,
            stores: (0..KvGroups::of(config).layers_per_block)
                .map(|_| KvStore::new(dtype, &layout, num_blocks))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(num_layers: usize, window: Option<usize>) -> ModelConfig {
        ModelConfig::for_tests(num_layers, window)
    }

    #[test]
    fn groups_split_global_and_window_layers_without_padding() {
        // No window: one group holding every layer, as before groups existed.
        let g = KvGroups::of(&config(4, None));
        assert_eq!((g.windows.clone(), g.layers_per_block), (vec![None], 4));
        assert_eq!(g.placement, [(0, 0), (0, 1), (0, 2), (0, 3)]);
        // Gemma 3 270M: layers 5, 11, 17 global; one global group and five window groups.
        let g = KvGroups::of(&config(18, Some(512)));
        assert_eq!(g.layers_per_block, 3);
        assert_eq!(
            g.windows,
            [None, Some(512), Some(512), Some(512), Some(512), Some(512)]
        );
        assert_eq!(
            (g.placement[5], g.placement[11], g.placement[17]),
            ((0, 0), (0, 1), (0, 2))
        );
        assert_eq!(
            (g.placement[0], g.placement[4], g.placement[6]),
            ((1, 0), (2, 1), (2, 2))
        );
        // Gemma 3 1B: 4 global and 22 local layers make groups of 2 (2 + 11 of them).
        let g = KvGroups::of(&config(26, Some(512)));
        assert_eq!((g.layers_per_block, g.len()), (2, 13));
        // Every (group, store) holds exactly one layer.
        let mut seen: Vec<_> = g.placement.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 26);
    }

    /// How many of the pages `v`'s buffer spans are resident (`mincore`), and how many it
    /// spans.
    fn resident_pages<T>(v: &[T]) -> (usize, usize) {
        const PAGE: usize = 4096;
        let start = v.as_ptr() as usize & !(PAGE - 1);
        let len = v.as_ptr() as usize + std::mem::size_of_val(v) - start;
        let mut flags = vec![0u8; len.div_ceil(PAGE)];
        // SAFETY: the range is page-aligned and mapped (it holds `v`); `flags` has one byte
        // per page of it.
        let rc = unsafe { libc::mincore(start as *mut libc::c_void, len, flags.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore");
        (flags.iter().filter(|&&f| f & 1 == 1).count(), flags.len())
    }

    #[test]
    fn committing_makes_every_page_of_the_pool_resident() {
        // 64 MiB per pool: above glibc's largest mmap threshold (32 MiB), so fresh mappings.
        let mut kv = KvCache::new(&config(1, None), 16, 1 << 20, KvDtype::F16);
        let pools = |kv: &KvCache| -> Vec<(usize, usize)> {
            kv.stores
                .iter()
                .flat_map(|s| match s {
                    KvStore::F16 { k, v } => [resident_pages(k), resident_pages(v)],
                    KvStore::Q8 { .. } => unreachable!("an f16 pool"),
                })
                .collect()
        };
        for (resident, pages) in pools(&kv) {
            assert!(
                resident < pages / 2,
                "committed lazily: {resident} of {pages} pages"
            );
        }
        // A value where a page's write lands (a page past the buffer's start) survives.
        let one = half::f16::from_bits(0x3c01); // both bytes nonzero
        let KvStore::F16 { k, .. } = &mut kv.stores[0] else {
            unreachable!("an f16 pool")
        };
        k[2048] = one;
        kv.commit_pages();
        for (resident, pages) in pools(&kv) {
            assert_eq!(resident, pages, "every page committed");
        }
        let KvStore::F16 { k, .. } = &kv.stores[0] else {
            unreachable!("an f16 pool")
        };
        assert_eq!(k[2048], one, "contents unchanged");
    }

    #[test]
    fn max_blocks_caps_window_groups_at_the_window_plus_a_chunk() {
        let w = [None, Some(512), Some(512)];
        // Short sequences: every group holds all of them.
        assert_eq!(max_blocks(&w, 100, 16, 1), 3 * 7);
        // Decoding past the window: ceil(511 + 1, 16) + 1 = 33 per window group.
        assert_eq!(max_blocks(&w, 4096, 16, 1), 256 + 2 * 33);
        // A 1,024-token chunk: the window before it plus the chunk.
        assert_eq!(max_blocks(&w, 4096, 16, 1024), 256 + 2 * (96 + 1));
    }
}
