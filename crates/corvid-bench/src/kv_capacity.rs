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

/// Computes capacities from the pool geometry and the workload's `prompt + output`
/// lengths in tokens.
pub fn kv_capacity(
    blocks_total: usize,
    block_size: usize,
    kv_bytes: usize,
    max_model_len: usize,
    seq_lens: &[usize],
) -> KvCapacity {
    let bs = block_size.max(1);
    let per_seq_contig = max_model_len.div_ceil(bs).max(1);
    let contiguous_max_seqs = blocks_total / per_seq_contig;
    let needs: Vec<usize> = seq_lens.iter().map(|l| l.div_ceil(bs).max(1)).collect();
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
        kv_bytes,
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

    #[test]
    fn paged_fits_more_than_contiguous() {
        // 100 blocks of 16; max_model_len 512 = 32 blocks per contiguous slot -> 3 seqs.
        let lens = vec![100; 50]; // 7 blocks each -> 14 fit
        let k = kv_capacity(100, 16, 0, 512, &lens);
        assert_eq!(k.contiguous_max_seqs, 3);
        assert_eq!(k.paged_max_seqs, 14);
        assert!(!k.paged_all_fit);
        assert!((k.ratio - 14.0 / 3.0).abs() < 1e-9);
        // A workload that fits whole: capacity estimated from its mean need.
        let k = kv_capacity(100, 16, 0, 512, &[100, 100]);
        assert!(k.paged_all_fit);
        assert_eq!(k.paged_max_seqs, 14);
    }
}
