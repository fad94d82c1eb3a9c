//! Paged attention against a contiguous reference, head grouping, and the SIMD kernels
//! against the portable definition, bit for bit.

// `&[0..n]` is the context list of a single query token here, not a mistaken range.
#![allow(clippy::single_range_in_vec_init)]

use super::*;
use crate::dot::dot_f32;
use rand::{Rng, SeedableRng};

#[test]
fn paged_equals_contiguous_attention() {
    let layout = KvLayout {
        block_size: 4,
        n_kv_heads: 2,
        head_dim: 8,
    };
    let mut store = KvStore::new(KvDtype::F16, &layout, 6);
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
        store.write(&layout, slot, &kr, &vr);
        ks.push(kr);
        vs.push(vr);
    }
    let q: Vec<f32> = (0..8).map(|i| i as f32 * 0.1).collect();
    let mut out = vec![0.0; 8];
    paged_attention_tile(
        &layout,
        &store,
        &table,
        &[0..ctx],
        1,
        &q,
        0.35,
        &mut AttnScratch::default(),
        &mut out,
        None,
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
    let mut store = KvStore::new(KvDtype::F16, &layout, 4);
    let table = [3u32, 0, 2];
    for t in 0..5 {
        let row: Vec<f32> = (0..4).map(|i| ((t + i) % 3) as f32 - 1.0).collect();
        let slot = table[t / 2] as usize * 2 + t % 2;
        store.write(&layout, slot, &row, &row);
    }
    let qs: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut group = vec![0.0; 12];
    let mut scratch = AttnScratch::default();
    paged_attention_tile(
        &layout,
        &store,
        &table,
        &[0..5],
        0,
        &qs,
        0.5,
        &mut scratch,
        &mut group,
        None,
    );
    for h in 0..3 {
        let mut one = vec![0.0; 4];
        paged_attention_tile(
            &layout,
            &store,
            &table,
            &[0..5],
            0,
            &qs[h * 4..(h + 1) * 4],
            0.5,
            &mut scratch,
            &mut one,
            None,
        );
        assert_eq!(one, group[h * 4..(h + 1) * 4]);
    }
}

/// A pool of `blocks` random blocks and a shuffled block table covering `ctx` tokens.
fn random_pool(
    dtype: KvDtype,
    layout: &KvLayout,
    blocks: usize,
    ctx: usize,
    rng: &mut impl Rng,
) -> (KvStore, Vec<u32>) {
    let mut store = KvStore::new(dtype, layout, blocks);
    let mut table: Vec<u32> = (0..blocks as u32).collect();
    for i in (1..table.len()).rev() {
        table.swap(i, rng.gen_range(0..=i));
    }
    table.truncate(ctx.div_ceil(layout.block_size));
    for t in 0..ctx {
        let kr: Vec<f32> = (0..layout.token_width())
            .map(|_| rng.gen_range(-2.0..2.0))
            .collect();
        let vr: Vec<f32> = (0..layout.token_width())
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let slot =
            table[t / layout.block_size] as usize * layout.block_size + t % layout.block_size;
        store.write(layout, slot, &kr, &vr);
    }
    (store, table)
}

/// Sequence view of KV head 1 of a pool.
fn view<'a, E>(
    layout: &'a KvLayout,
    k_pool: &'a [E],
    v_pool: &'a [E],
    scales: Option<Scales<'a>>,
    block_table: &'a [u32],
    ctx_len: usize,
) -> SeqKv<'a, E> {
    SeqKv {
        layout,
        k_pool,
        v_pool,
        scales,
        block_table,
        ctx_len,
        kv_head: 1,
    }
}

/// Portable and AVX2 scores and values of one pool, compared bit for bit.
fn compare_simd<E: KvElem>(kv: &SeqKv<'_, E>, heads: usize, shape: &str, rng: &mut impl Rng) {
    let (hd, ctx) = (kv.layout.head_dim, kv.ctx_len);
    let q: Vec<f32> = (0..heads * hd).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut row = Vec::new();
    let (mut want, mut got) = (vec![0.0; heads * ctx], vec![0.0; heads * ctx]);
    portable::scores(kv, &q, 0.125, &mut row, &mut want);
    // SAFETY: the caller checked use_simd; every head_dim tested is a multiple of 8.
    unsafe { avx2::scores(kv, &q, 0.125, &mut row, &mut got) };
    assert_eq!(want, got, "scores, shape {shape}");
    let p: Vec<f32> = (0..heads * ctx).map(|_| rng.gen_range(0.0..0.1)).collect();
    // Every row over the whole context, then each over positions of its own (as a tile's).
    let whole = vec![
        Row {
            lo: 0,
            len: ctx,
            masked: 0
        };
        heads
    ];
    let own: Vec<Row> = (0..heads)
        .map(|_| {
            let lo = rng.gen_range(0..ctx);
            let len = rng.gen_range(1..=ctx - lo);
            Row { lo, len, masked: 0 }
        })
        .collect();
    for rows in [whole, own] {
        let (mut want, mut got) = (vec![0.0; heads * hd], vec![0.0; heads * hd]);
        portable::values(kv, &p, &rows, &mut row, &mut want);
        // SAFETY: as above.
        unsafe { avx2::values(kv, &p, &rows, &mut got) };
        assert_eq!(want, got, "values, shape {shape}, rows {rows:?}");
    }
}

#[test]
fn simd_kernels_equal_the_portable_definition_bit_for_bit() {
    if !use_simd(8) {
        eprintln!("no AVX2/F16C: nothing to compare");
        return;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (head_dim, block_size, heads, ctx) in [
        (64usize, 16usize, 3usize, 1usize),
        (64, 16, 3, 37),
        (64, 16, 3, 300),
        (64, 8, 1, 9),
        (32, 16, 7, 100),
        (16, 5, 2, 23),
        (128, 32, 4, 65),
        (64, 12, 5, 50),
        (64, 16, 12, 70),
        (256, 16, 8, 40),
    ] {
        let layout = KvLayout {
            block_size,
            n_kv_heads: 2,
            head_dim,
        };
        let blocks = ctx.div_ceil(block_size) + 3;
        for dtype in [KvDtype::F16, KvDtype::Q8_0] {
            let (store, block_table) = random_pool(dtype, &layout, blocks, ctx, &mut rng);
            let shape = format!("{dtype:?} {head_dim}/{block_size}/{heads}/{ctx}");
            match &store {
                KvStore::F16 { k, v } => {
                    let kv = view(&layout, k, v, None, &block_table, ctx);
                    compare_simd(&kv, heads, &shape, &mut rng);
                }
                KvStore::Q8 {
                    k,
                    v,
                    k_scale,
                    v_scale,
                } => {
                    let scales = Some(Scales {
                        k: k_scale,
                        v: v_scale,
                    });
                    let kv = view(&layout, k, v, scales, &block_table, ctx);
                    compare_simd(&kv, heads, &shape, &mut rng);
                }
            }
        }
    }
}

#[test]
fn simd_f16_rounding_equals_half() {
    if !use_simd(8) {
        return;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut x: Vec<f32> = (0..1003)
        .map(|_| rng.gen_range(-1.0f32..1.0).powi(5))
        .collect();
    x.extend([
        0.0,
        -0.0,
        1e-8,
        65504.0,
        70000.0,
        f32::MIN_POSITIVE,
        0.5 + 1.0 / 4096.0,
    ]);
    let want: Vec<f32> = x.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
    // SAFETY: use_simd checked the CPU.
    unsafe { avx2::round_to_f16(&mut x) };
    assert_eq!(want, x);
}

#[test]
fn q8_rows_round_trip_within_half_a_step() {
    let layout = KvLayout {
        block_size: 4,
        n_kv_heads: 2,
        head_dim: 32,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut store = KvStore::new(KvDtype::Q8_0, &layout, 3);
    let k: Vec<f32> = (0..64).map(|_| rng.gen_range(-3.0..3.0)).collect();
    let mut v: Vec<f32> = (0..64).map(|_| rng.gen_range(-0.5..0.5)).collect();
    v[32..].fill(0.0);
    let slot = 2 * 4 + 3;
    store.write(&layout, slot, &k, &v);
    let KvStore::Q8 {
        k: kq,
        v: vq,
        k_scale,
        v_scale,
    } = &store
    else {
        unreachable!()
    };
    for h in 0..2 {
        let tile = layout.tile_offset(2, h);
        let at = layout.scale_offset(2, h) + 3;
        let (ks, vs) = (k_scale[at], v_scale[at]);
        let amax = |x: &[f32]| x.iter().fold(0.0f32, |m, a| m.max(a.abs()));
        assert_eq!(ks, amax(&k[h * 32..(h + 1) * 32]) / 127.0);
        for d in 0..32 {
            let kd = f32::from(kq[tile + d * 4 + 3]) * ks;
            let vd = f32::from(vq[tile + 3 * 32 + d]) * vs;
            assert!((kd - k[h * 32 + d]).abs() <= ks * 0.5 + 1e-6, "k {h}/{d}");
            assert!((vd - v[h * 32 + d]).abs() <= vs * 0.5 + 1e-6, "v {h}/{d}");
        }
    }
    // An all-zero row has scale 0 and zero elements.
    assert_eq!(v_scale[layout.scale_offset(2, 1) + 3], 0.0);
    assert!(vq[layout.tile_offset(2, 1) + 3 * 32..][..32]
        .iter()
        .all(|&q| q == 0));
}

#[test]
fn q8_attention_is_close_to_f16_attention() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut worst = 0.0f32;
    for (head_dim, block_size, heads, ctx) in [
        (64usize, 16usize, 3usize, 300usize),
        (32, 8, 2, 45),
        (12, 5, 4, 17),
    ] {
        let layout = KvLayout {
            block_size,
            n_kv_heads: 2,
            head_dim,
        };
        let blocks = ctx.div_ceil(block_size) + 2;
        let seed: u64 = rng.gen();
        let (f16s, table) = random_pool(
            KvDtype::F16,
            &layout,
            blocks,
            ctx,
            &mut rand::rngs::StdRng::seed_from_u64(seed),
        );
        let (q8s, _) = random_pool(
            KvDtype::Q8_0,
            &layout,
            blocks,
            ctx,
            &mut rand::rngs::StdRng::seed_from_u64(seed),
        );
        let q: Vec<f32> = (0..heads * head_dim)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let mut scratch = AttnScratch::default();
        let (mut a, mut b) = (vec![0.0; q.len()], vec![0.0; q.len()]);
        let sc = 1.0 / (head_dim as f32).sqrt();
        paged_attention_tile(
            &layout,
            &f16s,
            &table,
            &[0..ctx],
            1,
            &q,
            sc,
            &mut scratch,
            &mut a,
            None,
        );
        paged_attention_tile(
            &layout,
            &q8s,
            &table,
            &[0..ctx],
            1,
            &q,
            sc,
            &mut scratch,
            &mut b,
            None,
        );
        for (x, y) in a.iter().zip(&b) {
            worst = worst.max((x - y).abs());
        }
    }
    // Measured 1.7e-3 (values in [-1, 1]; q8_0 rounds each element by at most amax / 254).
    assert!(worst < 5e-3, "max |q8 - f16| = {worst}");
    eprintln!("max |q8 - f16| = {worst}");
}

/// A long context split into pieces and merged gives the whole-context result, up to the
/// f16 rounding of the (differently scaled) softmax weights, for both pool formats.
#[test]
fn split_contexts_merge_to_the_whole_context_result() {
    let layout = KvLayout {
        block_size: 16,
        n_kv_heads: 2,
        head_dim: 64,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for dtype in [KvDtype::F16, KvDtype::Q8_0] {
        for ctx in [PARTITION + 1, 2 * PARTITION, 1300] {
            let (store, table) = random_pool(dtype, &layout, ctx.div_ceil(16) + 3, ctx, &mut rng);
            let heads = 3;
            let q: Vec<f32> = (0..heads * 64).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let mut scratch = AttnScratch::default();
            let mut whole = vec![0.0; heads * 64];
            paged_attention_tile(
                &layout,
                &store,
                &table,
                &[0..ctx],
                1,
                &q,
                0.2,
                &mut scratch,
                &mut whole,
                None,
            );
            let k = partitions(0..ctx, layout.block_size);
            assert_eq!(k, ctx.div_ceil(PARTITION));
            let mut parts = vec![0.0; k * heads * 64];
            let mut stats = vec![PartialSoftmax::default(); k * heads];
            for (index, (o, stats)) in parts
                .chunks_exact_mut(heads * 64)
                .zip(stats.chunks_exact_mut(heads))
                .enumerate()
            {
                let piece = Some(Piece { index, stats });
                paged_attention_tile(
                    &layout,
                    &store,
                    &table,
                    &[0..ctx],
                    1,
                    &q,
                    0.2,
                    &mut scratch,
                    o,
                    piece,
                );
            }
            let mut merged = vec![0.0; heads * 64];
            merge_partitions(&parts, &stats, &mut merged);
            for (i, (a, b)) in whole.iter().zip(&merged).enumerate() {
                assert!(
                    (a - b).abs() < 1e-3,
                    "{dtype:?} ctx {ctx} [{i}]: {a} vs {b}"
                );
            }
        }
    }
    assert_eq!(partitions(0..PARTITION, 16), 1);
    assert_eq!(
        partitions(0..5000, 24),
        1,
        "blocks that do not tile a piece: no split"
    );
}

/// A sliding window (a context that starts mid-block and spans two pieces) gives the
/// result of attending a pool that holds only the window's tokens, whole or split.
#[test]
fn a_window_equals_a_pool_holding_only_its_tokens() {
    let layout = KvLayout {
        block_size: 16,
        n_kv_heads: 2,
        head_dim: 64,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let (ctx, window) = (1300, PARTITION);
    let start = ctx - window;
    let rows: Vec<(Vec<f32>, Vec<f32>)> = (0..ctx)
        .map(|_| {
            let mut row = || -> Vec<f32> { (0..128).map(|_| rng.gen_range(-1.0..1.0)).collect() };
            (row(), row())
        })
        .collect();
    let mut full = KvStore::new(KvDtype::F16, &layout, ctx.div_ceil(16));
    let mut only = KvStore::new(KvDtype::F16, &layout, window.div_ceil(16));
    for (t, (k, v)) in rows.iter().enumerate() {
        full.write(&layout, t, k, v);
        if t >= start {
            only.write(&layout, t - start, k, v);
        }
    }
    let table: Vec<u32> = (0..ctx.div_ceil(16) as u32).collect();
    let q: Vec<f32> = (0..3 * 64).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut scratch = AttnScratch::default();
    let attend = |store: &KvStore, ctx: Range<usize>, scratch: &mut AttnScratch| {
        let mut out = vec![0.0; q.len()];
        paged_attention_tile(
            &layout,
            store,
            &table,
            &[ctx],
            1,
            &q,
            0.2,
            scratch,
            &mut out,
            None,
        );
        out
    };
    let want = attend(&only, 0..window, &mut scratch);
    let got = attend(&full, start..ctx, &mut scratch);
    let k = partitions(start..ctx, layout.block_size);
    assert_eq!(k, 2, "a window starting mid-block spans two pieces");
    let mut parts = vec![0.0; k * q.len()];
    let mut stats = vec![PartialSoftmax::default(); k * 3];
    for (index, (o, stats)) in parts
        .chunks_exact_mut(q.len())
        .zip(stats.chunks_exact_mut(3))
        .enumerate()
    {
        let piece = Some(Piece { index, stats });
        paged_attention_tile(
            &layout,
            &full,
            &table,
            &[start..ctx],
            1,
            &q,
            0.2,
            &mut scratch,
            o,
            piece,
        );
    }
    let mut merged = vec![0.0; q.len()];
    merge_partitions(&parts, &stats, &mut merged);
    for (i, ((w, g), m)) in want.iter().zip(&got).zip(&merged).enumerate() {
        assert!(
            (w - g).abs() < 1e-6,
            "[{i}] window {g} vs pool of the window {w}"
        );
        assert!((w - m).abs() < 1e-3, "[{i}] split window {m} vs {w}");
    }
}

/// Tiles of consecutive query tokens of one sequence (a prefill chunk) give every token
/// exactly its own result, bit for bit: outputs and, for split contexts, each piece's
/// outputs and softmax statistics. Contexts cross blocks and the `PARTITION` split (where
/// a token's number of pieces changes), with and without a sliding window (starting
/// mid-block, so neighbours' contexts start in different blocks: tokens 45.. with a
/// window of 37, 1060.. with 600), for both pool formats
/// and several tile sizes.
#[test]
fn a_tile_of_tokens_equals_its_tokens_one_by_one_bit_for_bit() {
    let (group, head_dim) = (3, 64);
    let layout = KvLayout {
        block_size: 16,
        n_kv_heads: 2,
        head_dim,
    };
    let gw = group * head_dim;
    let ctx: usize = 1100;
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for dtype in [KvDtype::F16, KvDtype::Q8_0] {
        let (store, table) = random_pool(dtype, &layout, ctx.div_ceil(16) + 2, ctx, &mut rng);
        for window in [None, Some(PARTITION), Some(600), Some(37)] {
            let context = |pos: usize| {
                let end = pos + 1;
                end - window.map_or(end, |w| w.min(end))..end
            };
            let tiles = [
                (0, 5),
                (9, 4),
                (45, 8),
                (505, 8),
                (517, 3),
                (1021, 2),
                (1060, 6),
                (1090, 1),
            ];
            for (first, tile) in tiles {
                let contexts: Vec<Range<usize>> = (first..first + tile).map(context).collect();
                let pieces = partitions(contexts[0].clone(), layout.block_size);
                // Tiles hold tokens with as many pieces each; cut where that changes.
                let same = contexts
                    .iter()
                    .take_while(|c| partitions((*c).clone(), layout.block_size) == pieces)
                    .count();
                let contexts = &contexts[..same];
                let q: Vec<f32> = (0..same * gw).map(|_| rng.gen_range(-1.0..1.0)).collect();
                let case = format!("{dtype:?} window {window:?} tokens {first}+{same}");
                let indices: Vec<Option<usize>> = if pieces == 1 {
                    vec![None]
                } else {
                    (0..pieces).map(Some).collect()
                };
                for index in indices {
                    let mut scratch = AttnScratch::default();
                    let mut got = vec![0.0; same * gw];
                    let mut got_stats = vec![PartialSoftmax::default(); same * group];
                    paged_attention_tile(
                        &layout,
                        &store,
                        &table,
                        contexts,
                        1,
                        &q,
                        0.125,
                        &mut scratch,
                        &mut got,
                        index.map(|index| Piece {
                            index,
                            stats: &mut got_stats,
                        }),
                    );
                    for (j, c) in contexts.iter().enumerate() {
                        let mut want = vec![0.0; gw];
                        let mut stats = vec![PartialSoftmax::default(); group];
                        paged_attention_tile(
                            &layout,
                            &store,
                            &table,
                            std::slice::from_ref(c),
                            1,
                            &q[j * gw..(j + 1) * gw],
                            0.125,
                            &mut scratch,
                            &mut want,
                            index.map(|index| Piece {
                                index,
                                stats: &mut stats,
                            }),
                        );
                        let at = j * gw..(j + 1) * gw;
                        assert_eq!(
                            bits(&want),
                            bits(&got[at]),
                            "{case} piece {index:?} token {j}"
                        );
                        for (w, g) in stats.iter().zip(&got_stats[j * group..]) {
                            assert_eq!(
                                (w.max.to_bits(), w.sum.to_bits()),
                                (g.max.to_bits(), g.sum.to_bits()),
                                "{case} piece {index:?} token {j} stats"
                            );
                        }
                    }
                }
            }
        }
    }
}
