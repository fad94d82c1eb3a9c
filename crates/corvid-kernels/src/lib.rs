//! CPU hot paths for corvid: quantized block formats and their matmuls, norms, RoPE,
//! softmax and paged attention. Pure compute on slices; no model or engine knowledge.

mod ggml_type;

pub use ggml_type::GgmlType;
