//! The committed tiny models (`fixtures/tiny/{llama,qwen2,qwen3,glm4}.gguf` and their `-hf`
//! folders): the GGUF-embedded tokenizer and the HF `tokenizer.json` agree, and GLM-4's
//! tokens and chat template agree with llama.cpp's.

use corvid_model::gguf::GgufFile;
use corvid_model::tokenizer::{ChatMessage, Tokenizer};
use std::path::PathBuf;

fn tiny(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny")
        .join(name)
}

#[test]
fn gguf_and_hf_tokenizers_agree() {
    let texts = [
        "Hello world! The quick brown fox, 12345.",
        "  leading spaces\n\nand\ttabs ",
        "<|im_start|>user\nhi<|im_end|>\n",
        "naïve café 你好 🦙",
    ];
    for name in ["llama", "qwen2", "qwen3"] {
        let file = GgufFile::open(tiny(&format!("{name}.gguf"))).unwrap();
        let g = Tokenizer::from_gguf(&file).unwrap();
        let h = Tokenizer::from_hf_dir(&tiny(&format!("{name}-hf"))).unwrap();
        assert_eq!(g.vocab_size(), h.vocab_size(), "{name}");
        assert_eq!(g.eos_token_ids(), h.eos_token_ids(), "{name}");
        for text in texts {
            for parse_special in [false, true] {
                let a = g.encode(text, false, parse_special).unwrap();
                let b = h.encode(text, false, parse_special).unwrap();
                assert_eq!(a, b, "{name} {text:?} parse_special={parse_special}");
                assert_eq!(g.decode(&a, false).unwrap(), text, "{name}");
                assert_eq!(h.decode(&b, false).unwrap(), text, "{name}");
            }
        }
        let (gt, ht) = (g.chat_template(), h.chat_template());
        assert_eq!(gt.is_some(), ht.is_some(), "{name}");
    }
}

/// GLM-4's template (in the tiny GLM's GGUF and HF folder, as in real GLM-4 checkpoints)
/// renders llama.cpp's test conversation to the text llama.cpp's own test expects, and
/// both tokenizers split it and other texts, specials included, into llama.cpp's ids
/// (`fixtures/tiny/glm4.reference.json`, made by `fixtures/gen/tiny_glm4.py`). Generation
/// ends where each reference ends it: the GGUF at llama.cpp's eos and eot (`<|user|>`),
/// the HF folder also at `<|observation|>`, from GLM-4's `generation_config.json`.
#[test]
fn glm4_template_and_tokens_match_llama_cpp() {
    let text = std::fs::read_to_string(tiny("glm4.reference.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let chat = &reference["chat_template"];
    let messages: Vec<ChatMessage> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| ChatMessage {
            role: m["role"].as_str().unwrap().into(),
            content: m["content"].as_str().unwrap().into(),
        })
        .collect();
    let gguf = Tokenizer::from_gguf(&GgufFile::open(tiny("glm4.gguf")).unwrap()).unwrap();
    let hf = Tokenizer::from_hf_dir(&tiny("glm4-hf")).unwrap();
    for (form, tok) in [("gguf", &gguf), ("hf", &hf)] {
        let rendered = tok
            .chat_template()
            .unwrap()
            .render(&messages, true)
            .unwrap();
        assert_eq!(rendered, chat["expected"].as_str().unwrap(), "{form}");
        for check in reference["tokenizer_checks"].as_array().unwrap() {
            let text = check["text"].as_str().unwrap();
            let want: Vec<u32> = serde_json::from_value(check["ids"].clone()).unwrap();
            assert_eq!(
                tok.encode(text, false, true).unwrap(),
                want,
                "{form} {text:?}"
            );
        }
        assert_eq!(tok.encode("[gMASK]<sop>", false, true).unwrap().len(), 2);
    }
    let ends = |texts: &str| hf.encode(texts, false, true).unwrap();
    assert_eq!(gguf.eos_token_ids(), ends("<|endoftext|><|user|>"));
    assert_eq!(
        hf.eos_token_ids(),
        ends("<|endoftext|><|user|><|observation|>")
    );
}

#[test]
fn tokenizer_and_template_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Tokenizer>();
    check::<corvid_model::tokenizer::ChatTemplate>();
    check::<corvid_model::tokenizer::IncrementalDecoder>();
}
