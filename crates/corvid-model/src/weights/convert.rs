//! Turning raw tensors into compute-ready weights: vectors (norms, biases) as f32 and
//! matrices in a format the matmul kernels multiply directly.
//!
//! Q4_0, Q4_1, Q8_0, Q4_K, Q5_K and Q6_K are kept as stored, and Q5_0 is rewritten exactly
//! as Q8_0 (same scale, values −16..=15). Plain F32/F16/BF16 matrices become F32, or are
//! quantized when `--quantization` asks. Other quantized types (Q5_1, Q2_K, Q3_K)
//! are dequantized and re-quantized to Q8_0 at load, which keeps them on the fast integer
//! path at the cost of memory and one more rounding; this is documented behaviour, not
//! silent. (A Q4_K_M file thus runs all its matrices exactly as stored: its Q4_K and Q6_K
//! natively, and the Q5_0 that llama.cpp's quantizer picks for rows not a multiple of 256
//! long, as Gemma 3 270M's are, as exact Q8_0.)

use super::source::RawTensor;
use crate::error::Result;
use corvid_kernels::quant::quantize::{
    quantize_weight_q4_0, quantize_weight_q4_1, quantize_weight_q4_k, quantize_weight_q5_k,
    quantize_weight_q8_0,
};
use corvid_kernels::quant::{dequantize, q5_0_as_q8_0, read_blocks, QK, QK_K};
use corvid_kernels::{GgmlType, QMatrix, WeightData};
use std::str::FromStr;

/// Load-time quantization of unquantized weights (`--quantization`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadQuantization {
    /// 8-bit blocks of 32.
    Q8_0,
    /// 4-bit symmetric blocks of 32.
    Q4_0,
    /// 4-bit blocks of 32 with minimum.
    Q4_1,
    /// 4-bit k-quant super-blocks of 256 (ggml's reference Q4_K quantizer). Matrices
    /// whose rows are not a multiple of 256 long become Q8_0 instead, with a warning,
    /// the way llama.cpp's quantizer falls back to another type for them.
    Q4K,
    /// 5-bit k-quant super-blocks of 256 (ggml's reference Q5_K quantizer), with
    /// [`LoadQuantization::Q4K`]'s Q8_0 fallback for other row lengths.
    Q5K,
}

impl FromStr for LoadQuantization {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "q8_0" => Ok(Self::Q8_0),
            "q4_0" => Ok(Self::Q4_0),
            "q4_1" => Ok(Self::Q4_1),
            "q4_k" => Ok(Self::Q4K),
            "q5_k" => Ok(Self::Q5K),
            other => Err(format!(
                "unknown quantization `{other}` (expected q8_0, q4_0, q4_1, q4_k or q5_k)"
            )),
        }
    }
}

/// The tensor as f32 values (any type).
pub fn to_f32(t: &RawTensor<'_>) -> Result<Vec<f32>> {
    let n: usize = t.dims.iter().product();
    if t.ty.bytes_for(n) != Some(t.data.len()) {
        return Err(t.error(format!(
            "{} bytes do not hold {n} {} values",
            t.data.len(),
            t.ty
        )));
    }
    let mut out = vec![0.0; n];
    dequantize(t.ty, t.data, &mut out);
    Ok(out)
}

/// A 1-D tensor of exactly `len` values as f32.
pub fn to_vector(t: &RawTensor<'_>, len: usize) -> Result<Vec<f32>> {
    if t.dims.iter().product::<usize>() != len {
        return Err(t.error(format!("expected {len} values, found shape {:?}", t.dims)));
    }
    to_f32(t)
}

/// A `rows × cols` matrix in compute format.
pub fn to_matrix(
    t: &RawTensor<'_>,
    rows: usize,
    cols: usize,
    quant: Option<LoadQuantization>,
) -> Result<QMatrix> {
    if t.dims.len() != 2 || t.dims[0] != cols || t.dims[1] != rows {
        return Err(t.error(format!(
            "expected shape [{cols}, {rows}], found {:?}",
            t.dims
        )));
    }
    if t.ty.bytes_for(rows * cols) != Some(t.data.len()) {
        return Err(t.error(format!(
            "{} bytes do not hold a {rows}x{cols} {} matrix",
            t.data.len(),
            t.ty
        )));
    }
    let data = match (t.ty, quant) {
        (GgmlType::Q4_0, _) => WeightData::Q4_0(read_blocks(t.data)),
        (GgmlType::Q4_1, _) => WeightData::Q4_1(read_blocks(t.data)),
        (GgmlType::Q8_0, _) => WeightData::Q8_0(read_blocks(t.data)),
        (GgmlType::Q5_0, _) => WeightData::Q8_0(q5_0_as_q8_0(t.data)),
        (GgmlType::Q4K, _) => WeightData::Q4K(read_blocks(t.data)),
        (GgmlType::Q5K, _) if cols.is_multiple_of(QK_K) => WeightData::Q5K(read_blocks(t.data)),
        (GgmlType::Q6K, _) if cols.is_multiple_of(QK_K) => WeightData::Q6K(read_blocks(t.data)),
        (GgmlType::F32 | GgmlType::F16 | GgmlType::BF16, None) => WeightData::F32(to_f32(t)?),
        (ty, q) => {
            if !cols.is_multiple_of(QK) {
                return Err(t.error(format!(
                    "row length {cols} cannot be quantized in blocks of {QK}"
                )));
            }
            let x = to_f32(t)?;
            let q = if ty.is_quantized() {
                LoadQuantization::Q8_0
            } else {
                q.unwrap_or(LoadQuantization::Q8_0)
            };
            match q {
                LoadQuantization::Q4K if cols.is_multiple_of(QK_K) => {
                    WeightData::Q4K(quantize_weight_q4_k(&x))
                }
                LoadQuantization::Q5K if cols.is_multiple_of(QK_K) => {
                    WeightData::Q5K(quantize_weight_q5_k(&x))
                }
                LoadQuantization::Q4K | LoadQuantization::Q5K => {
                    tracing::warn!(
                        "{}: row length {cols} is not a multiple of {QK_K}; quantized to Q8_0 instead of {q:?}",
                        t.name
                    );
                    WeightData::Q8_0(quantize_weight_q8_0(&x))
                }
                LoadQuantization::Q8_0 => WeightData::Q8_0(quantize_weight_q8_0(&x)),
                LoadQuantization::Q4_0 => WeightData::Q4_0(quantize_weight_q4_0(&x)),
                LoadQuantization::Q4_1 => WeightData::Q4_1(quantize_weight_q4_1(&x)),
            }
        }
    };
    Ok(QMatrix { rows, cols, data }.packed_for_cpu())
}
