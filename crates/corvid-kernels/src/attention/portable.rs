//! The portable definition of both attention passes. The SIMD kernels must produce
//! exactly these numbers: scores are `dot_f32(q, k) * scale` (eight-lane FMA partial
//! sums added in lane order; for a q8_0 pool `dot_f32(q, k) * k_scale * scale`),
//! outputs are FMA chains over the context in token order (for q8_0 each probability is
//! first multiplied by its row's V scale). A query row of a tile of tokens attends only
//! its own token's positions: its scores elsewhere are never read and its output sums
//! exactly the terms its token alone would.

use super::{KvElem, Row, SeqKv};
use crate::dot::dot_f32;

/// `scores[h * ctx_len + t] = (q_h · k_t) * scale` for every head of the group.
pub(super) fn scores<E: KvElem>(
    kv: &SeqKv<'_, E>,
    q: &[f32],
    scale: f32,
    row: &mut Vec<f32>,
    scores: &mut [f32],
) {
    for (i, (tile, used)) in kv.tiles().enumerate() {
        tile_scores(kv, i, tile, 0..used, q, scale, row, scores);
    }
}

/// The scores of the keys in `slots` of the `i`-th tile of the context (at `tile`).
#[allow(clippy::too_many_arguments)]
pub(super) fn tile_scores<E: KvElem>(
    kv: &SeqKv<'_, E>,
    i: usize,
    tile: usize,
    slots: std::ops::Range<usize>,
    q: &[f32],
    scale: f32,
    row: &mut Vec<f32>,
    scores: &mut [f32],
) {
    let (hd, bs) = (kv.layout.head_dim, kv.layout.block_size);
    row.resize(hd, 0.0);
    for s in slots {
        for (d, x) in row.iter_mut().enumerate() {
            *x = kv.k_pool[tile + d * bs + s].to_f32();
        }
        let k_scale = kv.scales.map(|sc| sc.k[kv.scale_index(tile) + s]);
        for (h, qh) in q.chunks_exact(hd).enumerate() {
            let dot = dot_f32(qh, row);
            let dot = k_scale.map_or(dot, |ks| dot * ks);
            scores[h * kv.ctx_len + i * bs + s] = dot * scale;
        }
    }
}

/// `out_r = Σ_t p[r * ctx_len + t] · v_t` over the positions `t` of `rows[r]`,
/// accumulated in token order.
pub(super) fn values<E: KvElem>(
    kv: &SeqKv<'_, E>,
    p: &[f32],
    rows: &[Row],
    row: &mut Vec<f32>,
    out: &mut [f32],
) {
    let (hd, bs) = (kv.layout.head_dim, kv.layout.block_size);
    let ctx = kv.ctx_len;
    row.resize(hd, 0.0);
    out.fill(0.0);
    for (i, (tile, used)) in kv.tiles().enumerate() {
        for s in 0..used {
            let t = i * bs + s;
            let v = &kv.v_pool[tile + s * hd..tile + (s + 1) * hd];
            for (x, &y) in row.iter_mut().zip(v) {
                *x = y.to_f32();
            }
            let v_scale = kv.scales.map(|sc| sc.v[kv.scale_index(tile) + s]);
            for (r, out_r) in out.chunks_exact_mut(hd).enumerate() {
                if !rows[r].range().contains(&t) {
                    continue;
                }
                let w = p[r * ctx + t];
                let w = v_scale.map_or(w, |vs| w * vs);
                for (a, &x) in out_r.iter_mut().zip(row.iter()) {
                    *a = w.mul_add(x, *a);
                }
            }
        }
    }
}
