//! Dot products between a weight row and an activation row, per block format.
//!
//! Each has a portable version and an AVX2 version chosen at run time. The AVX2 versions
//! follow ggml's x86 kernels operation for operation, so results agree with llama.cpp
//! up to float summation order.

use crate::quant::{BlockQ4_0, BlockQ4_1, BlockQ8_0, BlockQ8_1};

/// True when the CPU has AVX2 and FMA (checked once; the result is cached by std).
#[inline]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Q4_0 weights · Q8_0 activations.
#[inline]
pub fn dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected above.
        return unsafe { avx2::dot_q4_0_q8_0(x, y) };
    }
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

/// Q4_1 weights · Q8_1 activations.
#[inline]
pub fn dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected above.
        return unsafe { avx2::dot_q4_1_q8_1(x, y) };
    }
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

/// Q8_0 weights · Q8_0 activations.
#[inline]
pub fn dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and FMA were detected above.
        return unsafe { avx2::dot_q8_0_q8_0(x, y) };
    }
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
mod avx2 {
    use super::{BlockQ4_0, BlockQ4_1, BlockQ8_0, BlockQ8_1};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn nibbles(qs: &[u8; 16]) -> __m256i {
        let tmp = _mm_loadu_si128(qs.as_ptr() as *const __m128i);
        let bytes =
            _mm256_insertf128_si256::<1>(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4));
        _mm256_and_si256(_mm256_set1_epi8(0xF), bytes)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum_us8_pairs(ax: __m256i, sy: __m256i) -> __m256 {
        let dot = _mm256_maddubs_epi16(ax, sy);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), dot))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum_i8_pairs(x: __m256i, y: __m256i) -> __m256 {
        sum_us8_pairs(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(x: __m256) -> f32 {
        let r = _mm_add_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
        let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
        let r = _mm_add_ss(r, _mm_movehdup_ps(r));
        _mm_cvtss_f32(r)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let off = _mm256_set1_epi8(8);
        for (a, b) in x.iter().zip(y) {
            let d = _mm256_set1_ps(a.d.to_f32() * b.d.to_f32());
            let qx = _mm256_sub_epi8(nibbles(&a.qs), off);
            let qy = _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i);
            acc = _mm256_fmadd_ps(d, sum_i8_pairs(qx, qy), acc);
        }
        hsum(acc)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0f32;
        for (a, b) in x.iter().zip(y) {
            summs += a.m.to_f32() * b.s.to_f32();
            let d = _mm256_mul_ps(_mm256_set1_ps(a.d.to_f32()), _mm256_set1_ps(b.d.to_f32()));
            let qy = _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i);
            acc = _mm256_fmadd_ps(d, sum_us8_pairs(nibbles(&a.qs), qy), acc);
        }
        hsum(acc) + summs
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for (a, b) in x.iter().zip(y) {
            let d = _mm256_set1_ps(a.d.to_f32() * b.d.to_f32());
            let qx = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
            let qy = _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i);
            acc = _mm256_fmadd_ps(d, sum_i8_pairs(qx, qy), acc);
        }
        hsum(acc)
    }
}

#[cfg(test)]
mod tests {
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
                dot_q8_0_q8_0(&w8, &a8),
                dot_f32(&deq(T::Q8_0, &w8, 256), &a8f),
            ),
            (
                dot_q4_0_q8_0(&w40, &a8),
                dot_f32(&deq(T::Q4_0, &w40, 256), &a8f),
            ),
            (
                dot_q4_1_q8_1(&w41, &a81),
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
}
