//! Dot products between a weight row and an activation row, per block format.
//!
//! Each has a portable version and SIMD versions chosen by the kernel tier ([`crate::isa`]). The AVX2 versions
//! follow ggml's x86 kernels operation for operation, so results agree with llama.cpp
//! up to float summation order.

use crate::isa::{isa, Isa};
use crate::quant::{
    scale_min_k4, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ6K, BlockQ8K, BlockQ8_0,
    BlockQ8_1,
};

/// Most activation rows one multi-dot call handles (each weight block is unpacked once
/// and reused for all of them).
pub const MAX_MULTI: usize = 4;

macro_rules! dispatch_multi {
    ($name:ident, $w:ty, $a:ty, $scalar:ident) => {
        /// One weight row against up to [`MAX_MULTI`] activation rows: `out[k] = x · ys[k]`.
        #[inline]
        pub fn $name(x: &[$w], ys: &[&[$a]], out: &mut [f32]) {
            debug_assert!(ys.len() <= MAX_MULTI && ys.iter().all(|y| y.len() >= x.len()));
            #[cfg(target_arch = "x86_64")]
            {
                let isa = isa();
                if isa != Isa::Portable {
                    // SAFETY: the instruction set was detected at run time.
                    unsafe {
                        match (isa, ys.len()) {
                            (Isa::Avx512Vnni, 1) => simd::vnni::$name::<1>(x, ys, out),
                            (Isa::Avx512Vnni, 2) => simd::vnni::$name::<2>(x, ys, out),
                            (Isa::Avx512Vnni, 3) => simd::vnni::$name::<3>(x, ys, out),
                            (Isa::Avx512Vnni, _) => simd::vnni::$name::<4>(x, ys, out),
                            (_, 1) => simd::avx2::$name::<1>(x, ys, out),
                            (_, 2) => simd::avx2::$name::<2>(x, ys, out),
                            (_, 3) => simd::avx2::$name::<3>(x, ys, out),
                            (_, _) => simd::avx2::$name::<4>(x, ys, out),
                        }
                    }
                    return;
                }
            }
            for (o, y) in out.iter_mut().zip(ys) {
                *o = $scalar(x, y);
            }
        }
    };
}

dispatch_multi!(dot_q4_0_q8_0_multi, BlockQ4_0, BlockQ8_0, scalar_q4_0_q8_0);
dispatch_multi!(dot_q4_1_q8_1_multi, BlockQ4_1, BlockQ8_1, scalar_q4_1_q8_1);
dispatch_multi!(dot_q8_0_q8_0_multi, BlockQ8_0, BlockQ8_0, scalar_q8_0_q8_0);
dispatch_multi!(dot_q4_k_q8_k_multi, BlockQ4K, BlockQ8K, scalar_q4_k_q8_k);

/// The eight 6-bit scales and the eight 6-bit minimums of a Q4_K block, unpacked.
#[inline]
fn scales_and_mins_k4(scales: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..8 {
        (sc[j], mn[j]) = scale_min_k4(j, scales);
    }
    (sc, mn)
}

/// ggml's `hsum_float_8`: the AVX reduction order (high half + low half, then pairs).
#[inline]
fn hsum8(x: [f32; 8]) -> f32 {
    let r: [f32; 4] = std::array::from_fn(|i| x[4 + i] + x[i]);
    (r[0] + r[2]) + (r[1] + r[3])
}

/// Portable Q4_K · Q8_K (ggml's `ggml_vec_dot_q4_K_q8_K`).
///
/// It is written in the lane structure of the AVX2 kernel so the two agree bit for bit:
/// eight i32 lanes, lane `k` of sub-block pair `g` summing bytes `4k..4k+4` of the 32
/// nibble bytes times their 6-bit scale; each block adds `d · lane` into eight f32
/// accumulators with one FMA; the minimums' correction (`dmin · Σ m · bsum`) is kept in
/// four lanes and added after the same horizontal sums.
pub fn scalar_q4_k_q8_k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut acc_m = [0.0f32; 4];
    for (a, b) in x.iter().zip(y) {
        let d = b.d * a.d.to_f32();
        let dmin = -b.d * a.dmin.to_f32();
        let (sc, mn) = scales_and_mins_k4(&a.scales);
        for (k, am) in acc_m.iter_mut().enumerate() {
            let s = |j: usize| b.bsums[2 * j] as i32 + b.bsums[2 * j + 1] as i32;
            let prod = mn[2 * k] as i32 * s(2 * k) + mn[2 * k + 1] as i32 * s(2 * k + 1);
            *am = dmin.mul_add(prod as f32, *am);
        }
        let mut sumi = [0i32; 8];
        for g in 0..4 {
            let q4 = &a.qs[32 * g..32 * g + 32];
            let (lo, hi) = (&b.qs[64 * g..64 * g + 32], &b.qs[64 * g + 32..64 * g + 64]);
            for (k, s) in sumi.iter_mut().enumerate() {
                let (mut pl, mut ph) = (0i32, 0i32);
                for i in 4 * k..4 * k + 4 {
                    pl += (q4[i] & 0xF) as i32 * lo[i] as i32;
                    ph += (q4[i] >> 4) as i32 * hi[i] as i32;
                }
                *s += sc[2 * g] as i32 * pl + sc[2 * g + 1] as i32 * ph;
            }
        }
        for (ak, &s) in acc.iter_mut().zip(&sumi) {
            *ak = d.mul_add(s as f32, *ak);
        }
    }
    let m = (acc_m[0] + acc_m[2]) + (acc_m[1] + acc_m[3]);
    hsum8(acc) + m
}

/// The 256 unsigned 5-bit levels (`q`, 0..=31) of a Q5_K block, in value order: value
/// `32i + l` (sub-block `i`) is the low or high nibble of byte `32(i / 2) + l` plus bit `i`
/// of `qh[l]` as 16.
fn q5_k_levels(b: &BlockQ5K) -> [u8; 256] {
    std::array::from_fn(|v| {
        let (i, l) = (v / 32, v % 32);
        let low = (b.qs[32 * (i / 2) + l] >> (4 * (i % 2))) & 0xF;
        low | (((b.qh[l] >> i) & 1) << 4)
    })
}

/// Portable Q5_K · Q8_K, the definition the packed kernels ([`crate::packed`]) equal
/// bit for bit on every tier: per super-block the exact integers `Σ_sub sc·(Σ q·a)` and
/// `Σ_sub m·bsum` (magnitudes below 2²⁷), then one FMA by `d_w·d_a` and one by
/// `dmin_w·(−d_a)`. ggml computes the same integers and differs only in float summation
/// order.
pub fn scalar_q5_k_q8_k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let q = q5_k_levels(a);
        let (sc, mn) = scales_and_mins_k4(&a.scales);
        let (mut isum, mut msum) = (0i32, 0i32);
        for sub in 0..8 {
            let at = 32 * sub..32 * sub + 32;
            let s: i32 = q[at.clone()]
                .iter()
                .zip(&b.qs[at])
                .map(|(&w, &v)| w as i32 * v as i32)
                .sum();
            isum += sc[sub] as i32 * s;
            msum += mn[sub] as i32 * (b.bsums[2 * sub] as i32 + b.bsums[2 * sub + 1] as i32);
        }
        acc = (isum as f32).mul_add(a.d.to_f32() * b.d, acc);
        acc = (msum as f32).mul_add(a.dmin.to_f32() * -b.d, acc);
    }
    acc
}

/// The 256 unsigned 6-bit levels (`q`, before the −32 offset) of a Q6_K block, in value
/// order (the index map of ggml's `dequantize_row_q6_K`).
fn q6_k_levels(b: &BlockQ6K) -> [u8; 256] {
    std::array::from_fn(|v| {
        let (n, m, l) = (v / 128, v % 128 / 32, v % 32);
        let low = (b.ql[64 * n + 32 * (m % 2) + l] >> (4 * (m / 2))) & 0xF;
        let high = (b.qh[32 * n + l] >> (2 * m)) & 3;
        low | (high << 4)
    })
}

/// Portable Q6_K · Q8_K, the definition the packed kernels ([`crate::packed`]) equal
/// bit for bit on every tier: per super-block the exact integer
/// `Σ_sub sc·(Σ q·a) − 32·Σ_sub sc·bsum` (Q8_K's sums of 16 are exactly Q6_K's
/// sub-blocks; magnitudes stay below 2³⁰), then one FMA by `d_w·d_a`. ggml computes the
/// same integers and differs only in float summation order.
pub fn scalar_q6_k_q8_k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let q = q6_k_levels(a);
        let (mut isum, mut offset) = (0i32, 0i32);
        for (sub, &sc) in a.scales.iter().enumerate() {
            let at = 16 * sub..16 * sub + 16;
            let s: i32 = q[at.clone()]
                .iter()
                .zip(&b.qs[at])
                .map(|(&w, &v)| w as i32 * v as i32)
                .sum();
            isum += sc as i32 * s;
            offset += sc as i32 * b.bsums[sub] as i32;
        }
        acc = ((isum - 32 * offset) as f32).mul_add(b.d * a.d.to_f32(), acc);
    }
    acc
}

/// Portable Q4_0 · Q8_0.
pub fn scalar_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    x.iter()
        .zip(y)
        .map(|(a, b)| {
            let mut s = 0i32;
            for j in 0..16 {
                s += ((a.qs[j] & 0xF) as i32 - 8) * b.qs[j] as i32;
                s += ((a.qs[j] >> 4) as i32 - 8) * b.qs[j + 16] as i32;
            }
            a.d.to_f32() * b.d.to_f32() * s as f32
        })
        .sum()
}

/// Portable Q4_1 · Q8_1.
pub fn scalar_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    x.iter()
        .zip(y)
        .map(|(a, b)| {
            let mut s = 0i32;
            for j in 0..16 {
                s += (a.qs[j] & 0xF) as i32 * b.qs[j] as i32;
                s += (a.qs[j] >> 4) as i32 * b.qs[j + 16] as i32;
            }
            a.d.to_f32() * b.d.to_f32() * s as f32 + a.m.to_f32() * b.s.to_f32()
        })
        .sum()
}

/// Portable Q8_0 · Q8_0.
pub fn scalar_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    x.iter()
        .zip(y)
        .map(|(a, b)| {
            let s: i32 =
                a.qs.iter()
                    .zip(&b.qs)
                    .map(|(&p, &q)| p as i32 * q as i32)
                    .sum();
            a.d.to_f32() * b.d.to_f32() * s as f32
        })
        .sum()
}

/// f32 · f32 with eight independent accumulators (vectorizes without fast-math).
#[inline]
pub fn dot_f32(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let xc = x.chunks_exact(8);
    let yc = y.chunks_exact(8);
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in xc.zip(yc) {
        for k in 0..8 {
            acc[k] = a[k].mul_add(b[k], acc[k]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! The multi-row kernels, stamped out once per instruction set. They follow ggml's
    //! x86 kernels operation for operation (per-block f32 scale products, FMA into
    //! eight-lane accumulators, then a horizontal sum).

    use std::arch::x86_64::*;

    /// Low nibbles of `qs` in bytes 0..16 and high nibbles in bytes 16..32.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn nibbles(qs: &[u8; 16]) -> __m256i {
        let tmp = _mm_loadu_si128(qs.as_ptr() as *const __m128i);
        let bytes =
            _mm256_insertf128_si256::<1>(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4));
        _mm256_and_si256(_mm256_set1_epi8(0xF), bytes)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn hsum(x: __m256) -> f32 {
        let r = _mm_add_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
        let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
        let r = _mm_add_ss(r, _mm_movehdup_ps(r));
        _mm_cvtss_f32(r)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn us8_madd(ax: __m256i, sy: __m256i) -> __m256 {
        let dot = _mm256_maddubs_epi16(ax, sy);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), dot))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
    pub unsafe fn us8_vnni(ax: __m256i, sy: __m256i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy))
    }

    macro_rules! kernels {
        ($isa:ident, $features:literal, $us8:ident) => {
            pub mod $isa {
                use super::{hsum, nibbles, $us8};
                use crate::quant::{
                    BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ8K, BlockQ8_0, BlockQ8_1,
                };
                use std::arch::x86_64::*;

                #[target_feature(enable = $features)]
                pub unsafe fn dot_q4_0_q8_0_multi<const N: usize>(
                    x: &[BlockQ4_0],
                    ys: &[&[BlockQ8_0]],
                    out: &mut [f32],
                ) {
                    let mut acc = [_mm256_setzero_ps(); N];
                    let off = _mm256_set1_epi8(8);
                    for (b, w) in x.iter().enumerate() {
                        // (q - 8) · y = q·y - 8·Σy: keep the unsigned nibbles for the u8×i8 product.
                        let qx = _mm256_sub_epi8(nibbles(&w.qs), off);
                        let ax = _mm256_sign_epi8(qx, qx);
                        let dw = w.d.to_f32();
                        for k in 0..N {
                            let a = ys[k].get_unchecked(b);
                            let qy = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
                            let d = _mm256_set1_ps(dw * a.d.to_f32());
                            acc[k] = _mm256_fmadd_ps(d, $us8(ax, _mm256_sign_epi8(qy, qx)), acc[k]);
                        }
                    }
                    for k in 0..N {
                        out[k] = hsum(acc[k]);
                    }
                }

                #[target_feature(enable = $features)]
                pub unsafe fn dot_q4_1_q8_1_multi<const N: usize>(
                    x: &[BlockQ4_1],
                    ys: &[&[BlockQ8_1]],
                    out: &mut [f32],
                ) {
                    let mut acc = [_mm256_setzero_ps(); N];
                    let mut summs = [0.0f32; N];
                    for (b, w) in x.iter().enumerate() {
                        let qx = nibbles(&w.qs);
                        let (dw, mw) = (w.d.to_f32(), w.m.to_f32());
                        for k in 0..N {
                            let a = ys[k].get_unchecked(b);
                            summs[k] += mw * a.s.to_f32();
                            let qy = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
                            let d = _mm256_mul_ps(_mm256_set1_ps(dw), _mm256_set1_ps(a.d.to_f32()));
                            acc[k] = _mm256_fmadd_ps(d, $us8(qx, qy), acc[k]);
                        }
                    }
                    for k in 0..N {
                        out[k] = hsum(acc[k]) + summs[k];
                    }
                }

                /// ggml's AVX2 Q4_K · Q8_K: `vpmaddubsw` of nibbles and Q8_K bytes,
                /// `vpmaddwd` with the broadcast 6-bit scale, one FMA per block; the
                /// minimums' correction is a `vpmaddwd` of mins and pairwise bsums.
                #[target_feature(enable = $features)]
                pub unsafe fn dot_q4_k_q8_k_multi<const N: usize>(
                    x: &[BlockQ4K],
                    ys: &[&[BlockQ8K]],
                    out: &mut [f32],
                ) {
                    let m4 = _mm256_set1_epi8(0xF);
                    let mut acc = [_mm256_setzero_ps(); N];
                    let mut acc_m = [_mm_setzero_ps(); N];
                    for (b, w) in x.iter().enumerate() {
                        let (sc, mn) = super::super::scales_and_mins_k4(&w.scales);
                        let mins =
                            _mm_cvtepu8_epi16(_mm_loadl_epi64(mn.as_ptr() as *const __m128i));
                        let mut q4l = [_mm256_setzero_si256(); 4];
                        let mut q4h = [_mm256_setzero_si256(); 4];
                        for g in 0..4 {
                            let bits =
                                _mm256_loadu_si256(w.qs.as_ptr().add(32 * g) as *const __m256i);
                            q4l[g] = _mm256_and_si256(bits, m4);
                            q4h[g] = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
                        }
                        let (wd, wm) = (w.d.to_f32(), w.dmin.to_f32());
                        for k in 0..N {
                            let a = ys[k].get_unchecked(b);
                            let d = a.d * wd;
                            let dmin = -a.d * wm;
                            let bs = _mm256_loadu_si256(a.bsums.as_ptr() as *const __m256i);
                            let q8s = _mm_hadd_epi16(
                                _mm256_castsi256_si128(bs),
                                _mm256_extracti128_si256::<1>(bs),
                            );
                            let prod = _mm_madd_epi16(mins, q8s);
                            acc_m[k] =
                                _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m[k]);
                            let mut sumi = _mm256_setzero_si256();
                            for g in 0..4 {
                                let q8 = a.qs.as_ptr().add(64 * g);
                                let q8l = _mm256_loadu_si256(q8 as *const __m256i);
                                let q8h = _mm256_loadu_si256(q8.add(32) as *const __m256i);
                                let pl = _mm256_madd_epi16(
                                    _mm256_set1_epi16(sc[2 * g] as i16),
                                    _mm256_maddubs_epi16(q4l[g], q8l),
                                );
                                let ph = _mm256_madd_epi16(
                                    _mm256_set1_epi16(sc[2 * g + 1] as i16),
                                    _mm256_maddubs_epi16(q4h[g], q8h),
                                );
                                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
                            }
                            acc[k] = _mm256_fmadd_ps(
                                _mm256_set1_ps(d),
                                _mm256_cvtepi32_ps(sumi),
                                acc[k],
                            );
                        }
                    }
                    for k in 0..N {
                        let m = _mm_add_ps(acc_m[k], _mm_movehl_ps(acc_m[k], acc_m[k]));
                        let m = _mm_add_ss(m, _mm_movehdup_ps(m));
                        out[k] = hsum(acc[k]) + _mm_cvtss_f32(m);
                    }
                }

                #[target_feature(enable = $features)]
                pub unsafe fn dot_q8_0_q8_0_multi<const N: usize>(
                    x: &[BlockQ8_0],
                    ys: &[&[BlockQ8_0]],
                    out: &mut [f32],
                ) {
                    let mut acc = [_mm256_setzero_ps(); N];
                    for (b, w) in x.iter().enumerate() {
                        let qx = _mm256_loadu_si256(w.qs.as_ptr() as *const __m256i);
                        let ax = _mm256_sign_epi8(qx, qx);
                        let dw = w.d.to_f32();
                        for k in 0..N {
                            let a = ys[k].get_unchecked(b);
                            let qy = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
                            let d = _mm256_set1_ps(dw * a.d.to_f32());
                            acc[k] = _mm256_fmadd_ps(d, $us8(ax, _mm256_sign_epi8(qy, qx)), acc[k]);
                        }
                    }
                    for k in 0..N {
                        out[k] = hsum(acc[k]);
                    }
                }
            }
        };
    }

    kernels!(avx2, "avx2,fma", us8_madd);
    kernels!(vnni, "avx2,fma,avx512vnni,avx512vl", us8_vnni);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::quant::quantize::{
        quantize_q8_0, quantize_q8_1, quantize_weight_q4_0, quantize_weight_q4_1,
        quantize_weight_q8_0,
    };
    use rand::{Rng, SeedableRng};

    fn row(seed: u64, n: usize) -> Vec<f32> {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| r.gen_range(-1.0..1.0)).collect()
    }

    /// Dequantizes blocks through the reference path for comparison.
    fn deq<B>(ty: crate::GgmlType, blocks: &[B], n: usize) -> Vec<f32> {
        // SAFETY: the block structs are repr(C) images of ggml's byte layout.
        let bytes = unsafe {
            std::slice::from_raw_parts(blocks.as_ptr() as *const u8, std::mem::size_of_val(blocks))
        };
        let mut out = vec![0.0; n];
        crate::quant::dequantize(ty, bytes, &mut out);
        out
    }

    #[test]
    fn quantized_dots_equal_dequantized_dots() {
        use crate::GgmlType as T;
        let (w, a) = (row(1, 256), row(2, 256));
        let mut a8 = vec![BlockQ8_0::default(); 8];
        let mut a81 = vec![BlockQ8_1::default(); 8];
        quantize_q8_0(&a, &mut a8);
        quantize_q8_1(&a, &mut a81);
        let (a8f, a81f) = (deq(T::Q8_0, &a8, 256), deq(T::Q8_1, &a81, 256));
        let (w8, w40, w41) = (
            quantize_weight_q8_0(&w),
            quantize_weight_q4_0(&w),
            quantize_weight_q4_1(&w),
        );
        let cases = [
            (
                scalar_q8_0_q8_0(&w8, &a8),
                dot_f32(&deq(T::Q8_0, &w8, 256), &a8f),
            ),
            (
                scalar_q4_0_q8_0(&w40, &a8),
                dot_f32(&deq(T::Q4_0, &w40, 256), &a8f),
            ),
            (
                scalar_q4_1_q8_1(&w41, &a81),
                dot_f32(&deq(T::Q4_1, &w41, 256), &a81f),
            ),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            // Q4_1 uses the f16-rounded block sum, so allow for that rounding.
            assert!(
                (got - want).abs() < 2e-3 * want.abs().max(1.0),
                "case {i}: {got} vs {want}"
            );
        }
        // And quantization keeps the product near the exact one.
        let exact = dot_f32(&w, &a);
        assert!((cases[0].0 - exact).abs() < 0.05);
    }

    #[test]
    fn simd_multi_dots_match_scalar_for_every_width() {
        let w = row(3, 512);
        let (w8, w40, w41) = (
            quantize_weight_q8_0(&w),
            quantize_weight_q4_0(&w),
            quantize_weight_q4_1(&w),
        );
        let acts: Vec<Vec<f32>> = (0..MAX_MULTI as u64).map(|s| row(10 + s, 512)).collect();
        let q8: Vec<Vec<BlockQ8_0>> = acts
            .iter()
            .map(|a| {
                let mut q = vec![BlockQ8_0::default(); 16];
                quantize_q8_0(a, &mut q);
                q
            })
            .collect();
        let q81: Vec<Vec<BlockQ8_1>> = acts
            .iter()
            .map(|a| {
                let mut q = vec![BlockQ8_1::default(); 16];
                quantize_q8_1(a, &mut q);
                q
            })
            .collect();
        for n in 1..=MAX_MULTI {
            let y8: Vec<&[BlockQ8_0]> = q8[..n].iter().map(Vec::as_slice).collect();
            let y81: Vec<&[BlockQ8_1]> = q81[..n].iter().map(Vec::as_slice).collect();
            let mut out = vec![0.0; n];
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
            dot_q8_0_q8_0_multi(&w8, &y8, &mut out);
            for k in 0..n {
                assert!(
                    close(out[k], scalar_q8_0_q8_0(&w8, y8[k])),
                    "q8_0 n={n} k={k}"
                );
            }
            dot_q4_0_q8_0_multi(&w40, &y8, &mut out);
            for k in 0..n {
                assert!(
                    close(out[k], scalar_q4_0_q8_0(&w40, y8[k])),
                    "q4_0 n={n} k={k}"
                );
            }
            dot_q4_1_q8_1_multi(&w41, &y81, &mut out);
            for k in 0..n {
                assert!(
                    close(out[k], scalar_q4_1_q8_1(&w41, y81[k])),
                    "q4_1 n={n} k={k}"
                );
            }
            #[cfg(target_arch = "x86_64")]
            if isa() == Isa::Avx512Vnni {
                // VNNI and AVX2 compute identical integer sums: results agree bit for bit.
                let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
                unsafe {
                    simd::avx2::dot_q4_1_q8_1_multi::<1>(&w41, &y81[..1], &mut a[..1]);
                    simd::vnni::dot_q4_1_q8_1_multi::<1>(&w41, &y81[..1], &mut b[..1]);
                }
                assert_eq!(a[0].to_bits(), b[0].to_bits());
            }
        }
    }

    /// Q4_K blocks with random bits everywhere (scales, minimums, nibbles) and
    /// reasonable f16 super-scales, plus Q8_K activations from random rows.
    fn random_q4k(seed: u64, nb: usize) -> Vec<BlockQ4K> {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        (0..nb)
            .map(|_| {
                let mut b = BlockQ4K {
                    d: half::f16::from_f32(r.gen_range(0.0..0.01)),
                    dmin: half::f16::from_f32(r.gen_range(0.0..0.01)),
                    ..Default::default()
                };
                r.fill(&mut b.scales[..]);
                r.fill(&mut b.qs[..]);
                b
            })
            .collect()
    }

    /// Q6_K blocks with random bits everywhere (levels and signed scales, the extremes
    /// included) and reasonable f16 super-scales.
    pub(crate) fn random_q6k(seed: u64, nb: usize) -> Vec<BlockQ6K> {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        (0..nb)
            .map(|_| {
                let mut b = BlockQ6K {
                    d: half::f16::from_f32(r.gen_range(-0.01..0.01)),
                    ..Default::default()
                };
                r.fill(&mut b.ql[..]);
                r.fill(&mut b.qh[..]);
                r.fill(&mut b.scales[..]);
                b
            })
            .collect()
    }

    /// Q5_K blocks with random bits everywhere (all 32 levels, 6-bit scales and minimums
    /// up to 63) and reasonable f16 super-scales.
    pub(crate) fn random_q5k(seed: u64, nb: usize) -> Vec<BlockQ5K> {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        (0..nb)
            .map(|_| {
                let mut b = BlockQ5K {
                    d: half::f16::from_f32(r.gen_range(0.0..0.01)),
                    dmin: half::f16::from_f32(r.gen_range(0.0..0.01)),
                    ..Default::default()
                };
                r.fill(&mut b.scales[..]);
                r.fill(&mut b.qh[..]);
                r.fill(&mut b.qs[..]);
                b
            })
            .collect()
    }

    /// Q8_K activations of a random row.
    pub(crate) fn q8k(seed: u64, n: usize) -> Vec<BlockQ8K> {
        let mut q = vec![BlockQ8K::default(); n / 256];
        crate::quant::quantize::quantize_q8_k(&row(seed, n), &mut q);
        q
    }

    #[test]
    fn q4_k_simd_dot_is_bit_identical_to_the_portable_one() {
        for case in 0..200u64 {
            let nb = 1 + (case % 5) as usize;
            let w = random_q4k(case, nb);
            let acts: Vec<Vec<BlockQ8K>> = (0..MAX_MULTI as u64)
                .map(|k| q8k(1000 + case * 8 + k, nb * 256))
                .collect();
            for n in 1..=MAX_MULTI {
                let ys: Vec<&[BlockQ8K]> = acts[..n].iter().map(Vec::as_slice).collect();
                let mut out = vec![0.0; n];
                dot_q4_k_q8_k_multi(&w, &ys, &mut out);
                for k in 0..n {
                    let want = scalar_q4_k_q8_k(&w, ys[k]);
                    assert_eq!(out[k].to_bits(), want.to_bits(), "case {case} n={n} k={k}");
                }
                #[cfg(target_arch = "x86_64")]
                if crate::isa::avx2() {
                    let mut a = vec![0.0; n];
                    // SAFETY: AVX2 was detected.
                    unsafe { simd::avx2::dot_q4_k_q8_k_multi::<1>(&w, &ys[..1], &mut a[..1]) };
                    assert_eq!(a[0].to_bits(), scalar_q4_k_q8_k(&w, ys[0]).to_bits());
                }
            }
        }
    }

    #[test]
    fn q4_k_dot_equals_the_dequantized_dot() {
        use crate::quant::quantize::quantize_weight_q4_k;
        let n = 1024;
        let (w, a) = (row(21, n), row(22, n));
        let wq = quantize_weight_q4_k(&w);
        let mut aq = vec![BlockQ8K::default(); n / 256];
        crate::quant::quantize::quantize_q8_k(&a, &mut aq);
        let wf = deq(crate::GgmlType::Q4K, &wq, n);
        let af = deq(crate::GgmlType::Q8K, &aq, n);
        // Integer products are exact: only f32 summation order separates the two.
        let got = scalar_q4_k_q8_k(&wq, &aq);
        let want = dot_f32(&wf, &af);
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "{got} vs {want}"
        );
        // Both quantizations together stay near the exact product: w, a uniform in
        // (-1, 1), a Q4_K step ≈ 2/15, so a weight error of rms ≈ 0.04, times |a| rms
        // 0.58, over 1024 terms of random sign: rms ≈ 0.7; allow 3 sigma.
        let exact = dot_f32(&w, &a);
        assert!((got - exact).abs() < 2.1, "{got} vs exact {exact}");
        let rand_blocks = random_q4k(5, 4);
        let aq: Vec<BlockQ8K> = q8k(6, 1024);
        let got = dot_q4_k_q8_k_multi_one(&rand_blocks, &aq);
        let want = dot_f32(
            &deq(crate::GgmlType::Q4K, &rand_blocks, 1024),
            &deq(crate::GgmlType::Q8K, &aq, 1024),
        );
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }

    /// The portable Q6_K dot (integer sums per sub-block) equals the f32 dot of the
    /// dequantized rows up to float summation order, for random blocks and for
    /// quantized rows; and a quantized product stays near the exact one.
    #[test]
    fn q6_k_dot_equals_the_dequantized_dot() {
        use crate::quant::quantize::quantize_weight_q6_k;
        let n = 1024;
        let close = |got: f32, want: f32| (got - want).abs() < 1e-4 * want.abs().max(1.0);
        for seed in 0..20 {
            let w = random_q6k(seed, n / 256);
            let a = q8k(100 + seed, n);
            let got = scalar_q6_k_q8_k(&w, &a);
            let want = dot_f32(
                &deq(crate::GgmlType::Q6K, &w, n),
                &deq(crate::GgmlType::Q8K, &a, n),
            );
            assert!(close(got, want), "seed {seed}: {got} vs {want}");
        }
        let (w, a) = (row(31, n), row(32, n));
        let wq = quantize_weight_q6_k(&w);
        let aq = q8k(32, n);
        let got = scalar_q6_k_q8_k(&wq, &aq);
        let want = dot_f32(
            &deq(crate::GgmlType::Q6K, &wq, n),
            &deq(crate::GgmlType::Q8K, &aq, n),
        );
        assert!(close(got, want), "{got} vs {want}");
        // A Q6_K step is at most 1/32 of a sub-block's largest magnitude (< 1): weight
        // error rms ≤ 0.009, times |a| rms 0.58 over 1024 random-sign terms: rms ≤ 0.17;
        // Q8_K adds less. Allow 3 sigma.
        let exact = dot_f32(&w, &a);
        assert!((got - exact).abs() < 0.5, "{got} vs exact {exact}");
    }

    /// The portable Q5_K dot equals the f32 dot of the dequantized rows (ggml's
    /// `dequantize_row_q5_K` reading the same bytes), up to float summation order.
    #[test]
    fn q5_k_dot_equals_the_dequantized_dot() {
        let n = 1024;
        for seed in 0..20 {
            let w = random_q5k(seed, n / 256);
            let a = q8k(200 + seed, n);
            let got = scalar_q5_k_q8_k(&w, &a);
            let want = dot_f32(
                &deq(crate::GgmlType::Q5K, &w, n),
                &deq(crate::GgmlType::Q8K, &a, n),
            );
            assert!(
                (got - want).abs() < 1e-4 * want.abs().max(1.0),
                "seed {seed}: {got} vs {want}"
            );
        }
    }

    fn dot_q4_k_q8_k_multi_one(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
        let mut out = [0.0];
        dot_q4_k_q8_k_multi(w, &[a], &mut out);
        out[0]
    }
}
