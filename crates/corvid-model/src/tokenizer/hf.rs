//! HF tokenizer directories: `tokenizer.json` through the `tokenizers` crate, with
//! `tokenizer_config.json` (or `chat_template.jinja`) for BOS/EOS and the chat template,
//! and `generation_config.json` for extra end-of-generation ids.

use std::path::Path;

use serde_json::Value;

use super::vocab::EOG_TEXTS;
use super::{byte_level, load_template, spm, Model, Tokenizer};
use crate::{ModelError, Result};

/// An HF tokenizer; a second copy encodes special-token text literally.
pub struct HfModel {
    tok: tokenizers::Tokenizer,
    literal: tokenizers::Tokenizer,
}

fn err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

impl HfModel {
    /// Encodes with the HF pipeline; `add_special` runs the post-processor (BOS etc.).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let tok = if parse_special {
            &self.tok
        } else {
            &self.literal
        };
        Ok(tok
            .encode_fast(text, add_special)
            .map_err(err)?
            .get_ids()
            .to_vec())
    }

    /// The id of a token or added token.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tok.token_to_id(token)
    }
}

/// How the decoder maps token strings to bytes.
#[derive(Clone, Copy, PartialEq)]
enum PieceStyle {
    /// GPT-2 byte alphabet.
    ByteLevel,
    /// `▁` for spaces and `<0xNN>` byte fallback; `strip` drops the prefix space.
    SentencePiece { strip: bool },
    /// Anything else: ask the HF decoder for each token alone.
    Other,
}

fn piece_style(decoder: &Value) -> PieceStyle {
    let d = decoder.to_string();
    if d.contains("\"ByteLevel\"") {
        PieceStyle::ByteLevel
    } else if d.contains("\"Metaspace\"") || d.contains("\"ByteFallback\"") {
        let strip = d.contains("\"Strip\"")
            || d.contains("\"prepend_scheme\":\"always\"")
            || d.contains("\"prepend_scheme\":\"first\"")
            || d.contains("\"add_prefix_space\":true");
        PieceStyle::SentencePiece { strip }
    } else {
        PieceStyle::Other
    }
}

/// A token string from the config: `"<s>"` or `{"content": "<s>", ...}`.
fn config_token(config: &Value, key: &str) -> Option<String> {
    let v = config.get(key)?;
    v.as_str()
        .or_else(|| v.get("content").and_then(Value::as_str))
        .map(str::to_owned)
}

/// The chat template: `chat_template.jinja`, or the config's string or `default` entry.
fn config_template(dir: &Path, config: &Value) -> Option<String> {
    if let Ok(s) = std::fs::read_to_string(dir.join("chat_template.jinja")) {
        return Some(s);
    }
    match config.get("chat_template")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => list
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .or_else(|| list.first())
            .and_then(|t| t.get("template")?.as_str().map(str::to_owned)),
        _ => None,
    }
}

/// `eos_token_id` (a number or a list) from `generation_config.json`, if present.
fn generation_eos(dir: &Path, vocab_size: usize) -> Vec<u32> {
    let Ok(config) = read_json(&dir.join("generation_config.json")) else {
        return Vec::new();
    };
    let ids: Vec<u64> = match &config["eos_token_id"] {
        Value::Array(list) => list.iter().filter_map(Value::as_u64).collect(),
        v => v.as_u64().into_iter().collect(),
    };
    ids.into_iter()
        .filter(|&id| id < vocab_size as u64)
        .map(|id| id as u32)
        .collect()
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| err(format!("{}: {e}", path.display())))
}

impl Tokenizer {
    /// Loads `dir/tokenizer.json` (+ `tokenizer_config.json`, `chat_template.jinja` and
    /// `generation_config.json` when present).
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let json_path = dir.join("tokenizer.json");
        let tok = tokenizers::Tokenizer::from_file(&json_path)
            .map_err(|e| err(format!("{}: {e}", json_path.display())))?;
        let style = piece_style(&read_json(&json_path)?["decoder"]);
        let config_path = dir.join("tokenizer_config.json");
        let config = if config_path.exists() {
            read_json(&config_path)?
        } else {
            Value::Null
        };
        let added = tok.get_added_tokens_decoder();
        let n = added
            .keys()
            .map(|&id| id as usize + 1)
            .chain([tok.get_vocab_size(true)])
            .max()
            .unwrap_or(0);
        let mut pieces = Vec::with_capacity(n);
        let mut special = vec![false; n];
        for id in 0..n as u32 {
            if let Some(a) = added.get(&id) {
                special[id as usize] = a.special;
                pieces.push(a.content.as_bytes().to_vec());
                continue;
            }
            let text = tok.id_to_token(id).unwrap_or_default();
            pieces.push(match style {
                PieceStyle::ByteLevel => byte_level::decode(&text),
                PieceStyle::SentencePiece { .. } => sp_piece(&text),
                PieceStyle::Other => tok.decode(&[id], false).map_err(err)?.into_bytes(),
            });
        }
        let bos_text = config_token(&config, "bos_token");
        let eos_text = config_token(&config, "eos_token");
        let id_of = |t: &Option<String>| t.as_deref().and_then(|t| tok.token_to_id(t));
        let bos = id_of(&bos_text);
        let mut eog: Vec<u32> = id_of(&eos_text).into_iter().collect();
        for id in generation_eos(dir, n) {
            if !eog.contains(&id) {
                eog.push(id);
            }
        }
        for t in EOG_TEXTS {
            match tok.token_to_id(t) {
                Some(id) if !eog.contains(&id) => eog.push(id),
                _ => {}
            }
        }
        let chat_template = load_template(
            config_template(dir, &config).as_deref(),
            bos_text.as_deref().unwrap_or(""),
            eos_text.as_deref().unwrap_or(""),
        );
        let mut literal = tok.clone();
        literal.set_encode_special_tokens(true);
        Ok(Self {
            pieces,
            special,
            bos,
            add_bos: config.get("add_bos_token").and_then(Value::as_bool) == Some(true),
            eog,
            strip_leading_space: style == PieceStyle::SentencePiece { strip: true },
            chat_template,
            model: Model::Hf(Box::new(HfModel { tok, literal })),
        })
    }
}

/// A SentencePiece token's bytes: `<0xNN>` is one byte, `▁` is a space.
fn sp_piece(text: &str) -> Vec<u8> {
    let byte = text
        .strip_prefix("<0x")
        .and_then(|h| h.strip_suffix('>'))
        .filter(|h| h.len() == 2)
        .and_then(|h| u8::from_str_radix(h, 16).ok());
    match byte {
        Some(b) => vec![b],
        None => text.replace(spm::SPACE, " ").into_bytes(),
    }
}
