//! Paged attention against a contiguous reference, head grouping, and the SIMD kernels
//! against the portable definition, bit for bit.

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

/// A pool of `blocks` random blocks and a shuffled block table covering `ctx` tokens.
fn random_pool(
    layout: &KvLayout,
    blocks: usize,
    ctx: usize,
    rng: &mut impl Rng,
) -> (Vec<f16>, Vec<f16>, Vec<u32>) {
    let n = blocks * layout.block_size * layout.token_width();
    let mut k = vec![f16::ZERO; n];
    let mut v = vec![f16::ZERO; n];
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
        write_kv(layout, &mut k, &mut v, slot, &kr, &vr);
    }
    (k, v, table)
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
    ] {
        let layout = KvLayout {
            block_size,
            n_kv_heads: 2,
            head_dim,
        };
        let blocks = ctx.div_ceil(block_size) + 3;
        let (k, v, table) = random_pool(&layout, blocks, ctx, &mut rng);
        let q: Vec<f32> = (0..heads * head_dim)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let kv = SeqKv {
            layout: &layout,
            k_pool: &k,
            v_pool: &v,
            block_table: &table,
            ctx_len: ctx,
            kv_head: 1,
        };
        let mut row = Vec::new();
        let (mut want, mut got) = (vec![0.0; heads * ctx], vec![0.0; heads * ctx]);
        portable::scores(&kv, &q, 0.125, &mut row, &mut want);
        // SAFETY: use_simd checked the CPU; every head_dim above is a multiple of 8.
        unsafe { avx2::scores(&kv, &q, 0.125, &mut row, &mut got) };
        assert_eq!(
            want, got,
            "scores, shape {head_dim}/{block_size}/{heads}/{ctx}"
        );
        let p: Vec<f32> = (0..heads * ctx).map(|_| rng.gen_range(0.0..0.1)).collect();
        let (mut want, mut got) = (vec![0.0; heads * head_dim], vec![0.0; heads * head_dim]);
        portable::values(&kv, &p, &mut row, &mut want);
        // SAFETY: as above.
        unsafe { avx2::values(&kv, &p, &mut got) };
        assert_eq!(
            want, got,
            "values, shape {head_dim}/{block_size}/{heads}/{ctx}"
        );
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
