//! Block layouts of the quantized formats corvid computes with directly, bit-for-bit as
//! ggml stores them, so GGUF data can be copied in without conversion.

use half::f16;

/// Elements per block for the 32-wide formats.
pub const QK: usize = 32;

/// Elements per k-quant super-block (Q4_K, Q6_K, Q8_K).
pub const QK_K: usize = 256;

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

/// Q4_K (ggml's `block_q4_K`): 256 values in eight sub-blocks of 32, each with a 6-bit
/// scale `sc` and minimum `m`: `x = d * sc * q - dmin * m`, q a 4-bit nibble. Kept as
/// stored so Q4_K GGUF weights are multiplied without requantization.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct BlockQ4K {
    /// Super-block scale of the 6-bit sub-block scales.
    pub d: f16,
    /// Super-block scale of the 6-bit sub-block minimums.
    pub dmin: f16,
    /// Eight 6-bit scales and eight 6-bit minimums, packed as [`scale_min_k4`] reads them.
    pub scales: [u8; 12],
    /// Nibbles: byte `32g + l` holds value `64g + l` (low) and `64g + 32 + l` (high).
    pub qs: [u8; 128],
}

impl Default for BlockQ4K {
    fn default() -> Self {
        Self {
            d: f16::ZERO,
            dmin: f16::ZERO,
            scales: [0; 12],
            qs: [0; 128],
        }
    }
}

/// Q5_K (ggml's `block_q5_K`): Q4_K with a fifth bit per value, `x = d * sc * q - dmin *
/// m` with `q` in 0..=31. Kept as stored so Q5_K GGUF weights (Q5_K_M / Q5_K_S files) are
/// multiplied without requantization.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct BlockQ5K {
    /// Super-block scale of the 6-bit sub-block scales.
    pub d: f16,
    /// Super-block scale of the 6-bit sub-block minimums.
    pub dmin: f16,
    /// Eight 6-bit scales and eight 6-bit minimums, packed as [`scale_min_k4`] reads them.
    pub scales: [u8; 12],
    /// Fifth bits: bit `i` of byte `l` belongs to value `32i + l` (sub-block `i`).
    pub qh: [u8; 32],
    /// Low four bits, laid out as [`BlockQ4K::qs`].
    pub qs: [u8; 128],
}

impl Default for BlockQ5K {
    fn default() -> Self {
        Self {
            d: f16::ZERO,
            dmin: f16::ZERO,
            scales: [0; 12],
            qh: [0; 32],
            qs: [0; 128],
        }
    }
}

/// Q6_K (ggml's `block_q6_K`): 256 values in sixteen sub-blocks of 16, each with a
/// signed 8-bit scale `sc`: `x = d * sc * (q - 32)`, q a 6-bit value split into its low
/// four bits (`ql`) and high two (`qh`). Kept as stored so Q6_K GGUF weights (the
/// output and some FFN matrices of Q4_K_M files) are multiplied without requantization.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct BlockQ6K {
    /// Low four bits: in half `n`, byte `64n + l` holds values `128n + l` (low nibble)
    /// and `128n + 64 + l` (high nibble), `l < 64`.
    pub ql: [u8; 128],
    /// High two bits: in half `n`, byte `32n + l` holds those of values `128n + l + 32m`
    /// in bits `2m, 2m + 1` (`m < 4`).
    pub qh: [u8; 64],
    /// Sub-block scales (signed).
    pub scales: [i8; 16],
    /// Super-block scale.
    pub d: f16,
}

impl Default for BlockQ6K {
    fn default() -> Self {
        Self {
            ql: [0; 128],
            qh: [0; 64],
            scales: [0; 16],
            d: f16::ZERO,
        }
    }
}

/// Q8_K (ggml's `block_q8_K`): 256 int8 values with an f32 scale and the sums of each
/// group of 16, which let a Q4_K dot product subtract the minimums without a second
/// pass. Activations only.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct BlockQ8K {
    /// Scale.
    pub d: f32,
    /// Quantized values.
    pub qs: [i8; 256],
    /// Sum of `qs[16i .. 16i + 16]`.
    pub bsums: [i16; 16],
}

impl Default for BlockQ8K {
    fn default() -> Self {
        Self {
            d: 0.0,
            qs: [0; 256],
            bsums: [0; 16],
        }
    }
}

/// The 6-bit scale and minimum of sub-block `j` (0..8) of a Q4_K/Q5_K super-block
/// (ggml's `get_scale_min_k4`), from its 12 packed bytes.
#[inline]
pub fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The inverse of [`scale_min_k4`]: eight 6-bit scales and minimums packed into the
/// 12 bytes of a Q4_K/Q5_K super-block.
pub fn pack_scale_min_k4(sc: &[u8; 8], mn: &[u8; 8]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for j in 0..8 {
        let (ls, lm) = (sc[j], mn[j]);
        if j < 4 {
            q[j] |= ls;
            q[j + 4] |= lm;
        } else {
            q[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            q[j - 4] |= (ls >> 4) << 6;
            q[j] |= (lm >> 4) << 6;
        }
    }
    q
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

impl RawBlock for BlockQ4K {
    const BYTES: usize = 144;
    fn read(b: &[u8]) -> Self {
        Self {
            d: f16_at(b, 0),
            dmin: f16_at(b, 2),
            scales: b[4..16].try_into().expect("block length"),
            qs: b[16..144].try_into().expect("block length"),
        }
    }
}

impl RawBlock for BlockQ5K {
    const BYTES: usize = 176;
    fn read(b: &[u8]) -> Self {
        Self {
            d: f16_at(b, 0),
            dmin: f16_at(b, 2),
            scales: b[4..16].try_into().expect("block length"),
            qh: b[16..48].try_into().expect("block length"),
            qs: b[48..176].try_into().expect("block length"),
        }
    }
}

impl RawBlock for BlockQ6K {
    const BYTES: usize = 210;
    fn read(b: &[u8]) -> Self {
        Self {
            ql: b[0..128].try_into().expect("block length"),
            qh: b[128..192].try_into().expect("block length"),
            scales: std::array::from_fn(|i| b[192 + i] as i8),
            d: f16_at(b, 208),
        }
    }
}

/// Copies a run of blocks out of raw bytes (length must be a multiple of `B::BYTES`).
pub fn read_blocks<B: RawBlock>(bytes: &[u8]) -> Vec<B> {
    bytes.chunks_exact(B::BYTES).map(B::read).collect()
}
