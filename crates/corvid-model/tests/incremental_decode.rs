//! Streaming detokenization: never a broken UTF-8 char, and the stream equals `decode`.

mod common;

use corvid_model::tokenizer::{IncrementalDecoder, Tokenizer};
use std::sync::Arc;

fn chunks(tok: &Arc<Tokenizer>, ids: &[u32], skip_special: bool) -> Vec<String> {
    let mut dec = IncrementalDecoder::new(tok.clone(), skip_special);
    let mut out: Vec<String> = ids.iter().map(|&id| dec.push(id)).collect();
    out.push(dec.flush());
    out
}

/// Streams `text` token by token and checks the pieces against the full decode.
fn check_stream(tok: &Arc<Tokenizer>, text: &str) {
    let ids = tok.encode(text, false, false).unwrap();
    let parts = chunks(tok, &ids, false);
    assert!(
        parts.iter().all(|p| !p.contains('\u{FFFD}')),
        "{text:?}: {parts:?}"
    );
    assert_eq!(parts.concat(), tok.decode(&ids, false).unwrap());
    assert_eq!(parts.concat(), text);
}

#[test]
fn spm_byte_fallback_chinese_char_is_held_back() {
    let tok = common::gguf_vocab("llama-spm");
    let ids: Vec<u32> = ["<0xE4>", "<0xBD>", "<0xA0>"]
        .iter()
        .map(|t| tok.token_id(t).unwrap())
        .collect();
    assert_eq!(chunks(&tok, &ids, false), ["", "", "你", ""]);
    assert_eq!(tok.decode(&ids, false).unwrap(), "你");
    // a cut-off char is only released, lossily, at flush
    assert_eq!(chunks(&tok, &ids[..2], false), ["", "", "\u{FFFD}"]);
    assert_eq!(tok.token_to_piece(ids[0]).unwrap(), [0xE4]);
}

#[test]
fn chinese_and_emoji_stream_like_full_decode() {
    for vocab in ["gpt-2", "llama-bpe", "qwen2", "llama-spm"] {
        let tok = common::gguf_vocab(vocab);
        for text in [
            "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
            "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ 🦙🦙",
            "нещо на Български 你好世界",
        ] {
            check_stream(&tok, text);
        }
    }
}

#[test]
fn byte_level_emoji_is_split_across_tokens_but_never_emitted_broken() {
    let tok = common::gguf_vocab("gpt-2");
    let ids = tok.encode("🦙", false, false).unwrap();
    assert!(ids.len() > 1, "gpt-2 has no single token for 🦙: {ids:?}");
    let parts = chunks(&tok, &ids, false);
    assert_eq!(parts.concat(), "🦙");
    assert_eq!(parts.iter().filter(|p| !p.is_empty()).count(), 1);
}

#[test]
fn skip_special_drops_control_tokens() {
    let tok = common::gguf_vocab("qwen2");
    let ids = tok.encode("<|im_start|>hi<|im_end|>", false, true).unwrap();
    assert_eq!(ids[0], tok.token_id("<|im_start|>").unwrap());
    assert_eq!(chunks(&tok, &ids, true).concat(), "hi");
    assert_eq!(tok.decode(&ids, true).unwrap(), "hi");
    assert_eq!(
        chunks(&tok, &ids, false).concat(),
        "<|im_start|>hi<|im_end|>"
    );
}

#[test]
fn invalid_ids_are_errors_not_panics() {
    let tok = common::gguf_vocab("qwen2");
    let bad = tok.vocab_size() as u32;
    assert!(tok.decode(&[bad], false).is_err());
    assert!(tok.token_to_piece(bad).is_none());
    let mut dec = IncrementalDecoder::new(tok.clone(), false);
    assert_eq!(dec.push(bad), "");
}
