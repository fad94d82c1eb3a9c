//! corvid's model runtime: reads weights (GGUF, safetensors), builds architectures,
//! tokenizes and renders chat templates. It knows nothing of scheduling or HTTP.

pub mod chat_template;
pub mod error;
pub mod gguf;
pub mod tokenizer;

pub use error::{ModelError, Result};
