//! Building a [`Tokenizer`] from GGUF metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`,
//! or a built-in template for families whose files lack one).

use super::vocab::{opt_bool, TokenKind, Vocab};
use super::{
    byte_level, gguf_bpe, load_template, pretokenize, spm, Algo, GgufModel, Model, Tokenizer,
};
use crate::gguf::{GgufFile, MetaValue};
use crate::{ModelError, Result};

impl Tokenizer {
    /// Loads the tokenizer embedded in a GGUF file: `tokenizer.ggml.model` `gpt2`
    /// (byte-level BPE, pre-tokenizer from `tokenizer.ggml.pre`) or `llama` (SentencePiece).
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let model = file
            .get("tokenizer.ggml.model")
            .and_then(MetaValue::as_str)
            .ok_or_else(|| ModelError::Tokenizer("no tokenizer.ggml.model".into()))?;
        let (vocab, algo, default_add_bos) = match model {
            "gpt2" => {
                let vocab = Vocab::from_gguf(file, Some(11), Some(11))?;
                let pre = file
                    .get("tokenizer.ggml.pre")
                    .and_then(MetaValue::as_str)
                    .unwrap_or("default");
                let pre = pretokenize::PreTokenizer::for_pre(pre)?;
                let merges = file
                    .get_str_array("tokenizer.ggml.merges")
                    .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
                let bpe = gguf_bpe::Bpe::new(&vocab, &merges, pre);
                let add_bos = bpe.default_add_bos();
                (vocab, Algo::Bpe(bpe), add_bos)
            }
            "llama" => {
                let vocab = Vocab::from_gguf(file, Some(1), Some(2))?;
                let prefix = opt_bool(file, "tokenizer.ggml.add_space_prefix").unwrap_or(true);
                let spm = spm::Spm::new(&vocab, prefix);
                (vocab, Algo::Spm(spm), true)
            }
            other => {
                return Err(ModelError::Tokenizer(format!(
                    "unsupported tokenizer model `{other}`"
                )))
            }
        };
        let add_bos = opt_bool(file, "tokenizer.ggml.add_bos_token").unwrap_or(default_add_bos);
        let spm_prefix = matches!(&algo, Algo::Spm(s) if s.add_space_prefix());
        let pieces = (0..vocab.tokens.len())
            .map(|i| piece(&vocab, i, matches!(algo, Algo::Spm(_))))
            .collect();
        let special = (0..vocab.tokens.len())
            .map(|i| vocab.is_special(i))
            .collect();
        let text_of = |id: Option<u32>| id.map_or("", |i| vocab.tokens[i as usize].as_str());
        let builtin = || {
            let arch = file.get("general.architecture").and_then(MetaValue::as_str);
            arch.and_then(crate::chat_template::builtin)
        };
        let chat_template = load_template(
            file.get("tokenizer.chat_template")
                .and_then(MetaValue::as_str)
                .or_else(builtin),
            text_of(vocab.bos),
            text_of(vocab.eog.first().copied()),
        );
        Ok(Self {
            pieces,
            special,
            bos: vocab.bos,
            add_bos: add_bos && vocab.bos.is_some(),
            eog: vocab.eog.clone(),
            strip_leading_space: spm_prefix,
            chat_template,
            model: Model::Gguf(Box::new(GgufModel {
                specials: super::SpecialMatcher::new(vocab.special_tokens()),
                vocab,
                algo,
            })),
        })
    }
}

/// The bytes token `i` decodes to, as llama.cpp's `token_to_piece(.., special = true)`.
fn piece(vocab: &Vocab, i: usize, spm: bool) -> Vec<u8> {
    let text = &vocab.tokens[i];
    match vocab.kinds[i] {
        TokenKind::Control | TokenKind::Unknown | TokenKind::UserDefined => {
            text.as_bytes().to_vec()
        }
        TokenKind::Normal if spm => text.replace(spm::SPACE, " ").into_bytes(),
        TokenKind::Normal => byte_level::decode(text),
        TokenKind::Byte => byte_of(text).map_or_else(Vec::new, |b| vec![b]),
        TokenKind::Unused | TokenKind::Undefined => Vec::new(),
    }
}

/// The byte of a `<0xNN>` token.
fn byte_of(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}
