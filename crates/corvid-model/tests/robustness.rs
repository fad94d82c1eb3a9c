//! Malformed inputs give errors that name the file (and tensor), never panics or
//! out-of-bounds reads: truncated and corrupted GGUF and safetensors files, unknown
//! tensor types, missing tensors, and out-of-range tokens.

use corvid_model::gguf::GgufFile;
use corvid_model::{load_model, CausalLm, KvCache, KvDtype, LoadOptions, ModelError, SeqInput};
use rand::{Rng, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn tiny(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("corvid-robust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Loads without panicking; returns the error text if loading failed.
fn load_err(path: &Path) -> Option<String> {
    catch_unwind(AssertUnwindSafe(|| {
        load_model(path, &LoadOptions::default())
    }))
    .unwrap_or_else(|_| panic!("loading {} panicked", path.display()))
    .err()
    .map(|e| e.to_string())
}

#[test]
fn truncated_gguf_is_an_error_naming_the_file() {
    let bytes = std::fs::read(tiny("qwen2.gguf")).unwrap();
    let path = scratch("truncated.gguf");
    for cut in [
        0,
        3,
        8,
        20,
        100,
        1000,
        5000,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = load_err(&path).unwrap_or_else(|| panic!("cut at {cut} loaded"));
        assert!(err.contains("truncated.gguf"), "cut {cut}: {err}");
    }
}

#[test]
fn corrupted_gguf_never_panics() {
    let bytes = std::fs::read(tiny("llama.gguf")).unwrap();
    let path = scratch("corrupt.gguf");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let header_end = 8192.min(bytes.len());
    for _ in 0..200 {
        let mut b = bytes.clone();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(4..header_end);
            b[i] = rng.gen();
        }
        std::fs::write(&path, &b).unwrap();
        if load_err(&path).is_none() {
            // A corruption that still parses must still run safely.
            let model = load_model(&path, &LoadOptions::default()).unwrap();
            let mut kv = KvCache::new(model.config(), 16, 4, KvDtype::F16);
            let seq = SeqInput {
                tokens: &[1, 2, 3],
                start_pos: 0,
                block_tables: &[vec![0]],
                want_logits: true,
            };
            let _ = catch_unwind(AssertUnwindSafe(|| model.forward_once(&[seq], &mut kv)))
                .expect("forward panicked");
        }
    }
}

#[test]
fn unknown_tensor_type_and_missing_tensor_are_named() {
    let bytes = std::fs::read(tiny("qwen3.gguf")).unwrap();
    let file = GgufFile::open(tiny("qwen3.gguf")).unwrap();
    let info = file.tensor("blk.0.attn_q.weight").unwrap();
    // The tensor's type code sits right after its name, dims and n_dims in the header.
    let name = b"blk.0.attn_q.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap();
    let type_at = at + name.len() + 4 + 8 * info.dims.len();
    let mut b = bytes.clone();
    b[type_at..type_at + 4].copy_from_slice(&99u32.to_le_bytes());
    let path = scratch("badtype.gguf");
    std::fs::write(&path, &b).unwrap();
    let err = load_err(&path).unwrap();
    assert!(
        err.contains("blk.0.attn_q.weight") && err.contains("unknown tensor type 99"),
        "{err}"
    );

    // Renaming a tensor makes it missing.
    let mut b = bytes.clone();
    b[at + name.len() - 6..at + name.len()].copy_from_slice(b"weighX");
    let path = scratch("missing.gguf");
    std::fs::write(&path, &b).unwrap();
    let err = load_err(&path).unwrap();
    assert!(
        err.contains("missing tensor `blk.0.attn_q.weight`") && err.contains("missing.gguf"),
        "{err}"
    );
}

#[test]
fn truncated_safetensors_is_an_error() {
    let src = tiny("qwen2-hf");
    let dir = scratch("truncated-hf");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    for cut in [0, 7, 100, bytes.len() / 3, bytes.len() - 1] {
        std::fs::write(dir.join("model.safetensors"), &bytes[..cut]).unwrap();
        let err = load_err(&dir).unwrap_or_else(|| panic!("cut at {cut} loaded"));
        assert!(err.contains("model.safetensors"), "{err}");
    }
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    assert!(load_err(&dir).unwrap().contains("config.json"));
}

#[test]
fn bad_forward_inputs_are_errors() {
    let model = load_model(&tiny("qwen2.gguf"), &LoadOptions::default()).unwrap();
    let mut kv = KvCache::new(model.config(), 16, 4, KvDtype::F16);
    let vocab = model.config().vocab_size as u32;
    // (tokens, start position, block tables)
    type Case<'a> = (&'a [u32], usize, &'a [Vec<u32>]);
    let cases: [Case; 6] = [
        (&[vocab], 0, &[vec![0]]),      // token out of vocabulary
        (&[], 0, &[vec![0]]),           // empty sequence
        (&[1; 20], 0, &[vec![0]]),      // block table too short
        (&[1], 0, &[vec![9]]),          // block outside the pool
        (&[1], 0, &[]),                 // no block table
        (&[1], 0, &[vec![0], vec![1]]), // more tables than KV groups
    ];
    for (tokens, start_pos, table) in cases {
        let seq = SeqInput {
            tokens,
            start_pos,
            block_tables: table,
            want_logits: true,
        };
        let r = model.forward_once(&[seq], &mut kv);
        assert!(
            matches!(r, Err(ModelError::Input(_))),
            "{tokens:?}/{table:?} gave {:?}",
            r.map(|_| ())
        );
    }
}

/// A step with no sequences at all computes nothing and returns no logits (every
/// per-token pass over zero tokens is a no-op, not a division by the token count).
#[test]
fn empty_batch_is_an_empty_step() {
    let model = load_model(&tiny("qwen2.gguf"), &LoadOptions::default()).unwrap();
    let mut kv = KvCache::new(model.config(), 16, 4, KvDtype::F16);
    let logits = model.forward_once(&[], &mut kv).expect("an empty step");
    assert!(logits.is_empty());
}

/// A GLM-4 config whose partial RoPE leaves an odd number of rotated dimensions, and one
/// whose FFN width does not match the fused gate/up matrix, are errors naming the file or
/// the tensor.
#[test]
fn glm4_partial_rope_and_fused_ffn_mismatches_are_named() {
    let src = tiny("glm4-hf");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    let dir = scratch("glm4-hf");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let with = |key: &str, value: serde_json::Value| {
        let mut c = config.clone();
        match key.split_once('.') {
            Some((outer, inner)) => c[outer][inner] = value,
            None => c[key] = value,
        }
        std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
        load_err(&dir).unwrap_or_else(|| panic!("{key} loaded"))
    };
    let err = with("rope_parameters.partial_rotary_factor", 0.1875.into());
    assert!(
        err.contains("config.json") && err.contains("RoPE over 3 of a head's 16 dimensions"),
        "{err}"
    );
    let err = with("intermediate_size", 96.into());
    assert!(
        err.contains("blk.0.ffn_up.weight (gate half)") && err.contains("[64, 96]"),
        "{err}"
    );
}
