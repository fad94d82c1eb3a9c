//! AVX2 + FMA + F16C versions of the two attention passes, bit-identical to
//! `portable.rs`.
//!
//! Scores: the eight keys of a group sit in the eight lanes (keys are stored transposed),
//! so lane `j` computes exactly `dot_f32(q, k_j)`: for each of the eight partial sums
//! `k` an FMA chain over dimensions `8c + k`, then the partial sums added in order `k =
//! 0..8`. Values: the accumulators of a slice of the output dimensions stay in
//! registers across the whole context, one FMA per token in token order. For a tile of
//! query tokens ([`super::paged_attention_tile`]) both run over the union of the tokens'
//! contexts: a score outside a row's own positions is computed and never read, and a
//! row's output adds only its own positions. Both are
//! generic over the element type ([`KvElem::load8`]); a q8_0 pool's scales enter exactly
//! where the portable definition applies them.

use std::arch::x86_64::*;

use super::{portable, KvElem, Row, SeqKv};

/// Query heads (rows) handled per pass over a tile's keys: up to twelve accumulators.
/// Six rows per pass (two tokens of a three-head group) score 20 % faster per row than
/// three (measured: 0.77 vs 0.98 µs per row over 432 keys, head_dim 64); converting the
/// keys to f32 once for the passes of a tile was measured slower.
const HEADS_PER_PASS: usize = 6;

/// See `portable::scores`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C, and `head_dim` must be a multiple of 8.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn scores<E: KvElem>(
    kv: &SeqKv<'_, E>,
    q: &[f32],
    scale: f32,
    row: &mut Vec<f32>,
    scores: &mut [f32],
) {
    let (hd, bs, ctx) = (kv.layout.head_dim, kv.layout.block_size, kv.ctx_len);
    let tile_len = kv.layout.tile_len();
    for i in 0..PREFETCH_AHEAD {
        prefetch_tiles(kv, i);
    }
    for (i, (tile, used)) in kv.tiles().enumerate() {
        prefetch_tiles(kv, i + PREFETCH_AHEAD);
        let kt = kv.k_pool[tile..tile + tile_len].as_ptr();
        let ks = kv.scales.map(|sc| sc.k[kv.scale_index(tile)..].as_ptr());
        let out = &mut scores[i * bs..];
        // Groups of eight slots that lie inside the tile; the rest goes the portable way.
        let simd_end = used.min(bs / 8 * 8);
        key_tile(kt, ks, simd_end, used, bs, hd, ctx, q, scale, out);
        if simd_end < used {
            portable::tile_scores(kv, i, tile, simd_end..used, q, scale, row, scores);
        }
    }
}

/// The scores of slots `0 .. simd_end` of one key tile at `kt`, with their scales at
/// `ks`, of every head of `q`: slot `s` of head `h` goes to `out[h * ctx + s]`.
///
/// # Safety
/// As [`scores`]; the tile (and its scales) must be readable.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn key_tile<E: KvElem>(
    kt: *const E,
    ks: Option<*const f32>,
    simd_end: usize,
    used: usize,
    bs: usize,
    hd: usize,
    ctx: usize,
    q: &[f32],
    scale: f32,
    out: &mut [f32],
) {
    let heads = q.len() / hd;
    let mut t0 = 0;
    while t0 < simd_end {
        // Two groups per pass when both lie in the tile (each query value loaded
        // serves both; two groups of four heads still fit the registers).
        let pair = t0 + 16 <= bs && t0 + 8 < used;
        let groups = if pair { 2 } else { 1 };
        for h0 in (0..heads).step_by(HEADS_PER_PASS) {
            let g = HEADS_PER_PASS.min(heads - h0);
            let mut res = [[[0.0f32; 8]; HEADS_PER_PASS]; 2];
            let k = kt.add(t0);
            let ks = ks.map(|p| p.add(t0));
            let qh = &q[h0 * hd..(h0 + g) * hd];
            let r = &mut res;
            match (g, pair) {
                (1, true) => key_groups::<E, 1, 4, 2>(k, ks, bs, hd, qh, scale, r),
                (1, false) => key_groups::<E, 1, 8, 1>(k, ks, bs, hd, qh, scale, r),
                (2, true) => key_groups::<E, 2, 2, 2>(k, ks, bs, hd, qh, scale, r),
                (2, false) => key_groups::<E, 2, 4, 1>(k, ks, bs, hd, qh, scale, r),
                (3, true) => key_groups::<E, 3, 1, 2>(k, ks, bs, hd, qh, scale, r),
                (3, false) => key_groups::<E, 3, 2, 1>(k, ks, bs, hd, qh, scale, r),
                (4, true) => key_groups::<E, 4, 1, 2>(k, ks, bs, hd, qh, scale, r),
                (4, false) => key_groups::<E, 4, 2, 1>(k, ks, bs, hd, qh, scale, r),
                (5, true) => key_groups::<E, 5, 1, 2>(k, ks, bs, hd, qh, scale, r),
                (5, false) => key_groups::<E, 5, 2, 1>(k, ks, bs, hd, qh, scale, r),
                (_, true) => key_groups::<E, 6, 1, 2>(k, ks, bs, hd, qh, scale, r),
                _ => key_groups::<E, 6, 2, 1>(k, ks, bs, hd, qh, scale, r),
            }
            for (gi, group) in res.iter().take(groups).enumerate() {
                let start = t0 + 8 * gi;
                let lanes = 8.min(used - start);
                for (j, r) in group.iter().take(g).enumerate() {
                    let at = (h0 + j) * ctx + start;
                    out[at..at + lanes].copy_from_slice(&r[..lanes]);
                }
            }
        }
        t0 += 8 * groups;
    }
}

/// Scores of `G` heads (`q`, `G * hd` values) against `K` groups of eight keys, group
/// `j` starting at `k + 8j` (dimension `d` of key `l` at `k + d * bs + l`), written to
/// `res[j][h]`. `L` of the eight partial sums are computed side by side, so `G * L * K`
/// FMA chains hide the FMA latency and each broadcast query value serves `K` groups; the
/// partial sums are still added to the total in lane order. With key scales (`ks`, key
/// `l` of group `j` at `ks + 8j + l`), each total is multiplied by its key's scale before
/// `scale`.
///
/// # Safety
/// The `K` groups of keys (and of scales, if any) must lie inside the pool.
// Indexing keeps the three register-array dimensions (group, lane, head) readable.
#[allow(clippy::needless_range_loop)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn key_groups<E: KvElem, const G: usize, const L: usize, const K: usize>(
    k: *const E,
    ks: Option<*const f32>,
    bs: usize,
    hd: usize,
    q: &[f32],
    scale: f32,
    res: &mut [[[f32; 8]; HEADS_PER_PASS]; 2],
) {
    let mut sum = [[_mm256_setzero_ps(); G]; K];
    for lane0 in (0..8).step_by(L) {
        let mut acc = [[[_mm256_setzero_ps(); G]; L]; K];
        for c in 0..hd / 8 {
            for l in 0..L {
                let d = 8 * c + lane0 + l;
                let mut keys = [_mm256_setzero_ps(); K];
                for (j, kv) in keys.iter_mut().enumerate() {
                    *kv = E::load8(k.add(d * bs + 8 * j));
                }
                for h in 0..G {
                    let qv = _mm256_set1_ps(*q.get_unchecked(h * hd + d));
                    for j in 0..K {
                        acc[j][l][h] = _mm256_fmadd_ps(qv, keys[j], acc[j][l][h]);
                    }
                }
            }
        }
        for j in 0..K {
            for l in 0..L {
                for h in 0..G {
                    sum[j][h] = if lane0 + l == 0 {
                        acc[j][l][h]
                    } else {
                        _mm256_add_ps(sum[j][h], acc[j][l][h])
                    };
                }
            }
        }
    }
    let scale = _mm256_set1_ps(scale);
    for j in 0..K {
        let key_scale = ks.map(|p| _mm256_loadu_ps(p.add(8 * j)));
        for h in 0..G {
            let dot = key_scale.map_or(sum[j][h], |s| _mm256_mul_ps(sum[j][h], s));
            _mm256_storeu_ps(res[j][h].as_mut_ptr(), _mm256_mul_ps(dot, scale));
        }
    }
}

/// How many blocks ahead of the one being scored [`prefetch_tiles`] requests.
const PREFETCH_AHEAD: usize = 4;

/// Asks the CPU to start loading the key tile (into L1) and the value tile (into L2, for
/// the value pass after the softmax) of the sequence's `i`-th block, with their scales if
/// the pool has them. A sequence's blocks
/// lie scattered over the pool and a batch's K/V far exceeds the caches, so without this
/// every new block waits on memory (measured: 2.3x slower per call once K/V no longer fit
/// in cache).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn prefetch_tiles<E>(kv: &SeqKv<'_, E>, i: usize) {
    let bs = kv.layout.block_size;
    let Some(&block) = kv.block_table.get(i) else {
        return;
    };
    if i * bs >= kv.ctx_len {
        return;
    }
    let tile = kv.layout.tile_offset(block as usize, kv.kv_head);
    let bytes = kv.layout.tile_len() * std::mem::size_of::<E>();
    let (k, v) = (
        kv.k_pool.as_ptr().add(tile) as *const i8,
        kv.v_pool.as_ptr().add(tile) as *const i8,
    );
    for line in (0..bytes).step_by(64) {
        _mm_prefetch::<_MM_HINT_T0>(k.add(line));
        _mm_prefetch::<_MM_HINT_T1>(v.add(line));
    }
    if let Some(sc) = kv.scales {
        let at = kv.scale_index(tile);
        _mm_prefetch::<_MM_HINT_T0>(sc.k.as_ptr().add(at) as *const i8);
        _mm_prefetch::<_MM_HINT_T1>(sc.v.as_ptr().add(at) as *const i8);
    }
}

/// Query rows handled per pass over the values (bounded by the registers). More rows
/// per pass, or converting a block's values to f32 once for the passes of a tile of
/// query tokens, were measured no faster: the passes are bound by the FMAs and the weight
/// broadcasts, not by the loads.
const VALUE_ROWS: usize = 4;

/// See `portable::values`.
///
/// # Safety
/// As [`scores`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn values<E: KvElem>(
    kv: &SeqKv<'_, E>,
    p: &[f32],
    rows: &[Row],
    out: &mut [f32],
) {
    let hd = kv.layout.head_dim;
    let vectors = hd / 8;
    for h0 in (0..rows.len()).step_by(VALUE_ROWS) {
        let g = VALUE_ROWS.min(rows.len() - h0);
        // Output vectors per pass: as many as keep eight accumulators in registers and divide the head.
        let w = [8, 4, 2, 1]
            .into_iter()
            .find(|&w| vectors.is_multiple_of(w) && g * w <= 8)
            .unwrap_or(1);
        let o = &mut out[h0 * hd..(h0 + g) * hd];
        let r = &rows[h0..h0 + g];
        match (g, w) {
            (1, 8) => value_pass::<E, 1, 8>(kv, p, h0, r, o),
            (1, 4) => value_pass::<E, 1, 4>(kv, p, h0, r, o),
            (1, 2) => value_pass::<E, 1, 2>(kv, p, h0, r, o),
            (1, _) => value_pass::<E, 1, 1>(kv, p, h0, r, o),
            (2, 4) => value_pass::<E, 2, 4>(kv, p, h0, r, o),
            (2, 2) => value_pass::<E, 2, 2>(kv, p, h0, r, o),
            (2, _) => value_pass::<E, 2, 1>(kv, p, h0, r, o),
            (3, 2) => value_pass::<E, 3, 2>(kv, p, h0, r, o),
            (3, _) => value_pass::<E, 3, 1>(kv, p, h0, r, o),
            (_, 2) => value_pass::<E, 4, 2>(kv, p, h0, r, o),
            _ => value_pass::<E, 4, 1>(kv, p, h0, r, o),
        }
    }
}

/// Outputs of rows `h0 .. h0 + G` (`out`, `G * hd` values), `W` vectors of dimensions
/// at a time, row `h` over its own positions `rows[h]` only. Where every row of the
/// pass attends a position (the bulk of a tile's context) the weights go in unchecked.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn value_pass<E: KvElem, const G: usize, const W: usize>(
    kv: &SeqKv<'_, E>,
    p: &[f32],
    h0: usize,
    rows: &[Row],
    out: &mut [f32],
) {
    let (hd, bs, ctx) = (kv.layout.head_dim, kv.layout.block_size, kv.ctx_len);
    let ranges: [std::ops::Range<usize>; G] = std::array::from_fn(|h| rows[h].range());
    let start = ranges.iter().map(|r| r.start).min().unwrap_or(0);
    let end = ranges.iter().map(|r| r.end).max().unwrap_or(0);
    let all = ranges.iter().map(|r| r.start).max().unwrap_or(0)
        ..ranges.iter().map(|r| r.end).min().unwrap_or(0);
    for c in 0..hd / (8 * W) {
        let mut acc = [[_mm256_setzero_ps(); W]; G];
        for (i, (tile, used)) in kv.tiles().enumerate() {
            let first = i * bs;
            let slots =
                start.clamp(first, first + used) - first..end.clamp(first, first + used) - first;
            let vt = &kv.v_pool[tile..tile + used * hd];
            let vs = kv.scales.map(|sc| &sc.v[kv.scale_index(tile)..][..used]);
            for s in slots {
                let row = vt.as_ptr().add(s * hd + c * 8 * W);
                let t = first + s;
                let mut w = [_mm256_setzero_ps(); G];
                for (h, x) in w.iter_mut().enumerate() {
                    let w = *p.get_unchecked((h0 + h) * ctx + t);
                    *x = _mm256_set1_ps(vs.map_or(w, |vs| w * vs[s]));
                }
                if all.contains(&t) {
                    add_row(&mut acc, &w, row, |_| true);
                } else {
                    add_row(&mut acc, &w, row, |h| ranges[h].contains(&t));
                }
            }
        }
        for (h, a) in acc.iter().enumerate() {
            for (j, v) in a.iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add(h * hd + c * 8 * W + 8 * j), *v);
            }
        }
    }
}

/// `acc[h] += w[h] · row` (`W` vectors of a value row at `row`) for each row `h` that
/// attends the position (`active(h)`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn add_row<E: KvElem, const G: usize, const W: usize>(
    acc: &mut [[__m256; W]; G],
    w: &[__m256; G],
    row: *const E,
    active: impl Fn(usize) -> bool,
) {
    for j in 0..W {
        let v = E::load8(row.add(8 * j));
        for (h, (acc_h, &w_h)) in acc.iter_mut().zip(w).enumerate() {
            if active(h) {
                acc_h[j] = _mm256_fmadd_ps(w_h, v, acc_h[j]);
            }
        }
    }
}

/// Rounds every element to the nearest f16 (ties to even, like `half::f16::from_f32`)
/// and back, eight at a time.
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn round_to_f16(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = _mm256_loadu_ps(c.as_ptr());
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
        _mm256_storeu_ps(c.as_mut_ptr(), _mm256_cvtph_ps(h));
    }
    for v in chunks.into_remainder() {
        *v = half::f16::from_f32(*v).to_f32();
    }
}
