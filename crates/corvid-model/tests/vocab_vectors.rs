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
