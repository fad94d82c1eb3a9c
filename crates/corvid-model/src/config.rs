//! Architecture hyper-parameters, read from GGUF metadata or an HF `config.json`.

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use corvid_kernels::ops::RopeStyle;
use serde::Deserialize;
use std::path::Path;

/// The architectures corvid implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// LLaMA 2/3, Mistral, SmolLM, TinyLlama.
    Llama,
    /// Qwen2 / Qwen2.5: QKV bias.
    Qwen2,
    /// Qwen3: per-head RMSNorm on Q and K, no bias.
    Qwen3,
    /// Gemma 3: Qwen3's Q/K norms plus post-attention and post-FFN norms, GELU-tanh
    /// gated FFN, embeddings scaled by √hidden, and sliding-window attention on most
    /// layers ([`SlidingWindow`]). GGUF only: llama.cpp's converter folds Gemma's `1 + w`
    /// RMSNorm weights into the stored ones, which an HF folder does not.
    Gemma3,
    /// GLM-4-0414 (`glm4`, `Glm4ForCausalLM`): Qwen2's QKV bias, Gemma 3's norms after
    /// attention and after the FFN, RoPE on the first half of each head only (adjacent
    /// pairs, [`ModelConfig::rope_dims`]), and the FFN's gate and up projections stored as
    /// one matrix (`ffn_up` / `mlp.gate_up_proj`, gate rows first).
    Glm4,
}

impl Arch {
    fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "llama" | "mistral" | "LlamaForCausalLM" | "MistralForCausalLM" => Self::Llama,
            "qwen2" | "Qwen2ForCausalLM" => Self::Qwen2,
            "qwen3" | "Qwen3ForCausalLM" => Self::Qwen3,
            "gemma3" => Self::Gemma3,
            "glm4" | "Glm4ForCausalLM" => Self::Glm4,
            other => return Err(ModelError::Unsupported(format!("architecture `{other}`"))),
        })
    }
}

/// LLaMA 3 RoPE frequency scaling (`rope_scaling.rope_type == "llama3"`).
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct Llama3Scaling {
    /// Overall scale factor.
    pub factor: f32,
    /// Wavelength threshold factor below which frequencies are scaled fully.
    pub low_freq_factor: f32,
    /// Wavelength threshold factor above which frequencies are kept.
    pub high_freq_factor: f32,
    /// Context length the base model was trained at.
    pub original_max_position_embeddings: usize,
}

impl Llama3Scaling {
    /// The per-pair frequency divisors llama.cpp stores as `rope_freqs.weight`.
    pub fn freq_factors(&self, dims: usize, theta: f32) -> Vec<f32> {
        let low_wavelen = self.original_max_position_embeddings as f32 / self.low_freq_factor;
        let high_wavelen = self.original_max_position_embeddings as f32 / self.high_freq_factor;
        (0..dims / 2)
            .map(|i| {
                let freq = 1.0 / theta.powf(2.0 * i as f32 / dims as f32);
                let wavelen = 2.0 * std::f32::consts::PI / freq;
                if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    self.factor
                } else {
                    let smooth = (self.original_max_position_embeddings as f32 / wavelen
                        - self.low_freq_factor)
                        / (self.high_freq_factor - self.low_freq_factor);
                    1.0 / ((1.0 - smooth) / self.factor + smooth)
                }
            })
            .collect()
    }
}

/// Local attention on most layers (Gemma 3): a token attends only to the `size` most
/// recent positions (itself included), except on every `global_every`-th layer, which
/// attends to the whole context. The local layers use their own RoPE base.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlidingWindow {
    /// Positions a local layer attends to.
    pub size: usize,
    /// Layer `i` is global when `(i + 1) % global_every == 0` (Gemma 3: 6, five local
    /// layers to one global).
    pub global_every: usize,
    /// RoPE base of the local layers (the global ones use [`ModelConfig::rope_theta`]).
    pub rope_theta: f32,
}

/// Everything the forward pass needs to know about a model's shape.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// Architecture.
    pub arch: Arch,
    /// Model width.
    pub hidden_size: usize,
    /// SwiGLU inner width.
    pub intermediate_size: usize,
    /// Transformer blocks.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (GQA when fewer than query heads).
    pub num_kv_heads: usize,
    /// Dimensions per head.
    pub head_dim: usize,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Context length the model was trained for.
    pub max_position_embeddings: usize,
    /// RoPE base.
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
    /// Leading dimensions of each head that RoPE rotates; the rest pass through unrotated
    /// (GLM-4 rotates half of each head, every other model all of it).
    pub rope_dims: usize,
    /// RoPE pairing convention of the stored Q/K weights.
    pub rope_style: RopeStyle,
    /// LLaMA 3 RoPE scaling, when the model uses it.
    pub rope_scaling: Option<Llama3Scaling>,
    /// Local attention layers, when the model has them.
    pub sliding_window: Option<SlidingWindow>,
    /// `cap · tanh(logit / cap)` on the output logits, when the model asks for it
    /// (`<arch>.final_logit_softcapping`; Gemma 2 has it, the Gemma 3 GGUFs do not).
    pub final_logit_softcap: Option<f32>,
}

impl ModelConfig {
    /// A small Gemma-3-shaped config (`num_layers` layers, local layers with `window`)
    /// for unit tests of what depends only on the shape.
    #[cfg(test)]
    pub(crate) fn for_tests(num_layers: usize, window: Option<usize>) -> Self {
        Self {
            arch: Arch::Gemma3,
            hidden_size: 8,
            intermediate_size: 8,
            num_layers,
            num_heads: 1,
            num_kv_heads: 1,
            head_dim: 2,
            vocab_size: 8,
            max_position_embeddings: 4096,
            rope_theta: 1e6,
            rms_norm_eps: 1e-6,
            rope_dims: 2,
            rope_style: RopeStyle::Half,
            rope_scaling: None,
            sliding_window: window.map(|size| SlidingWindow {
                size,
                global_every: 6,
                rope_theta: 1e4,
            }),
            final_logit_softcap: None,
        }
    }

    /// Reads the config from GGUF metadata (`<arch>.block_count`, ...).
    pub fn from_gguf(f: &GgufFile) -> Result<Self> {
        let arch_name = f.get_str("general.architecture")?.to_string();
        let arch = Arch::from_name(&arch_name)?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let num_heads = f.get_u64(&key("attention.head_count"))? as usize;
        let hidden_size = f.get_u64(&key("embedding_length"))? as usize;
        let head_dim = match f.get(&key("attention.key_length")).and_then(|v| v.as_u64()) {
            Some(v) => v as usize,
            None => hidden_size / num_heads.max(1),
        };
        let vocab_size = match f.get(&key("vocab_size")).and_then(|v| v.as_u64()) {
            Some(v) => v as usize,
            None => f.tensor("token_embd.weight")?.dims[1],
        };
        let f64_key = |k: &str| f.get(&key(k)).and_then(|v| v.as_f64());
        let u64_key = |k: &str| f.get(&key(k)).and_then(|v| v.as_u64());
        let sliding_window = match arch {
            // llama.cpp's defaults for Gemma 3, which its GGUFs do not store: five local
            // layers to one global, local RoPE base 10,000.
            Arch::Gemma3 => Some(SlidingWindow {
                size: f.get_u64(&key("attention.sliding_window"))? as usize,
                global_every: u64_key("attention.sliding_window_pattern").unwrap_or(6) as usize,
                rope_theta: f64_key("rope.freq_base_swa").unwrap_or(10000.0) as f32,
            }),
            _ => None,
        };
        let cfg = Self {
            arch,
            hidden_size,
            intermediate_size: f.get_u64(&key("feed_forward_length"))? as usize,
            num_layers: f.get_u64(&key("block_count"))? as usize,
            num_heads,
            num_kv_heads: f
                .get(&key("attention.head_count_kv"))
                .and_then(|v| v.as_u64())
                .map_or(num_heads, |v| v as usize),
            head_dim,
            vocab_size,
            max_position_embeddings: f.get_u64(&key("context_length"))? as usize,
            rope_theta: f
                .get(&key("rope.freq_base"))
                .and_then(|v| v.as_f64())
                .unwrap_or(10000.0) as f32,
            rms_norm_eps: f.get_f64(&key("attention.layer_norm_rms_epsilon"))? as f32,
            rope_dims: u64_key("rope.dimension_count").map_or(head_dim, |v| v as usize),
            // llama.cpp permutes LLaMA Q/K for adjacent-pair RoPE; GLM-4's are adjacent
            // pairs already; Qwen and Gemma keep NEOX order.
            rope_style: match arch {
                Arch::Llama | Arch::Glm4 => RopeStyle::Adjacent,
                Arch::Qwen2 | Arch::Qwen3 | Arch::Gemma3 => RopeStyle::Half,
            },
            rope_scaling: None,
            sliding_window,
            final_logit_softcap: f64_key("final_logit_softcapping").map(|v| v as f32),
        };
        cfg.validate(f.path())
    }

    /// Reads an HF `config.json`.
    pub fn from_hf_config(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let hf: HfConfig = serde_json::from_str(&text).map_err(|e| ModelError::Format {
            file: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        let arch = Arch::from_name(hf.architectures.first().map_or("", String::as_str))?;
        let num_kv_heads = hf.num_key_value_heads.unwrap_or(hf.num_attention_heads);
        // transformers 5 writes the RoPE settings as one `rope_parameters` object (base,
        // type, partial factor, the scaling's fields); older configs keep them at the top.
        let rope = hf.rope_parameters.as_ref().filter(|v| v.is_object());
        let rope_f32 = |k: &str| rope.and_then(|v| v[k].as_f64()).map(|v| v as f32);
        let rope_theta = rope_f32("rope_theta").or(hf.rope_theta).unwrap_or(10000.0);
        let partial_rotary_factor = rope_f32("partial_rotary_factor")
            .or(hf.partial_rotary_factor)
            .unwrap_or(1.0);
        let scaling = match hf.rope_scaling {
            Some(serde_json::Value::Null) | None => rope
                .filter(|v| v["rope_type"].as_str().is_some_and(|t| t != "default"))
                .cloned(),
            some => some,
        };
        let rope_scaling = match scaling {
            Some(v)
                if v.get("rope_type")
                    .or(v.get("type"))
                    .and_then(|t| t.as_str())
                    == Some("llama3") =>
            {
                Some(serde_json::from_value(v).map_err(|e| ModelError::Format {
                    file: path.to_path_buf(),
                    msg: format!("rope_scaling: {e}"),
                })?)
            }
            None => None,
            Some(other) => {
                return Err(ModelError::Unsupported(format!("rope_scaling {other}")));
            }
        };
        let head_dim = hf
            .head_dim
            .unwrap_or(hf.hidden_size / hf.num_attention_heads.max(1));
        let cfg = Self {
            arch,
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_layers: hf.num_hidden_layers,
            num_heads: hf.num_attention_heads,
            num_kv_heads,
            head_dim,
            vocab_size: hf.vocab_size,
            max_position_embeddings: hf.max_position_embeddings,
            rope_theta,
            rms_norm_eps: hf.rms_norm_eps,
            rope_dims: (head_dim as f32 * partial_rotary_factor) as usize,
            // HF LLaMA and Qwen rotate halves; GLM-4 rotates interleaved pairs.
            rope_style: match arch {
                Arch::Glm4 => RopeStyle::Adjacent,
                _ => RopeStyle::Half,
            },
            rope_scaling,
            sliding_window: None,
            final_logit_softcap: None,
        };
        cfg.validate(path)
    }

    fn validate(self, file: &Path) -> Result<Self> {
        let bad = |msg: String| ModelError::Format {
            file: file.to_path_buf(),
            msg,
        };
        if self.num_heads == 0
            || self.num_kv_heads == 0
            || !self.num_heads.is_multiple_of(self.num_kv_heads)
        {
            return Err(bad(format!(
                "{} heads cannot be grouped over {} KV heads",
                self.num_heads, self.num_kv_heads
            )));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) || self.head_dim > 512 {
            return Err(bad(format!("unsupported head_dim {}", self.head_dim)));
        }
        if self.hidden_size == 0 || self.num_layers == 0 || self.vocab_size == 0 {
            return Err(bad("zero-sized model".into()));
        }
        if self.rope_dims == 0
            || !self.rope_dims.is_multiple_of(2)
            || self.rope_dims > self.head_dim
        {
            return Err(bad(format!(
                "RoPE over {} of a head's {} dimensions",
                self.rope_dims, self.head_dim
            )));
        }
        if let Some(w) = self.sliding_window {
            if w.size == 0 || w.global_every == 0 {
                return Err(bad(format!(
                    "sliding window of {} positions with every {}-th layer global",
                    w.size, w.global_every
                )));
            }
        }
        Ok(self)
    }

    /// The positions layer `layer` attends to (`None`: the whole context).
    pub fn layer_window(&self, layer: usize) -> Option<usize> {
        self.sliding_window
            .filter(|w| !(layer + 1).is_multiple_of(w.global_every))
            .map(|w| w.size)
    }

    /// Query width (`num_heads * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    /// Key/value width (`num_kv_heads * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }
}

#[derive(Deserialize)]
struct HfConfig {
    #[serde(default)]
    architectures: Vec<String>,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: usize,
    #[serde(default = "default_max_pos")]
    max_position_embeddings: usize,
    rope_theta: Option<f32>,
    #[serde(default = "default_eps")]
    rms_norm_eps: f32,
    rope_scaling: Option<serde_json::Value>,
    partial_rotary_factor: Option<f32>,
    rope_parameters: Option<serde_json::Value>,
}

fn default_max_pos() -> usize {
    2048
}

fn default_eps() -> f32 {
    1e-6
}
