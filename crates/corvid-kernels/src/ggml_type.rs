//! The tensor element types GGUF files use, with their block geometry.

use std::fmt;

/// A ggml tensor type as stored in a GGUF file (the numeric codes are ggml's).
///
/// Quantized types store values in blocks: `block_size` elements packed into
/// `type_size` bytes. Plain types are blocks of one element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// bfloat16.
    BF16,
    /// 4-bit, scale per 32 values, symmetric (offset 8).
    Q4_0,
    /// 4-bit, scale and minimum per 32 values.
    Q4_1,
    /// 5-bit, scale per 32 values.
    Q5_0,
    /// 5-bit, scale and minimum per 32 values.
    Q5_1,
    /// 8-bit, scale per 32 values.
    Q8_0,
    /// 8-bit with a pre-computed scaled sum, used for activations against Q4_1/Q5_1.
    Q8_1,
    /// k-quant: 2-bit super-blocks of 256.
    Q2K,
    /// k-quant: 3-bit super-blocks of 256.
    Q3K,
    /// k-quant: 4-bit super-blocks of 256 with 6-bit sub-block scales and minimums.
    Q4K,
    /// k-quant: 5-bit super-blocks of 256.
    Q5K,
    /// k-quant: 6-bit super-blocks of 256 with 8-bit sub-block scales.
    Q6K,
    /// k-quant: 8-bit super-blocks of 256 (activations).
    Q8K,
}

impl GgmlType {
    /// Maps ggml's numeric type code to the type, or `None` for types corvid cannot read.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            6 => Self::Q5_0,
            7 => Self::Q5_1,
            8 => Self::Q8_0,
            9 => Self::Q8_1,
            10 => Self::Q2K,
            11 => Self::Q3K,
            12 => Self::Q4K,
            13 => Self::Q5K,
            14 => Self::Q6K,
            15 => Self::Q8K,
            30 => Self::BF16,
            _ => return None,
        })
    }

    /// ggml's numeric code for this type (what a GGUF tensor info stores).
    pub fn code(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q8_1 => 9,
            Self::Q2K => 10,
            Self::Q3K => 11,
            Self::Q4K => 12,
            Self::Q5K => 13,
            Self::Q6K => 14,
            Self::Q8K => 15,
            Self::BF16 => 30,
        }
    }

    /// Number of elements in one block.
    pub fn block_size(self) -> usize {
        match self {
            Self::F32 | Self::F16 | Self::BF16 => 1,
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 | Self::Q8_0 | Self::Q8_1 => 32,
            Self::Q2K | Self::Q3K | Self::Q4K | Self::Q5K | Self::Q6K | Self::Q8K => 256,
        }
    }

    /// Number of bytes one block occupies.
    pub fn type_size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q5_1 => 24,
            Self::Q8_0 => 34,
            Self::Q8_1 => 36,
            Self::Q2K => 84,
            Self::Q3K => 110,
            Self::Q4K => 144,
            Self::Q5K => 176,
            Self::Q6K => 210,
            Self::Q8K => 292,
        }
    }

    /// Bytes needed for `n` elements, or `None` if `n` is not a whole number of blocks
    /// or the size overflows.
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_size()) {
            return None;
        }
        (n / self.block_size()).checked_mul(self.type_size())
    }

    /// True for types stored in quantized blocks.
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q5_0 => "Q5_0",
            Self::Q5_1 => "Q5_1",
            Self::Q8_0 => "Q8_0",
            Self::Q8_1 => "Q8_1",
            Self::Q2K => "Q2_K",
            Self::Q3K => "Q3_K",
            Self::Q4K => "Q4_K",
            Self::Q5K => "Q5_K",
            Self::Q6K => "Q6_K",
            Self::Q8K => "Q8_K",
        };
        f.write_str(name)
    }
}
