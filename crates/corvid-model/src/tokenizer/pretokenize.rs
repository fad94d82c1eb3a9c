//! Pre-tokenization of byte-level BPE vocabularies: regexes that cut text into words
//! before BPE merges run, chosen by `tokenizer.ggml.pre` as llama.cpp does.

use fancy_regex::Regex;

use crate::{ModelError, Result};

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How a `gpt2`-model vocabulary pre-tokenizes, from its `tokenizer.ggml.pre` name.
#[derive(Debug)]
pub struct PreTokenizer {
    regexes: Vec<Regex>,
    /// Whole words found in the vocabulary are emitted without merging (llama3).
    pub ignore_merges: bool,
    /// The pre-tokenizer type implies a BOS is added by default (llama3).
    pub default_add_bos: bool,
}

impl PreTokenizer {
    /// The pre-tokenizer for a `tokenizer.ggml.pre` value (empty means `default`).
    pub fn for_pre(pre: &str) -> Result<Self> {
        let (exprs, ignore_merges, default_add_bos): (&[&str], bool, bool) = match pre {
            "" | "default" => (
                &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
                false,
                false,
            ),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => (&[LLAMA3], true, true),
            "dbrx" | "smaug-bpe" | "chatglm-bpe" => (&[LLAMA3], false, false),
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "mpt" | "olmo" | "jais" | "exaone4"
            | "roberta-bpe" => (&[GPT2], false, false),
            "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "megrez" => (&[QWEN2], false, false),
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => (&[r"\p{N}", GPT2], false, false),
            other => {
                return Err(ModelError::Tokenizer(format!(
                    "unsupported pre-tokenizer `{other}`"
                )))
            }
        };
        let regexes = exprs
            .iter()
            .map(|e| Regex::new(e))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ModelError::Tokenizer(format!("pre-tokenizer regex: {e}")))?;
        Ok(Self {
            regexes,
            ignore_merges,
            default_add_bos,
        })
    }

    /// Cuts `text` into words: each regex in turn splits every piece into its matches and
    /// the gaps between them (both kept), like HF's `Split(..., Isolated)` sequence.
    pub fn split<'t>(&self, text: &'t str) -> Result<Vec<&'t str>> {
        let mut pieces = vec![text];
        for re in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let mut last = 0;
                for m in re.find_iter(piece) {
                    let m = m.map_err(|e| ModelError::Tokenizer(format!("pre-tokenizer: {e}")))?;
                    if m.start() > last {
                        next.push(&piece[last..m.start()]);
                    }
                    if m.end() > m.start() {
                        next.push(m.as_str());
                    }
                    last = m.end();
                }
                if last < piece.len() {
                    next.push(&piece[last..]);
                }
            }
            pieces = next;
        }
        Ok(pieces)
    }
}

#[cfg(test)]
mod tests {
    use super::PreTokenizer;

    #[test]
    fn gpt2_keeps_one_space_before_words() {
        let p = PreTokenizer::for_pre("gpt-2").unwrap();
        assert_eq!(
            p.split("Hello   world's 42\t!").unwrap(),
            ["Hello", "  ", " world", "'s", " 42", "\t", "!"]
        );
    }

    #[test]
    fn smollm_splits_digits() {
        let p = PreTokenizer::for_pre("smollm").unwrap();
        assert_eq!(p.split("a 123").unwrap(), ["a", " ", "1", "2", "3"]);
    }

    #[test]
    fn unknown_pre_is_an_error() {
        assert!(PreTokenizer::for_pre("no-such-pre").is_err());
    }
}
