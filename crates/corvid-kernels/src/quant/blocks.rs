//! Block layouts of the quantized formats corvid computes with directly, bit-for-bit as
//! ggml stores them, so GGUF data can be copied in without conversion.

use half::f16;

/// Elements per block for the 32-wide formats.
pub const QK: usize = 32;

/// Q4_0: `x = d * (q - 8)`, q a 4-bit nibble; element j in the low nibble of `qs[j]`,
/// element j+16 in the high nibble.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: f16,
    /// Packed nibbles.
    pub qs: [u8; 16],
}

/// Q4_1: `x = d * q + m`, nibbles packed as in [`BlockQ4_0`].
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct BlockQ4_1 {
    /// Scale.
    pub d: f16,
    /// Minimum.
    pub m: f16,
    /// Packed nibbles.
    pub qs: [u8; 16],
}

/// Q8_0: `x = d * q`; used for weights and for activations against Q4_0/Q8_0 weights.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct BlockQ8_0 {
    /// Scale.
    pub d: f16,
    /// Quantized values.
    pub qs: [i8; 32],
}

/// Q8_1: Q8_0 plus `s = d * sum(qs)`, which lets a Q4_1 dot product add the minimum's
/// contribution without a second pass. Activations only.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct BlockQ8_1 {
    /// Scale.
    pub d: f16,
    /// `d * sum(qs)`.
    pub s: f16,
    /// Quantized values.
    pub qs: [i8; 32],
}

/// A block type that can be copied straight out of GGUF bytes.
pub trait RawBlock: Copy + Default {
    /// Size in bytes as stored.
    const BYTES: usize;
    /// Reads one block from exactly `BYTES` little-endian bytes.
    fn read(bytes: &[u8]) -> Self;
}

fn f16_at(b: &[u8], i: usize) -> f16 {
    f16::from_le_bytes([b[i], b[i + 1]])
}

impl RawBlock for BlockQ4_0 {
    const BYTES: usize = 18;
    fn read(b: &[u8]) -> Self {
        Self {
            d: f16_at(b, 0),
            qs: b[2..18].try_into().expect("block length"),
        }
    }
}

impl RawBlock for BlockQ4_1 {
    const BYTES: usize = 20;
    fn read(b: &[u8]) -> Self {
        Self {
            d: f16_at(b, 0),
            m: f16_at(b, 2),
            qs: b[4..20].try_into().expect("block length"),
        }
    }
}

impl RawBlock for BlockQ8_0 {
    const BYTES: usize = 34;
    fn read(b: &[u8]) -> Self {
        let mut qs = [0i8; 32];
        for (q, &v) in qs.iter_mut().zip(&b[2..34]) {
            *q = v as i8;
        }
        Self {
            d: f16_at(b, 0),
            qs,
        }
    }
}

/// Copies a run of blocks out of raw bytes (length must be a multiple of `B::BYTES`).
pub fn read_blocks<B: RawBlock>(bytes: &[u8]) -> Vec<B> {
    bytes.chunks_exact(B::BYTES).map(B::read).collect()
}
