//! corvid's model runtime: reads weights (GGUF, safetensors plain or packed by GPTQ/AWQ),
//! builds architectures, tokenizes and renders chat templates. It knows nothing of
//! scheduling or HTTP.

pub mod arch;
pub mod chat_template;
pub mod config;
pub mod default_model;
pub mod error;
pub mod gguf;
pub mod kv_cache;
pub mod loader;
pub mod model;
pub mod tokenizer;
pub mod weights;

pub use config::ModelConfig;
pub use error::{ModelError, Result};
pub use kv_cache::{KvCache, KvDtype, KvGroups};
pub use loader::{load_model, load_tokenizer, LoadOptions};
pub use model::{CausalLm, Logits, SeqInput};
