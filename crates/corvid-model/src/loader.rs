//! Opening a model from a path: a `.gguf` file or a Hugging Face folder.

use crate::arch::Llama;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::weights::convert::to_f32;
use crate::weights::{LoadQuantization, SafetensorsDir, TensorSource};
use std::path::Path;

/// How to load weights.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Quantize unquantized matrices at load time.
    pub quantization: Option<LoadQuantization>,
    /// Shards the heads and FFN columns are split into, each computed by its own pinned
    /// threads (vLLM's `tensor_parallel_size`; 1 = no tensor parallelism, 0 is refused).
    pub tensor_parallel_size: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            quantization: None,
            tensor_parallel_size: 1,
        }
    }
}

/// Loads the model weights at `path` (a GGUF file or an HF model folder).
pub fn load_model(path: &Path, opts: &LoadOptions) -> Result<Llama> {
    if path.is_dir() {
        let config = ModelConfig::from_hf_config(&path.join("config.json"))?;
        let src = SafetensorsDir::open(path)?;
        Llama::load(
            config,
            &src,
            opts.quantization,
            None,
            opts.tensor_parallel_size,
        )
    } else if path.exists() {
        let file = GgufFile::open(path)?;
        let config = ModelConfig::from_gguf(&file)?;
        let rope_freqs = match TensorSource::get(&file, "rope_freqs.weight")? {
            Some(t) => Some(to_f32(&t)?),
            None => None,
        };
        Llama::load(
            config,
            &file,
            opts.quantization,
            rope_freqs,
            opts.tensor_parallel_size,
        )
    } else {
        Err(ModelError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such model file or folder"),
        ))
    }
}

/// Loads the tokenizer of the model at `path`: embedded in a GGUF file, or the
/// `tokenizer.json` of an HF folder.
pub fn load_tokenizer(path: &Path) -> Result<crate::tokenizer::Tokenizer> {
    if path.is_dir() {
        crate::tokenizer::Tokenizer::from_hf_dir(path)
    } else {
        crate::tokenizer::Tokenizer::from_gguf(&GgufFile::open(path)?)
    }
}
