//! Quantization of f32 rows into block formats: activations (Q8_0/Q8_1, done every step,
//! rounded exactly as ggml's x86 path does so logits agree with llama.cpp) and weights
//! (Q8_0/Q4_0/Q4_1, done once at load time for `--quantization`).

use super::blocks::{BlockQ4_0, BlockQ4_1, BlockQ8_0, BlockQ8_1, QK};
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
    if crate::dot::has_avx2() {
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
}
