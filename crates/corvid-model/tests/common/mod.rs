//! Fixture locations shared by the tokenizer tests.

#![allow(dead_code)] // each test binary uses a subset

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use corvid_model::default_model::corvid_home;
use corvid_model::gguf::GgufFile;
use corvid_model::tokenizer::Tokenizer;

/// A file installed by `crates/corvid-model/tests/install_vocab.sh`; panics (fails the
/// test) with instructions when it is missing.
pub fn vocab_file(name: &str) -> PathBuf {
    let path = corvid_home().join("vocab").join(name);
    assert!(
        path.exists(),
        "missing tokenizer fixture {}: run `bash crates/corvid-model/tests/install_vocab.sh` \
         (installs into $CORVID_HOME/vocab, default ~/.cache/corvid/vocab)",
        path.display()
    );
    path
}

/// The tokenizer of `ggml-vocab-{name}.gguf`, loaded once per test binary.
pub fn gguf_vocab(name: &str) -> Arc<Tokenizer> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Tokenizer>>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    cache
        .entry(name.to_owned())
        .or_insert_with(|| {
            let file = GgufFile::open(vocab_file(&format!("ggml-vocab-{name}.gguf"))).unwrap();
            Arc::new(Tokenizer::from_gguf(&file).unwrap())
        })
        .clone()
}

/// llama.cpp's test vectors for a vocab, read as `tests/test-tokenizer-0.cpp` does:
/// inputs separated by `\n__ggml_vocab_test__\n`, one line of space-separated ids each.
pub fn test_vectors(name: &str) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(vocab_file(&format!("ggml-vocab-{name}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(vocab_file(&format!("ggml-vocab-{name}.gguf.out"))).unwrap();
    let sep = "\n__ggml_vocab_test__\n";
    let mut inputs = Vec::new();
    let mut rest = inp.as_str();
    while !rest.is_empty() {
        match rest.find(sep) {
            Some(p) => {
                inputs.push(rest[..p].to_owned());
                rest = &rest[p + sep.len()..];
            }
            None => {
                inputs.push(rest.to_owned());
                rest = "";
            }
        }
    }
    let outputs: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "{name}: .inp and .out disagree"
    );
    inputs.into_iter().zip(outputs).collect()
}
