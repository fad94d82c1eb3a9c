//! The vocabulary embedded in a GGUF file (`tokenizer.ggml.*`): token texts, types and
//! scores, the special token ids, and the end-of-generation set as llama.cpp builds it.

use std::collections::HashMap;

use crate::gguf::{GgufFile, MetaValue};
use crate::{ModelError, Result};

/// A token's type (`tokenizer.ggml.token_type`, llama.cpp's `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Ordinary text.
    Normal,
    /// The unknown token (`<unk>`).
    Unknown,
    /// Control tokens (`<s>`, `<|im_start|>`): matched as specials only with `parse_special`.
    Control,
    /// Added tokens that are always matched in text before BPE and decode verbatim.
    UserDefined,
    /// Reserved tokens; they decode to nothing.
    Unused,
    /// Byte-fallback tokens `<0xNN>`.
    Byte,
    /// Anything else; decodes to nothing.
    Undefined,
}

impl TokenKind {
    fn from_gguf(t: i64) -> Self {
        match t {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Undefined,
        }
    }
}

/// Token texts that end generation (llama.cpp's EOG heuristic); they are forced to control.
pub const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
];

/// A GGUF vocabulary.
#[derive(Debug)]
pub struct Vocab {
    /// Token texts as stored (byte-level or `▁`-escaped).
    pub tokens: Vec<String>,
    /// Token types.
    pub kinds: Vec<TokenKind>,
    /// SentencePiece scores (0 when absent).
    pub scores: Vec<f32>,
    /// Text → id.
    pub token_to_id: HashMap<String, u32>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk: Option<u32>,
    /// End-of-generation ids, eos first.
    pub eog: Vec<u32>,
}

fn tok_err(e: ModelError) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

/// An optional token-id key, checked against the vocabulary size.
fn opt_id(file: &GgufFile, key: &str, n: usize) -> Option<u32> {
    let id = file.get(key).and_then(MetaValue::as_u64)?;
    (id < n as u64).then_some(id as u32)
}

/// An optional boolean key.
pub fn opt_bool(file: &GgufFile, key: &str) -> Option<bool> {
    file.get(key).and_then(MetaValue::as_bool)
}

impl Vocab {
    /// Reads the vocabulary; `default_bos`/`default_eos` are the model type's defaults.
    pub fn from_gguf(
        file: &GgufFile,
        default_bos: Option<u32>,
        default_eos: Option<u32>,
    ) -> Result<Self> {
        let tokens: Vec<String> = file
            .get_str_array("tokenizer.ggml.tokens")
            .map_err(tok_err)?
            .into_iter()
            .map(str::to_owned)
            .collect();
        let n = tokens.len();
        if n == 0 || n > u32::MAX as usize {
            return Err(ModelError::Tokenizer(format!("bad vocabulary size {n}")));
        }
        let mut kinds = vec![TokenKind::Normal; n];
        if let Some(types) = file
            .get("tokenizer.ggml.token_type")
            .and_then(MetaValue::as_array)
        {
            if types.len() < n {
                return Err(ModelError::Tokenizer(
                    "token_type shorter than tokens".into(),
                ));
            }
            for (k, t) in kinds.iter_mut().zip(types) {
                *k = TokenKind::from_gguf(t.as_i64().unwrap_or(0));
            }
        }
        let mut scores = vec![0.0f32; n];
        if let Some(s) = file
            .get("tokenizer.ggml.scores")
            .and_then(MetaValue::as_array)
        {
            for (dst, v) in scores.iter_mut().zip(s) {
                *dst = v.as_f64().unwrap_or(0.0) as f32;
            }
        }
        let token_to_id = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        let bos = opt_id(file, "tokenizer.ggml.bos_token_id", n).or(in_range(default_bos));
        let eos = opt_id(file, "tokenizer.ggml.eos_token_id", n).or(in_range(default_eos));
        let unk = opt_id(file, "tokenizer.ggml.unknown_token_id", n);
        let mut vocab = Self {
            tokens,
            kinds,
            scores,
            token_to_id,
            bos,
            unk,
            eog: Vec::new(),
        };
        let extra = ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]
            .into_iter()
            .filter_map(|k| opt_id(file, k, n));
        vocab.eog = eos.into_iter().chain(extra).collect();
        vocab.add_eog_texts();
        Ok(vocab)
    }

    /// Adds tokens whose text marks end of generation, forcing them to control like llama.cpp.
    fn add_eog_texts(&mut self) {
        for text in EOG_TEXTS {
            if let Some(&id) = self.token_to_id.get(*text) {
                self.kinds[id as usize] = TokenKind::Control;
                if !self.eog.contains(&id) {
                    self.eog.push(id);
                }
            }
        }
    }

    /// Tokens matched in text before the model runs: control, user-defined and unknown,
    /// as `(text, id, needs_parse_special)`, longest first.
    pub fn special_tokens(&self) -> Vec<(String, u32, bool)> {
        let mut out: Vec<(String, u32, bool)> = self
            .kinds
            .iter()
            .enumerate()
            .filter_map(|(i, k)| match k {
                TokenKind::Control | TokenKind::Unknown => Some((i, true)),
                TokenKind::UserDefined => Some((i, false)),
                _ => None,
            })
            .map(|(i, parse_only)| (self.tokens[i].clone(), i as u32, parse_only))
            .collect();
        out.sort_by_key(|t| std::cmp::Reverse(t.0.len()));
        out
    }

    /// The `<0xNN>` byte-fallback token ids, by byte.
    pub fn byte_fallback_ids(&self) -> [Option<u32>; 256] {
        std::array::from_fn(|b| self.token_to_id.get(&format!("<0x{b:02X}>")).copied())
    }

    /// Whether decoding skips this token when asked to skip specials.
    pub fn is_special(&self, id: usize) -> bool {
        matches!(self.kinds[id], TokenKind::Control | TokenKind::Unknown)
    }
}
