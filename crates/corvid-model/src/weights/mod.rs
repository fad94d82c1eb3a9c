//! Weight loading: tensor sources (GGUF, safetensors) and conversion to compute formats.

pub mod convert;
pub mod source;

pub use convert::LoadQuantization;
pub use source::{RawTensor, SafetensorsDir, TensorSource};
