//! The committed tiny models (`fixtures/tiny/{llama,qwen2,qwen3}.gguf` and their `-hf`
//! folders): the GGUF-embedded tokenizer and the HF `tokenizer.json` agree.

use corvid_model::gguf::GgufFile;
use corvid_model::tokenizer::Tokenizer;
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

#[test]
fn tokenizer_and_template_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Tokenizer>();
    check::<corvid_model::tokenizer::ChatTemplate>();
    check::<corvid_model::tokenizer::IncrementalDecoder>();
}
