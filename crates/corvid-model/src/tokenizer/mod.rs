//! Tokenizers: GGUF-embedded vocabularies (byte-level BPE and SentencePiece, matching
//! llama.cpp token for token) and HF `tokenizer.json` directories, plus streaming
//! detokenization and the model's chat template.
//!
//! Decoding concatenates each token's raw bytes ([`Tokenizer::token_to_piece`]); the only
//! rewrite is dropping the space a SentencePiece vocabulary prepends, from the first
//! decoded token (as HF's decoders do). No `clean_up_tokenization_spaces`, so
//! `decode(encode(text)) == text` for byte-level vocabularies and streaming with
//! [`IncrementalDecoder`] yields exactly what [`Tokenizer::decode`] does.

mod byte_level;
mod gguf_bpe;
mod gguf_load;
mod hf;
mod incremental;
mod pretokenize;
mod special;
mod spm;
mod vocab;

pub use crate::chat_template::{ChatMessage, ChatTemplate};
pub use incremental::IncrementalDecoder;

use crate::{ModelError, Result};
use special::SpecialMatcher;
use vocab::Vocab;

/// A model's tokenizer. `Send + Sync`; share it behind an `Arc`.
pub struct Tokenizer {
    model: Model,
    /// Raw bytes each token decodes to (specials as their text).
    pieces: Vec<Vec<u8>>,
    /// Tokens dropped by `decode(.., skip_special = true)`.
    special: Vec<bool>,
    bos: Option<u32>,
    add_bos: bool,
    eog: Vec<u32>,
    /// Decoding drops one leading space of the first emitted piece (SentencePiece prefix).
    strip_leading_space: bool,
    chat_template: Option<ChatTemplate>,
}

/// Where encoding happens.
enum Model {
    /// A GGUF vocabulary and its algorithm.
    Gguf(Box<GgufModel>),
    /// An HF `tokenizers` tokenizer.
    Hf(Box<hf::HfModel>),
}

/// A GGUF vocabulary with its special-token matcher and algorithm.
struct GgufModel {
    vocab: Vocab,
    specials: SpecialMatcher,
    algo: Algo,
}

/// The GGUF tokenization algorithm.
enum Algo {
    Bpe(gguf_bpe::Bpe),
    Spm(spm::Spm),
}

impl Tokenizer {
    /// Encodes `text`. `add_special`: prepend BOS if the model asks for it
    /// (`tokenizer.ggml.add_bos_token` / the HF post-processor); `parse_special`: text like
    /// `<|im_start|>` becomes that special token instead of being tokenized as text.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        match &self.model {
            Model::Hf(hf) => hf.encode(text, add_special, parse_special),
            Model::Gguf(g) => {
                let GgufModel {
                    vocab,
                    specials,
                    algo,
                } = &**g;
                let mut out = Vec::new();
                if add_special && self.add_bos {
                    out.extend(self.bos);
                }
                if text.is_empty() {
                    return Ok(out);
                }
                let frags = specials.partition(text, parse_special);
                match algo {
                    Algo::Spm(spm) => spm.encode(vocab, &frags, &mut out),
                    Algo::Bpe(bpe) => {
                        for f in frags {
                            match f {
                                special::Fragment::Token(id) => out.push(id),
                                special::Fragment::Text(t) => bpe.encode(vocab, t, &mut out)?,
                            }
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// Decodes ids to text; invalid UTF-8 (e.g. a cut-off multi-byte char) becomes U+FFFD.
    /// `skip_special` drops control tokens (BOS, `<|im_end|>`, ...).
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let mut bytes = Vec::new();
        let mut first = true;
        for &id in ids {
            if let Some(piece) = self.piece_for_decode(id, skip_special, first)? {
                first = false;
                bytes.extend_from_slice(piece);
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The bytes `id` contributes to a decode: `None` for a skipped special; without the
    /// leading space if it is the first decoded token of a SentencePiece vocabulary.
    fn piece_for_decode(&self, id: u32, skip_special: bool, first: bool) -> Result<Option<&[u8]>> {
        let piece = self
            .pieces
            .get(id as usize)
            .ok_or_else(|| ModelError::Tokenizer(format!("token id {id} out of range")))?;
        if skip_special && self.special[id as usize] {
            return Ok(None);
        }
        if first && self.strip_leading_space && piece.first() == Some(&b' ') {
            return Ok(Some(&piece[1..]));
        }
        Ok(Some(piece))
    }

    /// Number of tokens, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The BOS token, if the vocabulary has one.
    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos
    }

    /// Tokens that end generation: eos plus end-of-turn tokens such as `<|im_end|>`,
    /// `<|eot_id|>`, `<|endoftext|>` (llama.cpp's EOG set), eos first.
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eog
    }

    /// The raw bytes one token decodes to (specials as their text), for logprobs.
    pub fn token_to_piece(&self, id: u32) -> Option<Vec<u8>> {
        self.pieces.get(id as usize).cloned()
    }

    /// The id of a token spelled as in the vocabulary (e.g. `<|im_start|>`, `Ġthe`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        match &self.model {
            Model::Gguf(g) => g.vocab.token_to_id.get(token).copied(),
            Model::Hf(hf) => hf.token_id(token),
        }
    }

    /// The model's chat template, if it ships one that compiles.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.model {
            Model::Gguf(g) => match g.algo {
                Algo::Bpe(_) => "gguf-bpe",
                Algo::Spm(_) => "gguf-spm",
            },
            Model::Hf(_) => "hf",
        };
        f.debug_struct("Tokenizer")
            .field("kind", &kind)
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eog", &self.eog)
            .finish()
    }
}

/// Compiles a chat template, logging (not failing) when the model's template is broken.
fn load_template(source: Option<&str>, bos: &str, eos: &str) -> Option<ChatTemplate> {
    let src = source?;
    match ChatTemplate::new(src, bos, eos) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!("ignoring the model's chat template: {e}");
            None
        }
    }
}
