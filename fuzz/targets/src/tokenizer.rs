//! Tokenizer round trips: any text encodes, and decodes back to itself, whole and through
//! the streaming decoder, on the committed tiny models (byte-level BPE and SentencePiece)
//! and the installed real ones.

use std::sync::{Arc, OnceLock};

use corvid_model::default_model::{default_model_path, gemma_model_path};
use corvid_model::tokenizer::{IncrementalDecoder, Tokenizer};

/// The tokenizers under test, loaded once per process (before AFL's fork server starts);
/// the first is [`tiny_qwen2`]'s.
pub fn tokenizers() -> &'static [Arc<Tokenizer>] {
    static TOKENIZERS: OnceLock<Vec<Arc<Tokenizer>>> = OnceLock::new();
    TOKENIZERS.get_or_init(|| {
        let tiny = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny");
        let mut paths = vec![tiny.join("qwen2.gguf"), tiny.join("llama.gguf")];
        paths.extend(
            [default_model_path(), gemma_model_path()]
                .into_iter()
                .filter(|p| p.exists()),
        );
        paths
            .iter()
            .map(|p| {
                Arc::new(corvid_model::load_tokenizer(p).expect("a committed or installed model"))
            })
            .collect()
    })
}

/// The committed tiny qwen2's tokenizer: a small byte-level BPE with a chat template.
pub fn tiny_qwen2() -> &'static Tokenizer {
    &tokenizers()[0]
}

/// The characters of `text` that `tok` can represent: each decodes back from its own
/// encoding. A byte-level vocabulary may lack some bytes (SmolLM2's has no token for
/// most control bytes); those are dropped, as HF `tokenizers` and llama.cpp drop them.
fn representable(tok: &Tokenizer, text: &str) -> String {
    text.chars()
        .filter(|&c| {
            let one = c.encode_utf8(&mut [0; 4]).to_owned();
            let ids = tok.encode(&one, false, false).expect("any text encodes");
            tok.decode(&ids, false).expect("encoded ids decode") == one
        })
        .collect()
}

/// Encodes `data` (lossily made UTF-8, cut to what each tokenizer can represent) with
/// every tokenizer, with and without parsing special tokens, and checks that decoding
/// gives the text back, whole and streamed.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for tok in tokenizers() {
        let text = representable(tok, &text);
        for parse_special in [false, true] {
            let ids = tok
                .encode(&text, false, parse_special)
                .expect("any text encodes");
            let whole = tok.decode(&ids, false).expect("encoded ids decode");
            assert_eq!(
                whole, text,
                "round trip (parse_special {parse_special}): {ids:?}"
            );
            let mut stream = IncrementalDecoder::new(Arc::clone(tok), false);
            let mut streamed: String = ids.iter().map(|&id| stream.push(id)).collect();
            streamed.push_str(&stream.flush());
            assert_eq!(streamed, whole, "streamed decode: {ids:?}");
        }
    }
}
