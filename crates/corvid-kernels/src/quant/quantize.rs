//! Quantization of f32 rows into block formats: activations (Q8_0/Q8_1/Q8_K, done every
//! step, rounded exactly as ggml's x86 path does so logits agree with llama.cpp) and
//! weights (Q8_0/Q4_0/Q4_1/Q4_K, done once at load time for `--quantization`; Q6_K for
//! tests and benchmarks).

use super::blocks::{
    pack_scale_min_k4, scale_min_k4, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ6K, BlockQ8K,
    BlockQ8_0, BlockQ8_1, QK, QK_K,
};
use half::f16;

/// Largest absolute value. Eight independent lanes let the compiler vectorize it (the
/// result is exact whatever the order, so it equals a sequential scan).
fn amax(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            let a = v.abs();
            *l = if a > *l { a } else { *l };
        }
    }
    lanes.iter().fold(tail, |m, &l| m.max(l))
}

/// Quantizes one activation row into Q8_0 blocks (`x.len()` a multiple of 32).
pub fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (b, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let (m, _) = quantize_block(xs, &mut b.qs);
        b.d = f16::from_f32(m / 127.0);
    }
}

/// Quantizes one activation row into Q8_1 blocks (`x.len()` a multiple of 32).
pub fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (b, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let (m, sum) = quantize_block(xs, &mut b.qs);
        let d = m / 127.0;
        b.d = f16::from_f32(d);
        b.s = f16::from_f32(d * sum as f32);
    }
}

/// Rounds one 32-value block to int8 with scale `amax / 127` (round half to even, as
/// ggml's x86 path); returns `amax` and the sum of the quantized values.
#[inline]
fn quantize_block(xs: &[f32], qs: &mut [i8; 32]) -> (f32, i32) {
    #[cfg(target_arch = "x86_64")]
    if crate::isa::avx2() {
        // SAFETY: AVX2 was detected; `xs` holds a whole block.
        return unsafe { quantize_block_avx2(xs, qs) };
    }
    quantize_block_scalar(xs, qs)
}

/// The portable definition [`quantize_block`] must match bit for bit.
fn quantize_block_scalar(xs: &[f32], qs: &mut [i8; 32]) -> (f32, i32) {
    let m = amax(xs);
    let id = if m != 0.0 { 127.0 / m } else { 0.0 };
    let mut sum = 0;
    for (q, &v) in qs.iter_mut().zip(xs) {
        *q = (v * id).round_ties_even() as i8;
        sum += *q as i32;
    }
    (m, sum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_block_avx2(xs: &[f32], qs: &mut [i8; 32]) -> (f32, i32) {
    use std::arch::x86_64::*;
    assert!(xs.len() >= QK);
    let p = xs.as_ptr();
    let v = [
        _mm256_loadu_ps(p),
        _mm256_loadu_ps(p.add(8)),
        _mm256_loadu_ps(p.add(16)),
        _mm256_loadu_ps(p.add(24)),
    ];
    let sign = _mm256_set1_ps(-0.0);
    let mut mx = _mm256_andnot_ps(sign, v[0]);
    for vk in &v[1..] {
        mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, *vk));
    }
    let m4 = _mm_max_ps(_mm256_extractf128_ps::<1>(mx), _mm256_castps256_ps128(mx));
    let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    let m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    let m = _mm_cvtss_f32(m4);
    let id = _mm256_set1_ps(if m != 0.0 { 127.0 / m } else { 0.0 });
    let r = v.map(|vk| {
        _mm256_cvtps_epi32(_mm256_round_ps::<
            { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
        >(_mm256_mul_ps(vk, id)))
    });
    let s = _mm256_add_epi32(_mm256_add_epi32(r[0], r[1]), _mm256_add_epi32(r[2], r[3]));
    let s4 = _mm_add_epi32(_mm256_extracti128_si256::<1>(s), _mm256_castsi256_si128(s));
    let s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    let s4 = _mm_add_epi32(s4, _mm_shuffle_epi32::<1>(s4));
    // Pack 4×8 i32 to 32 i8 (saturating, in range anyway) and undo the lane interleave.
    let packed = _mm256_packs_epi16(
        _mm256_packs_epi32(r[0], r[1]),
        _mm256_packs_epi32(r[2], r[3]),
    );
    let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(qs.as_mut_ptr() as *mut __m256i, ordered);
    (m, _mm_cvtsi128_si32(s4))
}

/// ggml's `nearest_int`: round half to even through the float adder (|f| < 2^22).
#[inline]
fn nearest_int(f: f32) -> i32 {
    let v = f + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Quantizes one activation row into Q8_K blocks (`x.len()` a multiple of 256), as
/// ggml's `quantize_row_q8_K_ref` (which x86 uses): the signed value of largest
/// magnitude maps to -127.
pub fn quantize_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    for (b, xs) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xs {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *b = BlockQ8K::default();
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (s, qs) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
            *s = qs.iter().map(|&q| q as i16).sum();
        }
        b.d = 1.0 / iscale;
    }
}

/// ggml's `make_qkx2_quants`: the weighted least-squares scale and minimum of `x` on
/// levels `0..=nmax`, trying `nstep + 1` candidate scales. Writes the levels to `l` and
/// returns `(scale, -min)`.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let level = |iscale: f32, v: f32, min: f32| nearest_int(iscale * (v - min)).clamp(0, nmax);
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        l[i] = level(iscale, x[i], min) as u8;
        let diff = scale * l[i] as f32 + min - x[i];
        best_error += weights[i] * (diff * diff);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let li = level(iscale, x[i], min);
            laux[i] = li as u8;
            let (w, lf) = (weights[i], li as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * (diff * diff);
            }
            if cur_error < best_error {
                l.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// One super-block's affine fit as ggml's `quantize_row_q4_K_ref` and
/// `quantize_row_q5_K_ref` do it (no importance matrix): per 32-value sub-block a
/// weighted fit with `nmax + 1` levels, then the eight scales and minimums quantized to
/// 6 bits against the super-block's largest, and every value's level (0..=`nmax`) under
/// the quantized scales. Returns `(d, dmin, packed scales, levels)`.
fn fit_k_super_block(
    xs: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
) -> (f16, f16, [u8; 12], [u8; QK_K]) {
    let mut levels = [0u8; QK_K];
    let (mut laux, mut weights) = ([0u8; 32], [0.0f32; 32]);
    let (mut scales, mut mins) = ([0.0f32; 8], [0.0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..QK_K / 32 {
        let sub = &xs[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in sub {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(sub) {
            *w = av_x + v.abs();
        }
        let l = &mut levels[32 * j..32 * j + 32];
        (scales[j], mins[j]) =
            make_qkx2_quants(nmax, sub, &weights, l, &mut laux, rmin, 0.1, nstep);
        max_scale = if scales[j] > max_scale {
            scales[j]
        } else {
            max_scale
        };
        max_min = if mins[j] > max_min { mins[j] } else { max_min };
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let ls: [u8; 8] = std::array::from_fn(|j| (nearest_int(inv_scale * scales[j]) as u8).min(63));
    let lm: [u8; 8] = std::array::from_fn(|j| (nearest_int(inv_min * mins[j]) as u8).min(63));
    let packed = pack_scale_min_k4(&ls, &lm);
    let (d, dmin) = (
        f16::from_f32(max_scale / 63.0),
        f16::from_f32(max_min / 63.0),
    );
    for j in 0..QK_K / 32 {
        let (sc, m) = scale_min_k4(j, &packed);
        let dj = d.to_f32() * sc as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for i in 32 * j..32 * j + 32 {
            levels[i] = nearest_int((xs[i] + dm) / dj).clamp(0, nmax) as u8;
        }
    }
    (d, dmin, packed, levels)
}

/// Quantizes a weight row to Q4_K (`x.len()` a multiple of 256), as ggml's
/// `quantize_row_q4_K_ref` (what llama.cpp's quantizer does without an importance
/// matrix).
pub fn quantize_weight_q4_k(x: &[f32]) -> Vec<BlockQ4K> {
    x.chunks_exact(QK_K)
        .map(|xs| {
            let (d, dmin, scales, levels) = fit_k_super_block(xs, 15, -1.0, 20);
            let mut b = BlockQ4K {
                d,
                dmin,
                scales,
                ..Default::default()
            };
            for (g, q) in b.qs.chunks_exact_mut(32).enumerate() {
                for (i, byte) in q.iter_mut().enumerate() {
                    *byte = levels[64 * g + i] | (levels[64 * g + 32 + i] << 4);
                }
            }
            b
        })
        .collect()
}

/// Quantizes a weight row to Q5_K (`x.len()` a multiple of 256), as ggml's
/// `quantize_row_q5_K_ref`: [`quantize_weight_q4_k`]'s fit with 32 levels, the fifth bit
/// of each level stored apart.
pub fn quantize_weight_q5_k(x: &[f32]) -> Vec<BlockQ5K> {
    x.chunks_exact(QK_K)
        .map(|xs| {
            let (d, dmin, scales, levels) = fit_k_super_block(xs, 31, -0.5, 15);
            let mut b = BlockQ5K {
                d,
                dmin,
                scales,
                ..Default::default()
            };
            for (g, q) in b.qs.chunks_exact_mut(32).enumerate() {
                for (i, byte) in q.iter_mut().enumerate() {
                    let (lo, hi) = (levels[64 * g + i], levels[64 * g + 32 + i]);
                    *byte = (lo & 0xF) | ((hi & 0xF) << 4);
                    b.qh[i] |= ((lo >> 4) << (2 * g)) | ((hi >> 4) << (2 * g + 1));
                }
            }
            b
        })
        .collect()
}

/// Quantizes a weight row to Q6_K (`x.len()` a multiple of 256) by plain rounding: per
/// 16-value sub-block the scale that maps the value of largest magnitude to level −32,
/// the sixteen scales to 8 bits against the super-block's largest (as ggml's
/// `quantize_row_q6_K_ref`, without its weighted search for a better scale). Valid
/// blocks of ggml's layout for `--quantization`-free tests and benchmarks; GGUF Q6_K
/// weights load as stored.
pub fn quantize_weight_q6_k(x: &[f32]) -> Vec<BlockQ6K> {
    /// The signed value of largest magnitude.
    fn signed_max(xs: &[f32]) -> f32 {
        xs.iter()
            .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m })
    }
    x.chunks_exact(QK_K)
        .map(|xs| {
            let scales: [f32; 16] =
                std::array::from_fn(|j| signed_max(&xs[16 * j..16 * j + 16]) / -32.0);
            let max_scale = signed_max(&scales);
            let mut b = BlockQ6K::default();
            if max_scale == 0.0 {
                return b; // all zero: d = 0
            }
            let iscale = -128.0 / max_scale;
            b.d = f16::from_f32(1.0 / iscale);
            let mut levels = [32u8; QK_K];
            for (j, s) in scales.iter().enumerate() {
                b.scales[j] = nearest_int(iscale * s).min(127) as i8;
                let d = b.d.to_f32() * b.scales[j] as f32;
                if d == 0.0 {
                    continue;
                }
                for i in 16 * j..16 * j + 16 {
                    levels[i] = (nearest_int(xs[i] / d).clamp(-32, 31) + 32) as u8;
                }
            }
            for n in 0..2 {
                for l in 0..32 {
                    let q = |m: usize| levels[128 * n + 32 * m + l];
                    b.ql[64 * n + l + 32] = (q(1) & 0xF) | ((q(3) & 0xF) << 4);
                    b.ql[64 * n + l] = (q(0) & 0xF) | ((q(2) & 0xF) << 4);
                    b.qh[32 * n + l] =
                        (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
                }
            }
            b
        })
        .collect()
}

/// Quantizes a weight row to Q8_0 (ggml's reference rounding).
pub fn quantize_weight_q8_0(x: &[f32]) -> Vec<BlockQ8_0> {
    x.chunks_exact(QK)
        .map(|xs| {
            let d = amax(xs) / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut b = BlockQ8_0 {
                d: f16::from_f32(d),
                ..Default::default()
            };
            for (q, &v) in b.qs.iter_mut().zip(xs) {
                *q = (v * id).round() as i8;
            }
            b
        })
        .collect()
}

/// Quantizes a weight row to Q4_0 (ggml's reference rounding).
pub fn quantize_weight_q4_0(x: &[f32]) -> Vec<BlockQ4_0> {
    x.chunks_exact(QK)
        .map(|xs| {
            let max = xs
                .iter()
                .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
            let d = max / -8.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut b = BlockQ4_0 {
                d: f16::from_f32(d),
                ..Default::default()
            };
            for j in 0..QK / 2 {
                let lo = ((xs[j] * id + 8.5) as i8).min(15) as u8;
                let hi = ((xs[j + QK / 2] * id + 8.5) as i8).min(15) as u8;
                b.qs[j] = lo | (hi << 4);
            }
            b
        })
        .collect()
}

/// Quantizes a weight row to Q4_1 (ggml's reference rounding).
pub fn quantize_weight_q4_1(x: &[f32]) -> Vec<BlockQ4_1> {
    x.chunks_exact(QK)
        .map(|xs| {
            let min = xs.iter().copied().fold(f32::INFINITY, f32::min);
            let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let d = (max - min) / 15.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut b = BlockQ4_1 {
                d: f16::from_f32(d),
                m: f16::from_f32(min),
                ..Default::default()
            };
            for j in 0..QK / 2 {
                let lo = (((xs[j] - min) * id + 0.5) as i8).min(15) as u8;
                let hi = (((xs[j + QK / 2] - min) * id + 0.5) as i8).min(15) as u8;
                b.qs[j] = lo | (hi << 4);
            }
            b
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn simd_block_quantization_equals_the_scalar_definition() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for case in 0..2000 {
            let scale = [1e-3f32, 1.0, 37.0, 1e4][case % 4];
            let mut xs: Vec<f32> = (0..32).map(|_| rng.gen_range(-1.0..1.0) * scale).collect();
            if case % 7 == 0 {
                xs.iter_mut().for_each(|v| *v = 0.0); // all-zero block
            }
            if case % 11 == 0 {
                xs[5] = 0.5 * scale; // exact halves exercise round-half-to-even
                xs[6] = -scale;
            }
            let (mut a, mut b) = ([0i8; 32], [0i8; 32]);
            let got = quantize_block(&xs, &mut a);
            let want = quantize_block_scalar(&xs, &mut b);
            assert_eq!(a, b, "case {case}");
            assert_eq!(got.0.to_bits(), want.0.to_bits());
            assert_eq!(got.1, want.1);
        }
    }

    #[test]
    fn q8_k_matches_its_definition() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mut x: Vec<f32> = (0..512).map(|_| rng.gen_range(-3.0..3.0)).collect();
        x[300] = -7.5; // the signed extreme of a block always maps to -127
        x[256..300].iter_mut().for_each(|v| *v *= 0.1);
        let mut q = vec![BlockQ8K::default(); 2];
        quantize_q8_k(&x, &mut q);
        assert_eq!(q[1].qs[44], -127);
        assert_eq!(q[1].d, 1.0 / (-127.0 / -7.5));
        for (b, xs) in q.iter().zip(x.chunks_exact(QK_K)) {
            for (j, s) in b.bsums.iter().enumerate() {
                let want: i32 = b.qs[16 * j..16 * j + 16].iter().map(|&v| v as i32).sum();
                assert_eq!(*s as i32, want);
            }
            for (&v, &qv) in xs.iter().zip(&b.qs) {
                assert!((v - qv as f32 * b.d).abs() <= 0.5 * b.d.abs() * 1.0001);
            }
        }
        let mut z = [BlockQ8K::default()];
        quantize_q8_k(&[0.0; 256], &mut z);
        assert_eq!(z[0].d, 0.0);
    }

    /// Q5_K keeps each value within half a 5-bit step of its sub-block's range (plus the
    /// 6-bit scale rounding), and its fifth bits land where `dequantize` reads them.
    #[test]
    fn q5_k_quantization_round_trips_within_its_step() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        for case in 0..30 {
            let scale = [1e-3f32, 0.05, 1.0, 20.0][case % 4];
            let x: Vec<f32> = (0..512).map(|_| rng.gen_range(-1.0..1.0) * scale).collect();
            let q = quantize_weight_q5_k(&x);
            let mut y = vec![0.0; 512];
            for (b, o) in q.iter().zip(y.chunks_exact_mut(QK_K)) {
                crate::quant::dequantize_q5k(b, o);
            }
            for (xs, ys) in x.chunks_exact(32).zip(y.chunks_exact(32)) {
                let (lo, hi) = xs
                    .iter()
                    .fold((0.0f32, 0.0f32), |(a, b), &v| (a.min(v), b.max(v)));
                let tol = (hi - lo) * (0.5 / 31.0 + 0.03) + 1e-6;
                for (a, b) in xs.iter().zip(ys) {
                    assert!((a - b).abs() <= tol, "case {case}: {a} vs {b}");
                }
            }
            assert!(q.iter().any(|b| b.qh.iter().any(|&h| h != 0)));
        }
    }

    #[test]
    fn q4_k_quantization_round_trips_within_its_step() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        for case in 0..50 {
            let scale = [1e-3f32, 0.05, 1.0, 20.0][case % 4];
            let mut x: Vec<f32> = (0..512).map(|_| rng.gen_range(-1.0..1.0) * scale).collect();
            if case % 5 == 0 {
                x[..256].iter_mut().for_each(|v| *v = v.abs()); // all-positive block
            }
            if case % 7 == 0 {
                x[256..].iter_mut().for_each(|v| *v = 0.0); // all-zero block
            }
            let q = quantize_weight_q4_k(&x);
            let mut y = vec![0.0; 512];
            for (b, o) in q.iter().zip(y.chunks_exact_mut(QK_K)) {
                crate::quant::dequantize_q4k(b, o);
            }
            for (sub, (xs, ys)) in x.chunks_exact(32).zip(y.chunks_exact(32)).enumerate() {
                let (lo, hi) = xs
                    .iter()
                    .fold((0.0f32, 0.0f32), |(a, b), &v| (a.min(v), b.max(v)));
                // Half a 4-bit step of the sub-block range, plus the 6-bit scale and
                // f16 rounding of the fit (a few percent of the range).
                let tol = (hi - lo) * (0.5 / 15.0 + 0.05) + 1e-6;
                for (a, b) in xs.iter().zip(ys) {
                    assert!((a - b).abs() <= tol, "case {case} sub {sub}: {a} vs {b}");
                }
            }
            let rmse = (x
                .iter()
                .zip(&y)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                / 512.0)
                .sqrt();
            assert!(rmse < 0.06 * scale, "case {case}: rmse {rmse}");
        }
    }
}
