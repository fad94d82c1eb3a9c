//! Dequantization of every supported GGUF tensor type to f32, one row at a time.
//! These are the reference semantics (ggml's); the hot path never dequantizes whole
//! matrices, but loading converts less common formats through here.

use super::blocks::{scale_min_k4, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8_0, QK};
use crate::GgmlType;
use half::{bf16, f16};

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantizes `out.len()` elements of type `ty` from `bytes` (which must hold exactly
/// that many elements; `out.len()` a multiple of the block size).
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
    let bs = ty.block_size();
    let ts = ty.type_size();
    debug_assert_eq!(bytes.len(), out.len() / bs * ts);
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes(c.try_into().expect("4 bytes"));
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        GgmlType::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        _ => {
            for (b, o) in bytes.chunks_exact(ts).zip(out.chunks_exact_mut(bs)) {
                dequantize_block(ty, b, o);
            }
        }
    }
}

/// The 32 unsigned 5-bit values (0..=31) of a Q5_0/Q5_1 block, from the block's bytes
/// after its scale (and minimum): four bytes of fifth bits, then sixteen bytes of nibbles,
/// value `j` in the low nibble of byte `j` and value `j + 16` in its high nibble.
fn q5_values(b: &[u8]) -> [i32; QK] {
    let qh = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
    let qs = &b[4..4 + QK / 2];
    let mut v = [0; QK];
    for j in 0..QK / 2 {
        v[j] = (qs[j] & 0xF) as i32 | ((((qh >> j) << 4) & 0x10) as i32);
        v[j + QK / 2] = (qs[j] >> 4) as i32 | (((qh >> (j + 12)) & 0x10) as i32);
    }
    v
}

/// Q5_0 blocks rewritten exactly as Q8_0: the same f16 scale and each value's
/// `q − 16` (−16..=15) as the 8-bit value, so `d·(q − 16)` is unchanged and the products
/// run the Q8_0 kernels with the integer sums ggml's Q5_0 × Q8_0 dot computes. (Before,
/// Q5_0 went through f32 and a fresh Q8_0 scale, which rounded every weight again.)
/// `bytes` holds whole Q5_0 blocks (22 bytes each).
pub fn q5_0_as_q8_0(bytes: &[u8]) -> Vec<BlockQ8_0> {
    bytes
        .chunks_exact(GgmlType::Q5_0.type_size())
        .map(|b| BlockQ8_0 {
            d: f16::from_le_bytes([b[0], b[1]]),
            qs: q5_values(&b[2..]).map(|q| (q - 16) as i8),
        })
        .collect()
}

fn dequantize_block(ty: GgmlType, b: &[u8], y: &mut [f32]) {
    match ty {
        GgmlType::Q4_0 => {
            let d = f16_at(b, 0);
            for j in 0..QK / 2 {
                y[j] = ((b[2 + j] & 0xF) as i32 - 8) as f32 * d;
                y[j + QK / 2] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
            }
        }
        GgmlType::Q4_1 => {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..QK / 2 {
                y[j] = (b[4 + j] & 0xF) as f32 * d + m;
                y[j + QK / 2] = (b[4 + j] >> 4) as f32 * d + m;
            }
        }
        GgmlType::Q5_0 => {
            let d = f16_at(b, 0);
            for (y, q) in y.iter_mut().zip(q5_values(&b[2..])) {
                *y = (q - 16) as f32 * d;
            }
        }
        GgmlType::Q5_1 => {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            for (y, q) in y.iter_mut().zip(q5_values(&b[4..])) {
                *y = q as f32 * d + m;
            }
        }
        GgmlType::Q8_0 => {
            let d = f16_at(b, 0);
            for j in 0..QK {
                y[j] = b[2 + j] as i8 as f32 * d;
            }
        }
        GgmlType::Q8_1 => {
            let d = f16_at(b, 0);
            for j in 0..QK {
                y[j] = b[4 + j] as i8 as f32 * d;
            }
        }
        GgmlType::Q2K => dequant_q2k(b, y),
        GgmlType::Q3K => dequant_q3k(b, y),
        GgmlType::Q4K => dequant_q4k(b, y),
        GgmlType::Q5K => dequant_q5k(b, y),
        GgmlType::Q6K => dequant_q6k(b, y),
        GgmlType::Q8K => {
            let d = f32::from_le_bytes(b[0..4].try_into().expect("4 bytes"));
            for j in 0..256 {
                y[j] = b[4 + j] as i8 as f32 * d;
            }
        }
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => unreachable!("plain types"),
    }
}

/// [`scale_min_k4`] as f32.
fn scale_min_f32(j: usize, q: &[u8]) -> (f32, f32) {
    let (d, m) = scale_min_k4(j, q);
    (d as f32, m as f32)
}

fn dequant_q4k(b: &[u8], y: &mut [f32]) {
    let scales = b[4..16].try_into().expect("12 bytes");
    dequant_q4k_parts(f16_at(b, 0), f16_at(b, 2), scales, &b[16..144], y);
}

/// Dequantizes one Q4_K block to its 256 values.
pub fn dequantize_q4k(b: &BlockQ4K, y: &mut [f32]) {
    dequant_q4k_parts(b.d.to_f32(), b.dmin.to_f32(), &b.scales, &b.qs, y);
}

fn dequant_q4k_parts(d: f32, dmin: f32, scales: &[u8; 12], qs: &[u8], y: &mut [f32]) {
    for (g, chunk) in y.chunks_exact_mut(64).enumerate() {
        let q = &qs[g * 32..g * 32 + 32];
        let (sc1, m1) = scale_min_f32(2 * g, scales);
        let (sc2, m2) = scale_min_f32(2 * g + 1, scales);
        for l in 0..32 {
            chunk[l] = d * sc1 * (q[l] & 0xF) as f32 - dmin * m1;
            chunk[l + 32] = d * sc2 * (q[l] >> 4) as f32 - dmin * m2;
        }
    }
}

fn dequant_q5k(b: &[u8], y: &mut [f32]) {
    let scales: &[u8; 12] = b[4..16].try_into().expect("block length");
    dequant_q5k_parts(
        f16_at(b, 0),
        f16_at(b, 2),
        scales,
        &b[16..48],
        &b[48..176],
        y,
    );
}

/// Dequantizes one Q5_K block to its 256 values.
pub fn dequantize_q5k(b: &BlockQ5K, y: &mut [f32]) {
    dequant_q5k_parts(b.d.to_f32(), b.dmin.to_f32(), &b.scales, &b.qh, &b.qs, y);
}

fn dequant_q5k_parts(d: f32, dmin: f32, scales: &[u8; 12], qh: &[u8], qs: &[u8], y: &mut [f32]) {
    for (g, chunk) in y.chunks_exact_mut(64).enumerate() {
        let ql = &qs[g * 32..g * 32 + 32];
        let (u1, u2) = (1u8 << (2 * g), 2u8 << (2 * g));
        let (sc1, m1) = scale_min_f32(2 * g, scales);
        let (sc2, m2) = scale_min_f32(2 * g + 1, scales);
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            chunk[l] = d * sc1 * ((ql[l] & 0xF) + h1) as f32 - dmin * m1;
            chunk[l + 32] = d * sc2 * ((ql[l] >> 4) + h2) as f32 - dmin * m2;
        }
    }
}

fn dequant_q6k(b: &[u8], y: &mut [f32]) {
    let scales: [i8; 16] = std::array::from_fn(|i| b[192 + i] as i8);
    dequant_q6k_parts(f16_at(b, 208), &b[0..128], &b[128..192], &scales, y);
}

/// Dequantizes one Q6_K block to its 256 values.
pub fn dequantize_q6k(b: &BlockQ6K, y: &mut [f32]) {
    dequant_q6k_parts(b.d.to_f32(), &b.ql, &b.qh, &b.scales, y);
}

fn dequant_q6k_parts(d: f32, ql_all: &[u8], qh_all: &[u8], sc_all: &[i8; 16], y: &mut [f32]) {
    for n in 0..2 {
        let ql = &ql_all[n * 64..];
        let qh = &qh_all[n * 32..];
        let sc = &sc_all[n * 8..];
        let out = &mut y[n * 128..];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let s = |k: usize| sc[is + k] as f32;
            out[l] = d * s(0) * q1 as f32;
            out[l + 32] = d * s(2) * q2 as f32;
            out[l + 64] = d * s(4) * q3 as f32;
            out[l + 96] = d * s(6) * q4 as f32;
        }
    }
}

fn dequant_q2k(b: &[u8], y: &mut [f32]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    let mut is = 0;
    let mut yi = 0;
    for n in 0..2 {
        let q = &qs[n * 32..n * 32 + 32];
        for shift in [0u32, 2, 4, 6] {
            for half in 0..2 {
                let sc = scales[is];
                is += 1;
                let (dl, ml) = (d * (sc & 0xF) as f32, dmin * (sc >> 4) as f32);
                for l in 0..16 {
                    y[yi] = dl * ((q[l + 16 * half] >> shift) & 3) as f32 - ml;
                    yi += 1;
                }
            }
        }
    }
}

fn dequant_q3k(b: &[u8], y: &mut [f32]) {
    let hmask = &b[0..32];
    let qs = &b[32..96];
    let raw = &b[96..108];
    let d_all = f16_at(b, 108);
    // Unpack the sixteen 6-bit scales (ggml's kmask shuffle).
    let mut aux = [0u32; 4];
    for (i, a) in aux.iter_mut().take(3).enumerate() {
        *a = u32::from_le_bytes(raw[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    }
    let (km1, km2) = (0x0303_0303u32, 0x0f0f_0f0fu32);
    let tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & km2) | (((tmp >> 4) & km1) << 4);
    aux[3] = ((aux[1] >> 4) & km2) | (((tmp >> 6) & km1) << 4);
    aux[0] = (aux[0] & km2) | ((tmp & km1) << 4);
    aux[1] = (aux[1] & km2) | (((tmp >> 2) & km1) << 4);
    let scales: Vec<i8> = aux
        .iter()
        .flat_map(|a| a.to_le_bytes())
        .map(|v| v as i8)
        .collect();
    let mut m = 1u8;
    let mut is = 0;
    let mut yi = 0;
    for n in 0..2 {
        let q = &qs[n * 32..n * 32 + 32];
        for shift in [0u32, 2, 4, 6] {
            for half in 0..2 {
                let dl = d_all * (scales[is] as i32 - 32) as f32;
                is += 1;
                for l in 0..16 {
                    let idx = l + 16 * half;
                    let hi = if hmask[idx] & m != 0 { 0 } else { 4 };
                    y[yi] = dl * ((((q[idx] >> shift) & 3) as i32) - hi) as f32;
                    yi += 1;
                }
            }
            m <<= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The rewrite must leave every weight exactly as Q5_0 defines it, the extremes
    /// (0 and 31, i.e. −16 and 15) and both nibble halves included.
    #[test]
    fn q5_0_as_q8_0_keeps_every_weight() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let ts = GgmlType::Q5_0.type_size();
        let mut bytes: Vec<u8> = (0..64 * ts).map(|_| rng.gen()).collect();
        for b in bytes.chunks_exact_mut(ts) {
            b[..2].copy_from_slice(&f16::from_f32(rng.gen_range(-0.1..0.1)).to_le_bytes());
        }
        bytes[2..22].fill(0); // all values 0 → −16
        bytes[ts + 2..2 * ts].fill(0xFF); // all values 31 → 15
        let mut want = vec![0.0; 64 * QK];
        dequantize(GgmlType::Q5_0, &bytes, &mut want);
        let blocks = q5_0_as_q8_0(&bytes);
        assert_eq!(blocks[0].qs, [-16; QK]);
        assert_eq!(blocks[1].qs, [15; QK]);
        let got: Vec<f32> = blocks
            .iter()
            .flat_map(|b| b.qs.map(|q| q as f32 * b.d.to_f32()))
            .collect();
        assert_eq!(got, want);
    }
}
