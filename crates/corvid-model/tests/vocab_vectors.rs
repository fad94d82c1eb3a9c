//! llama.cpp's tokenizer test vectors (`ggml-vocab-*.gguf` with `.inp`/`.out`, as used by
//! `tests/test-tokenizer-0.cpp`: add_special = false, parse_special = false).

mod common;

use corvid_model::tokenizer::{IncrementalDecoder, Tokenizer};
use std::sync::Arc;

/// Checks every vector of one vocab: exact ids, decode round trip, streaming == decode.
fn check_vocab(name: &str) {
    let tok = common::gguf_vocab(name);
    let cases = common::test_vectors(name);
    let mut failures = Vec::new();
    for (text, want) in &cases {
        let got = tok.encode(text, false, false).unwrap();
        if &got != want {
            failures.push(format!("encode {text:?}:\n  want {want:?}\n  got  {got:?}"));
        }
        let back = tok.decode(want, false).unwrap();
        if &back != text {
            failures.push(format!("decode {want:?}: want {text:?}, got {back:?}"));
        }
        let streamed = stream(&tok, want);
        if streamed != back {
            failures.push(format!("stream {want:?}: {streamed:?} != {back:?}"));
        }
    }
    println!(
        "{name}: {} vectors, {} failures",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
}

fn stream(tok: &Arc<Tokenizer>, ids: &[u32]) -> String {
    let mut dec = IncrementalDecoder::new(tok.clone(), false);
    let mut s: String = ids.iter().map(|&id| dec.push(id)).collect();
    s.push_str(&dec.flush());
    s
}

#[test]
fn gpt2_vectors() {
    check_vocab("gpt-2");
}

#[test]
fn llama_bpe_vectors() {
    check_vocab("llama-bpe");
}

#[test]
fn qwen2_vectors() {
    check_vocab("qwen2");
}

#[test]
fn llama_spm_vectors() {
    check_vocab("llama-spm");
}

#[test]
fn bos_is_added_only_when_the_vocab_asks() {
    for (name, bos) in [("llama-spm", Some(1)), ("llama-bpe", Some(128000))] {
        let tok = common::gguf_vocab(name);
        assert_eq!(tok.bos_token_id(), bos, "{name}");
        let plain = tok.encode("Hello", false, false).unwrap();
        let with = tok.encode("Hello", true, false).unwrap();
        assert_eq!(with[0], bos.unwrap(), "{name}");
        assert_eq!(&with[1..], &plain[..], "{name}");
        assert_eq!(tok.encode("", true, false).unwrap(), [bos.unwrap()]);
        assert!(tok.encode("", false, true).unwrap().is_empty());
    }
    let tok = common::gguf_vocab("qwen2");
    assert_eq!(
        tok.encode("Hello", true, false).unwrap(),
        tok.encode("Hello", false, false).unwrap()
    );
}

#[test]
fn spm_specials_and_leading_space() {
    let tok = common::gguf_vocab("llama-spm");
    // "<s>" is a control token: parsed only with parse_special, and text after it gets "▁"
    let ids = tok.encode("<s>Hello", false, true).unwrap();
    assert_eq!(ids, [1, 15043]);
    assert_ne!(tok.encode("<s>Hello", false, false).unwrap()[0], 1);
    assert_eq!(tok.decode(&[1, 15043], true).unwrap(), "Hello");
    assert_eq!(tok.decode(&[1, 15043], false).unwrap(), "<s> Hello");
    assert!(tok.eos_token_ids().contains(&2));
    assert_eq!(tok.token_to_piece(15043).unwrap(), b" Hello");
}

#[test]
fn llama3_end_of_turn_tokens() {
    let tok = common::gguf_vocab("llama-bpe");
    let eot = tok.token_id("<|eot_id|>").unwrap();
    assert!(tok.eos_token_ids().contains(&eot));
    let ids = tok
        .encode("<|start_header_id|>user<|end_header_id|>", false, true)
        .unwrap();
    assert_eq!(ids.len(), 3, "{ids:?}");
}

/// More llama.cpp vocabs from the same sdist, covering the other pre-tokenizers
/// (`starcoder` uses the same regexes as SmolLM's `smollm`).
macro_rules! more_vocabs {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check_vocab($name);
            }
        )*
    };
}

more_vocabs! {
    starcoder_vectors => "starcoder",
    refact_vectors => "refact",
    command_r_vectors => "command-r",
    mpt_vectors => "mpt",
    falcon_vectors => "falcon",
    deepseek_llm_vectors => "deepseek-llm",
    deepseek_coder_vectors => "deepseek-coder",
    phi3_vectors => "phi-3",
    qwen35_vectors => "qwen35",
}
