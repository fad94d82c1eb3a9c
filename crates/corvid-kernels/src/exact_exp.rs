//! glibc's `expf`, eight lanes at a time, bit for bit.
//!
//! Attention's softmax must use the exact `expf` the scalar code calls: the golden test
//! showed that 1-ulp differences in attention weights move greedy tokens at llama.cpp's
//! near-ties, so [`crate::vexp::exp8`] (within 1 ulp) cannot serve there. glibc (≥ 2.27;
//! Arm's optimized-routines algorithm) computes `expf` in double precision: `x·N/ln 2 =
//! k + r` with `N = 32`, `2^(k/N)` from a 32-entry table and the exponent bits, and a
//! cubic in `r`. On a CPU with FMA its IFUNC picks the build compiled with FMA
//! contraction, whose operations this module repeats in the same order: the tier that
//! runs this (AVX2, which implies FMA) is one where `f32::exp` is that build. The test
//! compares every lane with `f32::exp` over a sweep of all non-positive floats.
//!
//! Inputs with `|x| ≥ 88` or NaN take glibc's special-case path (overflow, underflow,
//! infinities): those lanes are recomputed by `f32::exp` itself.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `N / ln 2` with `N = 32` table entries per octave (`__exp2f_data.invln2_scaled`).
const INV_LN2_N: u64 = 0x4047_1547_652b_82fe;
/// `1.5 · 2^52`: adding it rounds to an integer held in the low mantissa bits.
const SHIFT: u64 = 0x4338_0000_0000_0000;
/// The cubic's coefficients, scaled by `1/N³, 1/N², 1/N` (`__exp2f_data.poly_scaled`).
const C: [u64; 3] = [
    0x3ebc_6af8_4b91_2394,
    0x3f2e_bfce_50fa_c4f3,
    0x3f96_2e42_ff0c_52d6,
];
/// `bits(2^(i/N)) − (i << 47)` (`__exp2f_data.tab`): adding `k << 47` gives `2^(k/N)`.
const TABLE: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];

/// The bits from which `|x|` takes glibc's special-case path: `88.0f`.
const SPECIAL_ABS_BITS: i32 = 0x42b0_0000;

/// `expf` of four lanes already widened to double, as glibc's FMA build computes it
/// (valid for `|x| < 88`).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp4(xd: __m256d) -> __m128 {
    let inv_ln2_n = _mm256_set1_pd(f64::from_bits(INV_LN2_N));
    let shift = _mm256_set1_pd(f64::from_bits(SHIFT));
    let kd = _mm256_fmadd_pd(inv_ln2_n, xd, shift);
    let ki = _mm256_castpd_si256(kd);
    let kd = _mm256_sub_pd(kd, shift);
    let r = _mm256_fmsub_pd(inv_ln2_n, xd, kd);
    let index = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
    let t = _mm256_i64gather_epi64::<8>(TABLE.as_ptr() as *const i64, index);
    let s = _mm256_castsi256_pd(_mm256_add_epi64(t, _mm256_slli_epi64::<47>(ki)));
    let z = _mm256_fmadd_pd(
        r,
        _mm256_set1_pd(f64::from_bits(C[0])),
        _mm256_set1_pd(f64::from_bits(C[1])),
    );
    let r2 = _mm256_mul_pd(r, r);
    let y = _mm256_fmadd_pd(r, _mm256_set1_pd(f64::from_bits(C[2])), _mm256_set1_pd(1.0));
    let y = _mm256_fmadd_pd(z, r2, y);
    _mm256_cvtpd_ps(_mm256_mul_pd(y, s))
}

/// `f32::exp` of each lane, bit for bit (glibc's FMA build).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn expf8(x: __m256) -> __m256 {
    let lo = exp4(_mm256_cvtps_pd(_mm256_castps256_ps128(x)));
    let hi = exp4(_mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)));
    let y = _mm256_set_m128(hi, lo);
    let abs = _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7fff_ffff));
    let special = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(SPECIAL_ABS_BITS - 1));
    if _mm256_testz_si256(special, special) != 0 {
        return y;
    }
    let (mut xs, mut ys) = ([0.0f32; 8], [0.0f32; 8]);
    _mm256_storeu_ps(xs.as_mut_ptr(), x);
    _mm256_storeu_ps(ys.as_mut_ptr(), y);
    let mask = _mm256_movemask_ps(_mm256_castsi256_ps(special));
    for (i, (yi, xi)) in ys.iter_mut().zip(xs).enumerate() {
        if mask & (1 << i) != 0 {
            *yi = xi.exp();
        }
    }
    _mm256_loadu_ps(ys.as_ptr())
}

/// `x = exp(x − max)` in place, every element bit-identical to `(x − max).exp()`.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp_shifted(x: &mut [f32], max: f32) {
    let m = _mm256_set1_ps(max);
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = _mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), m);
        _mm256_storeu_ps(c.as_mut_ptr(), expf8(v));
    }
    for v in chunks.into_remainder() {
        *v = (*v - max).exp();
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::vexp::tests::on_lanes;

    fn assert_same(x: [f32; 8]) {
        for (i, y) in on_lanes(expf8, x).into_iter().enumerate() {
            let want = x[i].exp();
            assert!(
                y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan()),
                "exp({:e}) = {y:e}, libm {want:e}",
                x[i]
            );
        }
    }

    /// Every 61st bit pattern of the non-positive floats (the softmax's inputs, 35 million
    /// of them: all exponents, mantissas spread by the odd stride), and a sweep of the
    /// positive range, equal `f32::exp` bit for bit.
    #[test]
    fn equals_libm_bit_for_bit() {
        if !crate::isa::avx2() {
            return;
        }
        let mut bits = 0x8000_0000u32;
        while bits < 0xff80_0000 {
            assert_same(std::array::from_fn(|i| {
                f32::from_bits(bits + 61 * i as u32)
            }));
            bits = bits.saturating_add(61 * 8);
        }
        let mut x = 0.0f32;
        while x < 100.0 {
            assert_same(std::array::from_fn(|i| x + i as f32 * 1.7e-3));
            x += 0.0137;
        }
    }

    #[test]
    fn special_lanes_take_libm_path() {
        if !crate::isa::avx2() {
            return;
        }
        assert_same([
            0.0,
            -0.0,
            -88.0,
            -103.0,
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            88.5,
        ]);
        assert_same([
            -87.99,
            -150.0,
            1.0,
            -1.0,
            89.0,
            -f32::MIN_POSITIVE,
            1e-30,
            -1e-30,
        ]);
    }

    #[test]
    fn exp_shifted_matches_the_scalar_loop_at_every_length() {
        if !crate::isa::avx2() {
            return;
        }
        for n in [0, 1, 7, 8, 9, 33, 500] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 60.0) * 0.37)
                .collect();
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut got = x.clone();
            // SAFETY: AVX2/FMA checked above.
            unsafe { exp_shifted(&mut got, max) };
            for (g, v) in got.iter().zip(&x) {
                assert_eq!(g.to_bits(), (v - max).exp().to_bits());
            }
        }
    }
}
