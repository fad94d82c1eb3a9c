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
        let m = amax(xs);
        let id = if m != 0.0 { 127.0 / m } else { 0.0 };
        b.d = f16::from_f32(m / 127.0);
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = (v * id).round_ties_even() as i8;
        }
    }
}

/// Quantizes one activation row into Q8_1 blocks (`x.len()` a multiple of 32).
pub fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (b, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let m = amax(xs);
        let d = m / 127.0;
        let id = if m != 0.0 { 127.0 / m } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            *q = (v * id).round_ties_even() as i8;
            sum += *q as i32;
        }
        b.d = f16::from_f32(d);
        b.s = f16::from_f32(d * sum as f32);
    }
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
