//! Weight loading: tensor sources (GGUF, safetensors, GPTQ/AWQ-packed safetensors) and
//! conversion to compute formats.

pub mod convert;
pub mod gptq_awq;
pub mod quant_config;
pub mod source;

pub use convert::LoadQuantization;
pub use quant_config::CheckpointQuant;
pub use source::{RawTensor, SafetensorsDir, TensorSource};
