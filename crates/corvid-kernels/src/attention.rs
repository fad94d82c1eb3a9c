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

/// Attention of one query head `q` over the first `ctx_len` tokens of a sequence.
///
/// `block_table[i]` is the pool block holding the sequence's tokens
/// `i*block_size .. (i+1)*block_size`. Like llama.cpp's f16 KV path, the query and the
/// softmax weights are rounded to f16 before the products; sums stay f32.
#[allow(clippy::too_many_arguments)]
pub fn paged_attention_head(
    layout: &KvLayout,
    k_pool: &[f16],
    v_pool: &[f16],
    block_table: &[u32],
    ctx_len: usize,
    kv_head: usize,
    q: &[f32],
    scale: f32,
    scratch: &mut AttnScratch,
    out: &mut [f32],
) {
    let hd = layout.head_dim;
    let bs = layout.block_size;
    scratch.q.clear();
    scratch
        .q
        .extend(q.iter().map(|&v| f16::from_f32(v).to_f32()));
    scratch.row.resize(hd, 0.0);
    scratch.scores.clear();
    for t in 0..ctx_len {
        let slot = block_table[t / bs] as usize * bs + t % bs;
        let o = layout.offset(slot, kv_head);
        k_pool[o..o + hd].convert_to_f32_slice(&mut scratch.row);
        scratch
            .scores
            .push(dot_f32(&scratch.q, &scratch.row) * scale);
    }
    softmax(&mut scratch.scores);
    out.fill(0.0);
    for (t, &p) in scratch.scores.iter().enumerate() {
        let p = f16::from_f32(p).to_f32();
        let slot = block_table[t / bs] as usize * bs + t % bs;
        let o = layout.offset(slot, kv_head);
        v_pool[o..o + hd].convert_to_f32_slice(&mut scratch.row);
        for (a, &v) in out.iter_mut().zip(&scratch.row) {
            *a = p.mul_add(v, *a);
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
        paged_attention_head(
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
}
