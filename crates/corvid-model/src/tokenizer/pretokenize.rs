//! Pre-tokenization of byte-level BPE vocabularies: regexes that cut text into words
//! before BPE merges run, chosen by `tokenizer.ggml.pre` as llama.cpp does.

use fancy_regex::Regex;

use crate::{ModelError, Result};

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
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
            "qwen35" => (&[QWEN35], false, false),
            "falcon" => (
                &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
                false,
                false,
            ),
            "deepseek-llm" => (
                &[
                    "[\r\n]",
                    "\\s?[A-Za-z\u{B5}\u{C0}-\u{D6}\u{D8}-\u{F6}\u{F8}-\u{1BA}\u{1BC}-\u{1BF}\u{1C4}-\u{293}\u{295}-\u{2AF}\u{370}-\u{373}\u{376}\u{377}\u{37B}-\u{37D}\u{37F}\u{386}\u{388}-\u{38A}\u{38C}\u{38E}-\u{3A1}\u{3A3}-\u{3F5}\u{3F7}-\u{481}\u{48A}-\u{52F}\u{531}-\u{556}\u{10A0}-\u{10C5}\u{13A0}-\u{13F5}\u{13F8}-\u{13FD}\u{1C90}-\u{1CBA}\u{1CBD}-\u{1CBF}\u{1D00}-\u{1D2B}\u{1D6B}-\u{1D77}\u{1D79}-\u{1D9A}\u{1E00}-\u{1F15}\u{1F18}-\u{1F1D}\u{1F20}-\u{1F45}\u{1F48}-\u{1F4D}\u{1F50}-\u{1F57}\u{1F59}\u{1F5B}\u{1F5D}\u{1F5F}-\u{1F7D}\u{1F80}-\u{1FB4}\u{1FB6}-\u{1FBC}\u{1FBE}\u{1FC2}-\u{1FC4}\u{1FC6}-\u{1FCC}\u{1FD0}-\u{1FD3}\u{1FD6}-\u{1FDB}\u{1FE0}-\u{1FEC}\u{1FF2}-\u{1FF4}\u{1FF6}-\u{1FFC}\u{2102}\u{2107}\u{210A}-\u{2113}\u{2115}\u{2119}-\u{211D}\u{2124}\u{2126}\u{2128}\u{212A}-\u{212D}\u{212F}-\u{2134}\u{2139}\u{213C}-\u{213F}\u{2145}-\u{2149}\u{214E}\u{2183}\u{2184}\u{2C00}-\u{2C7B}\u{2C7E}-\u{2CE4}\u{2CEB}-\u{2CEE}\u{2CF2}\u{2CF3}\u{A640}-\u{A66D}\u{A680}-\u{A69B}\u{A722}-\u{A76F}\u{A771}-\u{A787}\u{A78B}-\u{A78E}\u{AB70}-\u{ABBF}\u{FB00}-\u{FB06}\u{FB13}-\u{FB17}\u{FF21}-\u{FF3A}\u{FF41}-\u{FF5A}\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+",
                    "\\s?[!-/:-~\u{FF01}-\u{FF0F}\u{FF1A}-\u{FF5E}\u{2018}-\u{201F}\u{3000}-\u{3002}]+",
                    "\\s+$",
                    "[\u{4E00}-\u{9FA5}\u{800}-\u{4E00}\u{AC00}-\u{D7FF}]+",
                    "\\p{N}+",
                ],
                false,
                false,
            ),
            "deepseek-coder" => (
                &[
                    "[\r\n]",
                    "\\s?\\p{L}+",
                    "\\s?\\p{P}+",
                    "[\u{4E00}-\u{9FA5}\u{800}-\u{4E00}\u{AC00}-\u{D7FF}]+",
                    "\\p{N}",
                ],
                false,
                false,
            ),
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
            .map(|e| {
                Regex::new(e)
                    .map_err(|e| ModelError::Tokenizer(format!("pre-tokenizer regex: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
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
