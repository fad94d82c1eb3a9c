//! Architectures and weight formats against independent references:
//! - tiny random-weight Qwen2, Qwen3 and LLaMA (llama3 RoPE scaling) models, as GGUF and
//!   as HF safetensors twins, against llama.cpp's logits on the same weights;
//! - the default model converted to an HF F32 folder by `fixtures/gen/gguf_to_hf.py`,
//!   through the safetensors path, against transformers in exact f32;
//! - sharded safetensors load the same as a single file.

mod numerics;

use corvid_model::default_model::corvid_home;
use corvid_model::{load_model, LoadOptions};
use numerics::*;
use std::path::PathBuf;

/// The f16 KV cache moves these tiny models' logits by up to ~4e-3 (measured by the
/// fixture generator against llama.cpp's f32 cache); allow a little more.
const TINY_TOLERANCE: f32 = 1e-2;

#[test]
fn tiny_models_match_llama_cpp_in_both_formats() {
    for arch in ["qwen2", "qwen3", "llama"] {
        let dir = repo().join("fixtures/tiny");
        let reference = json(&dir.join(format!("{arch}.reference.json")));
        let gguf = load_model(&dir.join(format!("{arch}.gguf")), &LoadOptions::default()).unwrap();
        let hf = load_model(&dir.join(format!("{arch}-hf")), &LoadOptions::default()).unwrap();
        for case in reference["cases"].as_array().unwrap() {
            let name = format!("{arch}/{}", case["name"].as_str().unwrap());
            let input = ids(&case["input_ids"]);
            let want_logits: Vec<f32> =
                serde_json::from_value(case["last_logits"].clone()).unwrap();
            let want = ids(&case["greedy_ids"]);
            let margins: Vec<f32> = serde_json::from_value(case["greedy_margins"].clone()).unwrap();
            for (format, model) in [("gguf", &gguf), ("hf", &hf)] {
                let (logits, got) = run(model, &input, want.len(), &[]);
                let err = max_abs(&logits, &want_logits);
                assert!(
                    err < TINY_TOLERANCE,
                    "{name} ({format}): max abs logit error {err}"
                );
                assert_greedy(&format!("{name} ({format})"), &got, &want, &margins, 0.02);
            }
        }
    }
}

#[test]
fn default_model_through_safetensors_matches_transformers_f32() {
    let dir = std::env::var_os("CORVID_HF_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| corvid_home().join("models/smollm2-135m-hf-f32"));
    let model = load_model(&dir, &LoadOptions::default()).unwrap_or_else(|e| {
        panic!(
            "{e} — scripts/setup.sh converts the default model to {}",
            dir.display()
        )
    });
    let golden = json(&repo().join("fixtures/smollm2/golden.json"));
    let reference = json(&repo().join("fixtures/smollm2/hf_f32.json"));
    for (case, hf) in golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .zip(reference["cases"].as_array().unwrap())
    {
        let name = hf["name"].as_str().unwrap();
        assert_eq!(case["name"], hf["name"]);
        let prompt = ids(&case["prompt_ids"]);
        if prompt.len() > 200 {
            continue; // the 1k-token case is covered by the GGUF golden test
        }
        let want = ids(&hf["generated_ids"]);
        let want_logits = f32_file(
            &repo()
                .join("fixtures/smollm2")
                .join(hf["logits_file"].as_str().unwrap()),
        );
        let (logits, got) = run(&model, &prompt, want.len(), &[]);
        let err = max_abs(&logits, &want_logits);
        eprintln!("{name}: max |Δlogit| vs transformers f32 = {err:.4}");
        // Only the f16 KV cache separates corvid's F32 path from exact f32.
        assert!(err < 0.05, "{name}: max abs logit error {err}");
        let margins: Vec<f32> = serde_json::from_value(hf["step_margins"].clone()).unwrap();
        assert_greedy(name, &got, &want, &margins, 0.1);
    }
}

#[test]
fn sharded_safetensors_load_like_a_single_file() {
    use safetensors::tensor::{serialize_to_file, TensorView};
    let src = repo().join("fixtures/tiny/qwen2-hf");
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let dir = std::env::temp_dir().join(format!("corvid-sharded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut names: Vec<String> = st.names().into_iter().cloned().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let views: Vec<(String, TensorView<'_>)> = part
            .iter()
            .map(|n| (n.clone(), st.tensor(n).unwrap()))
            .collect();
        serialize_to_file(views, &None, &dir.join(shard)).unwrap();
        for n in part {
            weight_map.insert(n.clone(), shard.into());
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let single = load_model(&src, &LoadOptions::default()).unwrap();
    let sharded = load_model(&dir, &LoadOptions::default()).unwrap();
    let prompt = [1u32, 50, 100, 200, 7];
    assert_eq!(
        run(&single, &prompt, 6, &[]),
        run(&sharded, &prompt, 6, &[])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_time_quantization_stays_close_to_f32() {
    let src = repo().join("fixtures/tiny/llama-hf");
    let f32_model = load_model(&src, &LoadOptions::default()).unwrap();
    let prompt: Vec<u32> = (0..20).map(|i| 10 + i * 13).collect();
    let (want, _) = run(&f32_model, &prompt, 1, &[]);
    for q in ["q8_0", "q4_0", "q4_1"] {
        let model = load_model(
            &src,
            &LoadOptions {
                quantization: Some(q.parse().unwrap()),
            },
        )
        .unwrap();
        let (got, _) = run(&model, &prompt, 1, &[]);
        let err = max_abs(&got, &want);
        let bound = if q == "q8_0" { 0.05 } else { 0.5 };
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            err < bound * scale.max(1.0),
            "{q}: max abs logit error {err} vs f32 (logits up to {scale})"
        );
    }
}
