//! KV capacity at a fixed budget: how many sequences fit when blocks are allocated for
//! actual lengths (paged) versus when each sequence reserves `max_model_len` up front
//! (contiguous, as a naive server that preallocates a max-length cache per slot).

use serde::{Deserialize, Serialize};

/// The comparison for one workload and one KV pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KvCapacity {
    /// KV blocks in the pool.
    pub blocks_total: usize,
    /// Tokens per block.
    pub block_size: usize,
    /// Bytes the pool takes.
    pub kv_bytes: usize,
    /// Context limit each contiguous reservation holds.
    pub max_model_len: usize,
    /// Mean blocks a workload request needs at its actual prompt + output length.
    pub mean_blocks_per_request: f64,
    /// Sequences that fit with max-length reservations.
    pub contiguous_max_seqs: usize,
    /// Sequences that fit with paged allocation: workload requests taken in order until
    /// the pool is full; when the whole workload fits, the pool divided by the mean
    /// blocks per request (the same mix, repeated).
    pub paged_max_seqs: usize,
    /// True when every workload request fit at once (`paged_max_seqs` is then the
    /// mean-based estimate).
    pub paged_all_fit: bool,
    /// `paged_max_seqs / contiguous_max_seqs` (infinite shown as 0 when nothing fits contiguously).
    pub ratio: f64,
}

/// The KV pool's geometry, as the engine sizes it.
pub struct KvPool<'a> {
    /// Blocks sequences can use.
    pub blocks: usize,
    /// Tokens per block.
    pub block_size: usize,
    /// Bytes the pool takes.
    pub bytes: usize,
    /// Context limit of one sequence.
    pub max_model_len: usize,
    /// KV groups (layers sharing block tables): a block holds `block_size` tokens of one
    /// group, so a whole cache for one sequence is `groups` blocks per `block_size` tokens.
    pub groups: usize,
    /// Blocks one sequence of the given length holds while it decodes: every group's
    /// blocks for the whole sequence, except sliding-window groups, which hold only their
    /// window's (a prompt being prefilled in chunks briefly holds a chunk more there).
    pub blocks_for: &'a dyn Fn(usize) -> usize,
}

/// Computes capacities from the pool geometry and the workload's `prompt + output`
/// lengths in tokens.
pub fn kv_capacity(pool: &KvPool<'_>, seq_lens: &[usize]) -> KvCapacity {
    let (blocks_total, max_model_len) = (pool.blocks, pool.max_model_len);
    let bs = pool.block_size.max(1);
    let per_seq_contig = (pool.groups.max(1) * max_model_len.div_ceil(bs)).max(1);
    let contiguous_max_seqs = blocks_total / per_seq_contig;
    let needs: Vec<usize> = seq_lens
        .iter()
        .map(|&l| (pool.blocks_for)(l).max(1))
        .collect();
    let mut used = 0;
    let mut paged = 0;
    for n in &needs {
        if used + n > blocks_total {
            break;
        }
        used += n;
        paged += 1;
    }
    let mean = if needs.is_empty() {
        0.0
    } else {
        needs.iter().sum::<usize>() as f64 / needs.len() as f64
    };
    let paged_all_fit = paged == needs.len();
    if paged_all_fit && mean > 0.0 {
        paged = (blocks_total as f64 / mean).floor() as usize;
    }
    KvCapacity {
        blocks_total,
        block_size: bs,
        kv_bytes: pool.bytes,
        max_model_len,
        mean_blocks_per_request: mean,
        contiguous_max_seqs,
        paged_max_seqs: paged,
        paged_all_fit,
        ratio: if contiguous_max_seqs > 0 {
            paged as f64 / contiguous_max_seqs as f64
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(blocks: usize, groups: usize, blocks_for: &dyn Fn(usize) -> usize) -> KvPool<'_> {
        KvPool {
            blocks,
            block_size: 16,
            bytes: 0,
            max_model_len: 512,
            groups,
            blocks_for,
        }
    }

    #[test]
    fn paged_fits_more_than_contiguous() {
        // 100 blocks of 16; max_model_len 512 = 32 blocks per contiguous slot -> 3 seqs.
        let whole = |l: usize| l.div_ceil(16);
        let lens = vec![100; 50]; // 7 blocks each -> 14 fit
        let k = kv_capacity(&pool(100, 1, &whole), &lens);
        assert_eq!(k.contiguous_max_seqs, 3);
        assert_eq!(k.paged_max_seqs, 14);
        assert!(!k.paged_all_fit);
        assert!((k.ratio - 14.0 / 3.0).abs() < 1e-9);
        // A workload that fits whole: capacity estimated from its mean need.
        let k = kv_capacity(&pool(100, 1, &whole), &[100, 100]);
        assert!(k.paged_all_fit);
        assert_eq!(k.paged_max_seqs, 14);
    }

    /// With a sliding-window group the paged need is the engine's (window blocks only),
    /// while a contiguous slot still reserves every group's whole context.
    #[test]
    fn window_groups_count_only_their_window() {
        // One global group, one window group holding at most 3 blocks.
        let windowed = |l: usize| l.div_ceil(16) + l.div_ceil(16).min(3);
        let k = kv_capacity(&pool(200, 2, &windowed), &[160; 40]); // 10 + 3 blocks each
        assert_eq!(k.contiguous_max_seqs, 200 / 64);
        assert_eq!(k.paged_max_seqs, 200 / 13);
    }
}
