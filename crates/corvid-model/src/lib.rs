//! corvid's model runtime: reads weights (GGUF, safetensors), builds architectures,
//! tokenizes and renders chat templates. It knows nothing of scheduling or HTTP.

pub mod error;
pub mod gguf;

pub use error::{ModelError, Result};
