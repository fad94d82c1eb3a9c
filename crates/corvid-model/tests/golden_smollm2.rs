//! The default model against llama.cpp: first-step logits and 32 greedy tokens for every
//! case of `fixtures/smollm2/golden.json` (made by `fixtures/gen/golden_smollm2.py`).

mod numerics;

use corvid_model::default_model::default_model_path;
use corvid_model::{load_model, LoadOptions};
use numerics::*;
use std::path::PathBuf;

/// Max abs logit error allowed against llama.cpp on the first step. Both multiply Q4_1
/// weights by Q8-quantized activations, which is discontinuous: a float summation
/// order difference flips an occasional Q8 rounding, and the flip propagates. So
/// llama.cpp disagrees with itself (its batched prompt path and its one-token path
/// differ by 0.68–0.94 max abs on these prompts) and with exact f32 math (by up to 1.24,
/// per `fixtures/README.md`); corvid differs from it by 0.18–1.24. The exact-f32 check
/// of the architecture is the safetensors test, which agrees with transformers to 0.02.
const MAX_ABS_LOGIT_ERROR: f32 = 1.5;

/// Greedy tokens must match llama.cpp exactly until the first step where llama.cpp's
/// own top-1/top-2 gap is below this: past such a near-tie either token is a correct
/// greedy continuation within numerical noise, and the texts may legitimately part.
const NEAR_TIE: f32 = 0.25;

fn fixtures() -> PathBuf {
    std::env::var_os("CORVID_GOLDEN_DIR")
        .map_or_else(|| repo().join("fixtures/smollm2"), PathBuf::from)
}

#[test]
fn greedy_tokens_and_logits_match_llama_cpp() {
    let golden = json(&fixtures().join("golden.json"));
    let model = load_model(&default_model_path(), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e} — install the default model with scripts/setup.sh"));
    let eog = ids(&golden["model"]["eog_token_ids"]);
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    let mut full = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let prompt = ids(&case["prompt_ids"]);
        let want = ids(&case["generated_ids"]);
        let ref_logits = f32_file(&fixtures().join(case["logits_file"].as_str().unwrap()));
        let (logits, got) = run(&model, &prompt, want.len(), &eog);

        let max_err = max_abs(&logits, &ref_logits);
        assert!(
            max_err < MAX_ABS_LOGIT_ERROR,
            "{name}: max abs logit error {max_err}"
        );
        // Top-5 agreement: every reference top-5 token clearly above the 6th is ours too.
        let (ours5, theirs6) = (top_k(&logits, 5), top_k(&ref_logits, 6));
        let sixth = ref_logits[theirs6[5] as usize];
        for &t in &theirs6[..5] {
            if ref_logits[t as usize] - sixth > MAX_ABS_LOGIT_ERROR {
                assert!(
                    ours5.contains(&t),
                    "{name}: reference top-5 token {t} missing from ours {ours5:?}"
                );
            }
        }
        assert_eq!(ours5[0], theirs6[0], "{name}: argmax differs");

        let margins: Vec<f32> = serde_json::from_value(case["step_margins"].clone()).unwrap();
        let (same, checked) = assert_greedy(name, &got, &want, &margins, NEAR_TIE);
        eprintln!(
            "{name}: {} prompt tokens, max |Δlogit| {max_err:.4}, greedy equal for {same}/{} tokens (checked {checked})",
            prompt.len(),
            want.len()
        );
        if checked == want.len() {
            full += 1;
        }
    }
    assert!(full >= 2, "cases without near-ties must match in full");
}
