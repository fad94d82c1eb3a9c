//! Paged attention on CPU: one query head attends over a sequence's keys and values,
//! read through its block table from a pool of fixed-size KV blocks (f16).
//!
//! Block layout (per layer, K and V alike): block `b`, slot `s`, KV head `h` starts at
//! element `((b * block_size + s) * n_kv_heads + h) * head_dim`.

use crate::dot::dot_f32;
use crate::ops::softmax;
use half::f16;
use half::slice::HalfFloatSliceExt;

/// Shape of one layer's KV block pool.
#[derive(Clone, Copy, Debug)]
pub struct KvLayout {
    /// Tokens per block.
    pub block_size: usize,
    /// KV heads.
    pub n_kv_heads: usize,
    /// Dimensions per head.
    pub head_dim: usize,
}

impl KvLayout {
    /// Element offset of `(slot, kv_head)` where `slot = block * block_size + offset`.
    #[inline]
    pub fn offset(&self, slot: usize, kv_head: usize) -> usize {
        (slot * self.n_kv_heads + kv_head) * self.head_dim
    }

    /// Elements per token (all KV heads).
    pub fn token_width(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}

/// Stores one token's K and V rows (`n_kv_heads * head_dim` each) at `slot`.
pub fn write_kv(
    layout: &KvLayout,
    k_pool: &mut [f16],
    v_pool: &mut [f16],
    slot: usize,
    k: &[f32],
    v: &[f32],
) {
    let o = layout.offset(slot, 0);
    let w = layout.token_width();
    k_pool[o..o + w].convert_from_f32_slice(k);
    v_pool[o..o + w].convert_from_f32_slice(v);
}

/// Scratch buffers reused across calls so the hot loop does not allocate.
#[derive(Default)]
pub struct AttnScratch {
    scores: Vec<f32>,
    row: Vec<f32>,
    q: Vec<f32>,
}

/// Attention of the query heads that share one KV head (GQA), over the first
/// `ctx_len` tokens of a sequence.
///
/// `qs` holds the group's query heads back to back (`head_dim` each) and `out` receives
/// their outputs in the same layout. Each key and value row is converted from f16 once
/// and used by every head of the group. `block_table[i]` is the pool block holding the
/// sequence's tokens `i*block_size .. (i+1)*block_size`. Like llama.cpp's f16 KV path,
/// queries and softmax weights are rounded to f16 before the products; sums stay f32.
#[allow(clippy::too_many_arguments)]
pub fn paged_attention_group(
    layout: &KvLayout,
    k_pool: &[f16],
    v_pool: &[f16],
    block_table: &[u32],
    ctx_len: usize,
    kv_head: usize,
    qs: &[f32],
    scale: f32,
    scratch: &mut AttnScratch,
    out: &mut [f32],
) {
    let hd = layout.head_dim;
    let bs = layout.block_size;
    let heads = qs.len() / hd;
    let slot = |t: usize| block_table[t / bs] as usize * bs + t % bs;
    scratch.q.clear();
    scratch
        .q
        .extend(qs.iter().map(|&v| f16::from_f32(v).to_f32()));
    scratch.row.resize(hd, 0.0);
    scratch.scores.clear();
    scratch.scores.resize(heads * ctx_len, 0.0);
    for t in 0..ctx_len {
        let o = layout.offset(slot(t), kv_head);
        k_pool[o..o + hd].convert_to_f32_slice(&mut scratch.row);
        for h in 0..heads {
            scratch.scores[h * ctx_len + t] =
                dot_f32(&scratch.q[h * hd..(h + 1) * hd], &scratch.row) * scale;
        }
    }
    for h in 0..heads {
        let s = &mut scratch.scores[h * ctx_len..(h + 1) * ctx_len];
        softmax(s);
        s.iter_mut().for_each(|p| *p = f16::from_f32(*p).to_f32());
    }
    out.fill(0.0);
    for t in 0..ctx_len {
        let o = layout.offset(slot(t), kv_head);
        v_pool[o..o + hd].convert_to_f32_slice(&mut scratch.row);
        for (h, out_h) in out.chunks_exact_mut(hd).enumerate() {
            let p = scratch.scores[h * ctx_len + t];
            for (a, &v) in out_h.iter_mut().zip(&scratch.row) {
                *a = p.mul_add(v, *a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paged_equals_contiguous_attention() {
        let layout = KvLayout {
            block_size: 4,
            n_kv_heads: 2,
            head_dim: 8,
        };
        let blocks = 6;
        let n = blocks * 4 * layout.token_width();
        let mut k = vec![f16::ZERO; n];
        let mut v = vec![f16::ZERO; n];
        // Scatter 10 tokens into non-contiguous blocks 5, 1, 3.
        let table = [5u32, 1, 3];
        let ctx = 10;
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        for t in 0..ctx {
            let kr: Vec<f32> = (0..16)
                .map(|i| ((t * 7 + i) % 5) as f32 * 0.25 - 0.5)
                .collect();
            let vr: Vec<f32> = (0..16).map(|i| ((t * 3 + i) % 7) as f32 * 0.125).collect();
            let slot = table[t / 4] as usize * 4 + t % 4;
            write_kv(&layout, &mut k, &mut v, slot, &kr, &vr);
            ks.push(kr);
            vs.push(vr);
        }
        let q: Vec<f32> = (0..8).map(|i| i as f32 * 0.1).collect();
        let mut out = vec![0.0; 8];
        paged_attention_group(
            &layout,
            &k,
            &v,
            &table,
            ctx,
            1,
            &q,
            0.35,
            &mut AttnScratch::default(),
            &mut out,
        );
        // Contiguous reference for head 1.
        let mut s: Vec<f32> = ks.iter().map(|kr| dot_f32(&q, &kr[8..16]) * 0.35).collect();
        softmax(&mut s);
        for d in 0..8 {
            let want: f32 = s.iter().zip(&vs).map(|(p, vr)| p * vr[8 + d]).sum();
            assert!(
                (out[d] - want).abs() < 2e-3,
                "dim {d}: {} vs {want}",
                out[d]
            );
        }
    }

    #[test]
    fn a_group_equals_its_heads_one_by_one() {
        let layout = KvLayout {
            block_size: 2,
            n_kv_heads: 1,
            head_dim: 4,
        };
        let n = 4 * 2 * layout.token_width();
        let mut k = vec![f16::ZERO; n];
        let mut v = vec![f16::ZERO; n];
        let table = [3u32, 0, 2];
        for t in 0..5 {
            let row: Vec<f32> = (0..4).map(|i| ((t + i) % 3) as f32 - 1.0).collect();
            let slot = table[t / 2] as usize * 2 + t % 2;
            write_kv(&layout, &mut k, &mut v, slot, &row, &row);
        }
        let qs: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut group = vec![0.0; 12];
        let mut scratch = AttnScratch::default();
        paged_attention_group(
            &layout,
            &k,
            &v,
            &table,
            5,
            0,
            &qs,
            0.5,
            &mut scratch,
            &mut group,
        );
        for h in 0..3 {
            let mut one = vec![0.0; 4];
            paged_attention_group(
                &layout,
                &k,
                &v,
                &table,
                5,
                0,
                &qs[h * 4..(h + 1) * 4],
                0.5,
                &mut scratch,
                &mut one,
            );
            assert_eq!(one, group[h * 4..(h + 1) * 4]);
        }
    }
}
