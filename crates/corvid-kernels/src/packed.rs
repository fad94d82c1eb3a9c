//! Weights repacked eight rows at a time for AVX-512 VNNI matrix-vector kernels.
//!
//! In ggml's row-major block layout every 32-value block needs its own float scaling
//! per row and token, so integer work is a small part of the instruction stream. Here
//! the blocks of eight consecutive rows are interleaved four bytes at a time, so one
//! `vpdpbusd` advances all eight rows by four values against four broadcast activation
//! bytes, and the per-block scaling is one vector FMA for eight rows. Packing happens once
//! at load; results equal the row-major kernels up to float summation order.

use crate::quant::{BlockQ4_1, BlockQ8_0, BlockQ8_1};
use half::f16;

/// Rows per packed group.
pub const GROUP: usize = 8;

/// One block column of eight Q4_1 rows: scales, minimums, and the sixteen nibble bytes
/// of each row interleaved in 4-byte runs (`qs[j*32 + r*4 ..][..4]` = row `r`'s bytes
/// `4j..4j+4`).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Q4_1x8 {
    d: [f16; GROUP],
    m: [f16; GROUP],
    qs: [u8; 128],
}

/// One block column of eight Q8_0 rows, values stored offset by +128 as unsigned bytes
/// (`vpdpbusd` multiplies unsigned by signed; the offset is removed with the activation
/// block sums), interleaved in 4-byte runs like [`Q4_1x8`].
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Q8_0x8 {
    d: [f16; GROUP],
    qs: [u8; 256],
}

/// Packs a `rows × nb`-block Q4_1 matrix (`rows` a multiple of 8), group-major.
pub fn pack_q4_1(blocks: &[BlockQ4_1], rows: usize, nb: usize) -> Vec<Q4_1x8> {
    let mut out = Vec::with_capacity(rows / GROUP * nb);
    for g in 0..rows / GROUP {
        for b in 0..nb {
            let mut p = Q4_1x8 {
                d: [f16::ZERO; GROUP],
                m: [f16::ZERO; GROUP],
                qs: [0; 128],
            };
            for r in 0..GROUP {
                let src = &blocks[(g * GROUP + r) * nb + b];
                p.d[r] = src.d;
                p.m[r] = src.m;
                for j in 0..4 {
                    p.qs[j * 32 + r * 4..j * 32 + r * 4 + 4]
                        .copy_from_slice(&src.qs[j * 4..j * 4 + 4]);
                }
            }
            out.push(p);
        }
    }
    out
}

/// Packs a `rows × nb`-block Q8_0 matrix (`rows` a multiple of 8), group-major.
pub fn pack_q8_0(blocks: &[BlockQ8_0], rows: usize, nb: usize) -> Vec<Q8_0x8> {
    let mut out = Vec::with_capacity(rows / GROUP * nb);
    for g in 0..rows / GROUP {
        for b in 0..nb {
            let mut p = Q8_0x8 {
                d: [f16::ZERO; GROUP],
                qs: [0; 256],
            };
            for r in 0..GROUP {
                let src = &blocks[(g * GROUP + r) * nb + b];
                p.d[r] = src.d;
                for j in 0..8 {
                    for k in 0..4 {
                        p.qs[j * 32 + r * 4 + k] = (src.qs[j * 4 + k] as i16 + 128) as u8;
                    }
                }
            }
            out.push(p);
        }
    }
    out
}

/// Row `r` of a packed Q4_1 matrix as f32 (for embedding lookups).
pub fn unpack_row_q4_1(packed: &[Q4_1x8], nb: usize, r: usize, out: &mut [f32]) {
    let (g, lane) = (r / GROUP, r % GROUP);
    for (b, o) in packed[g * nb..(g + 1) * nb]
        .iter()
        .zip(out.chunks_exact_mut(32))
    {
        let (d, m) = (b.d[lane].to_f32(), b.m[lane].to_f32());
        for j in 0..4 {
            for k in 0..4 {
                let byte = b.qs[j * 32 + lane * 4 + k];
                o[j * 4 + k] = (byte & 0xF) as f32 * d + m;
                o[j * 4 + k + 16] = (byte >> 4) as f32 * d + m;
            }
        }
    }
}

/// Row `r` of a packed Q8_0 matrix as f32 (for embedding lookups).
pub fn unpack_row_q8_0(packed: &[Q8_0x8], nb: usize, r: usize, out: &mut [f32]) {
    let (g, lane) = (r / GROUP, r % GROUP);
    for (b, o) in packed[g * nb..(g + 1) * nb]
        .iter()
        .zip(out.chunks_exact_mut(32))
    {
        let d = b.d[lane].to_f32();
        for j in 0..8 {
            for k in 0..4 {
                o[j * 4 + k] = (b.qs[j * 32 + lane * 4 + k] as i16 - 128) as f32 * d;
            }
        }
    }
}

/// True when the packed kernels can run here (AVX-512 VNNI on 256-bit vectors).
pub fn available() -> bool {
    crate::dot::dot_isa() == crate::dot::DotIsa::Vnni
}

/// `out[k][r] = row (8g + r) · acts[k]` for one group of a packed Q4_1 matrix;
/// `scales[k][b]` is activation block `b`'s `[d, s]` as f32 ([`q8_1_scales`]).
///
/// # Safety
/// Requires [`available`]; every `acts[k]` and `scales[k]` holds at least `w.len()` blocks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
pub unsafe fn gemv_q4_1x8<const N: usize>(
    w: &[Q4_1x8],
    acts: &[&[BlockQ8_1]],
    scales: &[&[[f32; 2]]],
    out: &mut [[f32; GROUP]; N],
) {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); N];
    let mask = _mm256_set1_epi8(0xF);
    for (b, wb) in w.iter().enumerate() {
        let dw = _mm256_cvtph_ps(_mm_loadu_si128(wb.d.as_ptr() as *const __m128i));
        let mw = _mm256_cvtph_ps(_mm_loadu_si128(wb.m.as_ptr() as *const __m128i));
        let mut lo = [_mm256_setzero_si256(); 4];
        let mut hi = [_mm256_setzero_si256(); 4];
        for j in 0..4 {
            let v = _mm256_loadu_si256(wb.qs.as_ptr().add(j * 32) as *const __m256i);
            lo[j] = _mm256_and_si256(v, mask);
            hi[j] = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
        }
        for (k, acc_k) in acc.iter_mut().enumerate() {
            let q = acts.get_unchecked(k).get_unchecked(b).qs.as_ptr() as *const i32;
            let [ad, asum] = *scales.get_unchecked(k).get_unchecked(b);
            // Two independent dot chains (low and high nibbles) halve the latency chain.
            let (mut s0, mut s1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            for j in 0..4 {
                s0 = _mm256_dpbusd_epi32(s0, lo[j], _mm256_set1_epi32(q.add(j).read_unaligned()));
                s1 = _mm256_dpbusd_epi32(
                    s1,
                    hi[j],
                    _mm256_set1_epi32(q.add(j + 4).read_unaligned()),
                );
            }
            let s = _mm256_add_epi32(s0, s1);
            let scale = _mm256_mul_ps(dw, _mm256_set1_ps(ad));
            *acc_k = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, *acc_k);
            *acc_k = _mm256_fmadd_ps(mw, _mm256_set1_ps(asum), *acc_k);
        }
    }
    for k in 0..N {
        _mm256_storeu_ps(out[k].as_mut_ptr(), acc[k]);
    }
}

/// `out[k][r] = row (8g + r) · acts[k]` for one group of a packed Q8_0 matrix;
/// `scales[k][b]` is activation block `b`'s scale as f32 and its offset correction
/// ([`q8_0_scales`]).
///
/// # Safety
/// Requires [`available`]; every `acts[k]` and `scales[k]` holds at least `w.len()` blocks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
pub unsafe fn gemv_q8_0x8<const N: usize>(
    w: &[Q8_0x8],
    acts: &[&[BlockQ8_0]],
    scales: &[&[(f32, i32)]],
    out: &mut [[f32; GROUP]; N],
) {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); N];
    for (b, wb) in w.iter().enumerate() {
        let dw = _mm256_cvtph_ps(_mm_loadu_si128(wb.d.as_ptr() as *const __m128i));
        let mut wv = [_mm256_setzero_si256(); 8];
        for (j, v) in wv.iter_mut().enumerate() {
            *v = _mm256_loadu_si256(wb.qs.as_ptr().add(j * 32) as *const __m256i);
        }
        for (k, acc_k) in acc.iter_mut().enumerate() {
            let q = acts.get_unchecked(k).get_unchecked(b).qs.as_ptr() as *const i32;
            let (ad, offset) = *scales.get_unchecked(k).get_unchecked(b);
            // Σ (w + 128)·a − 128·Σa = Σ w·a, exactly, in integers; two chains.
            let (mut s0, mut s1) = (_mm256_set1_epi32(offset), _mm256_setzero_si256());
            for j in 0..4 {
                let (a0, a1) = (
                    q.add(2 * j).read_unaligned(),
                    q.add(2 * j + 1).read_unaligned(),
                );
                s0 = _mm256_dpbusd_epi32(s0, wv[2 * j], _mm256_set1_epi32(a0));
                s1 = _mm256_dpbusd_epi32(s1, wv[2 * j + 1], _mm256_set1_epi32(a1));
            }
            let s = _mm256_add_epi32(s0, s1);
            let scale = _mm256_mul_ps(dw, _mm256_set1_ps(ad));
            *acc_k = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, *acc_k);
        }
    }
    for k in 0..N {
        _mm256_storeu_ps(out[k].as_mut_ptr(), acc[k]);
    }
}

/// Each Q8_1 activation block's `[d, s]` as f32, converted once per matmul instead of
/// once per row group in [`gemv_q4_1x8`].
pub fn q8_1_scales(blocks: &[BlockQ8_1]) -> Vec<[f32; 2]> {
    blocks
        .iter()
        .map(|b| [b.d.to_f32(), b.s.to_f32()])
        .collect()
}

/// Each Q8_0 activation block's scale as f32 and `-128 ×` the sum of its quantized
/// values (the correction for the +128 offset of packed Q8_0 weights), for
/// [`gemv_q8_0x8`].
pub fn q8_0_scales(blocks: &[BlockQ8_0]) -> Vec<(f32, i32)> {
    blocks
        .iter()
        .map(|b| {
            (
                b.d.to_f32(),
                -128 * b.qs.iter().map(|&q| q as i32).sum::<i32>(),
            )
        })
        .collect()
}
