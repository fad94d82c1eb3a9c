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
/// On the first step of these prompts, the gap between llama.cpp's top two tokens
/// differs between corvid and llama.cpp by up to 0.28 (0.34 with kernel variants tried
/// while developing; the test prints it), so a smaller gap is a coin flip between two
/// equally valid implementations.
const NEAR_TIE: f32 = 0.35;

/// Cases whose 32 greedy tokens (or all tokens up to EOS) must equal llama.cpp's, and
/// the prompt categories that must be among them (issue #2's acceptance).
const MIN_FULL_MATCHES: usize = 8;
const REQUIRED_CATEGORIES: [&str; 5] = ["plain", "chat", "chinese", "code", "long"];

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
    let (mut full, mut full_categories, mut worst_gap_err) = (Vec::new(), Vec::new(), 0.0f32);
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
        let (a, b) = (theirs6[0] as usize, theirs6[1] as usize);
        let gap_err = ((logits[a] - logits[b]) - (ref_logits[a] - ref_logits[b])).abs();
        worst_gap_err = worst_gap_err.max(gap_err);

        let margins: Vec<f32> = serde_json::from_value(case["step_margins"].clone()).unwrap();
        let (same, checked) = assert_greedy(name, &got, &want, &margins, NEAR_TIE);
        eprintln!(
            "{name}: {} prompt tokens, max |Δlogit| {max_err:.4}, top-2 gap error {gap_err:.4}, greedy equal for {same}/{} tokens (checked {checked})",
            prompt.len(),
            want.len()
        );
        if same == want.len() {
            full.push(name.to_string());
            full_categories.push(case["category"].as_str().unwrap().to_string());
        }
    }
    eprintln!(
        "{} of {} cases equal in full: {full:?}; worst first-step top-2 gap error {worst_gap_err:.4}",
        full.len(),
        cases.len()
    );
    assert!(
        full.len() >= MIN_FULL_MATCHES,
        "only {} cases match llama.cpp's greedy tokens in full: {full:?}",
        full.len()
    );
    for c in REQUIRED_CATEGORIES {
        assert!(
            full_categories.iter().any(|f| f == c),
            "no {c} prompt matches in full"
        );
    }
}
