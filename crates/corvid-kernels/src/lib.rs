//! CPU hot paths for corvid: quantized block formats and their matmuls, norms, RoPE,
//! softmax and paged attention. Pure compute on slices; no model or engine knowledge.

pub mod attention;
pub mod dot;
mod exact_exp;
mod ggml_type;
pub mod isa;
pub mod matmul;
pub mod ops;
pub mod packed;
pub mod peak;
pub mod quant;
mod slice;
mod vexp;

pub use ggml_type::GgmlType;
pub use matmul::{QMatrix, WeightData};
