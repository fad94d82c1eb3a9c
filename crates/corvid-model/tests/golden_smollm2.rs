//! The default model against llama.cpp: first-step logits and 32 greedy tokens for every
//! case of `fixtures/smollm2/golden.json` (made by `fixtures/gen/golden_smollm2.py`).

use corvid_model::default_model::default_model_path;
use corvid_model::{load_model, CausalLm, KvCache, LoadOptions, SeqInput};
use std::path::PathBuf;

/// Max abs logit error allowed against llama.cpp. Both quantize activations to Q8 the
/// same way; what remains is float summation order in long dot products.
const MAX_ABS_LOGIT_ERROR: f32 = 0.05;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/smollm2")
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn top_k(v: &[f32], k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..v.len() as u32).collect();
    idx.sort_by(|&a, &b| v[b as usize].total_cmp(&v[a as usize]));
    idx.truncate(k);
    idx
}

#[test]
fn greedy_tokens_and_logits_match_llama_cpp() {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("golden.json")).expect("golden.json"),
    )
    .unwrap();
    let path = default_model_path();
    let model = load_model(&path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e} — install the default model with scripts/setup.sh"));
    let eog: Vec<u32> = serde_json::from_value(golden["model"]["eog_token_ids"].clone()).unwrap();
    let block_size = 16;
    let mut kv = KvCache::new(model.config(), block_size, 128);
    let table: Vec<u32> = (0..128).collect();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let prompt: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone()).unwrap();
        let want: Vec<u32> = serde_json::from_value(case["generated_ids"].clone()).unwrap();
        let bytes = std::fs::read(fixtures().join(case["logits_file"].as_str().unwrap())).unwrap();
        let ref_logits: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();

        let seq = SeqInput {
            tokens: &prompt,
            start_pos: 0,
            block_table: &table,
            want_logits: true,
        };
        let logits = model.forward(&[seq], &mut kv).unwrap().remove(0);
        let max_err = logits
            .iter()
            .zip(&ref_logits)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let (ours5, theirs5) = (top_k(&logits, 5), top_k(&ref_logits, 5));
        eprintln!(
            "{name}: {} prompt tokens, max |Δlogit| = {max_err:.5}",
            prompt.len()
        );
        assert!(
            max_err < MAX_ABS_LOGIT_ERROR,
            "{name}: max abs logit error {max_err}"
        );
        assert_eq!(ours5, theirs5, "{name}: top-5 differ");

        let mut got = vec![argmax(&logits)];
        while got.len() < want.len() && !eog.contains(got.last().unwrap()) {
            let pos = prompt.len() + got.len() - 1;
            let tok = [*got.last().unwrap()];
            let seq = SeqInput {
                tokens: &tok,
                start_pos: pos,
                block_table: &table,
                want_logits: true,
            };
            got.push(argmax(&model.forward(&[seq], &mut kv).unwrap()[0]));
        }
        assert_eq!(got, want, "{name}: greedy tokens differ from llama.cpp");
    }
}
