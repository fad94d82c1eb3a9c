//! Architectures and weight formats against independent references:
//! - tiny random-weight Qwen2, Qwen3 and LLaMA (llama3 RoPE scaling) models, as GGUF and
//!   as HF safetensors twins, against llama.cpp's logits on the same weights;
//! - a tiny random-weight GLM-4-0414 made by transformers, its safetensors against
//!   transformers and its GGUF (made by llama.cpp's converter) against llama.cpp;
//! - the default model converted to an HF F32 folder by `fixtures/gen/gguf_to_hf.py`,
//!   through the safetensors path, against transformers in exact f32;
//! - sharded safetensors load the same as a single file.

mod numerics;

use corvid_model::arch::Llama;
use corvid_model::default_model::{corvid_home, installed_or_skip};
use corvid_model::{load_model, LoadOptions};
use numerics::*;
use std::path::PathBuf;

/// The f16 KV cache moves these tiny models' logits by up to ~4e-3 (measured by the
/// fixture generator against llama.cpp's f32 cache); allow a little more.
const TINY_TOLERANCE: f32 = 1e-2;

/// How far corvid's log-probabilities on the tiny GLM-4's Q8_0 GGUF may be from llama.cpp's
/// on it, as a share of llama.cpp's own Q8_0-vs-F32 distance on the same prompt (0.28–0.45).
const Q8_0_SHARE: f32 = 0.5;

/// `fixtures/tiny/<name>` (a GGUF file or an HF folder), loaded as stored.
fn tiny(name: &str) -> Llama {
    load_model(
        &repo().join("fixtures/tiny").join(name),
        &LoadOptions::default(),
    )
    .unwrap()
}

#[test]
fn tiny_models_match_llama_cpp_in_both_formats() {
    for arch in ["qwen2", "qwen3", "llama"] {
        let reference = json(&repo().join(format!("fixtures/tiny/{arch}.reference.json")));
        let (gguf, hf) = (tiny(&format!("{arch}.gguf")), tiny(&format!("{arch}-hf")));
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

/// GLM-4 (`fixtures/gen/tiny_glm4.py`): partial interleaved RoPE, QKV bias, the post-norms
/// and the fused gate/up projection, in both of corvid's loaders. The safetensors run
/// against transformers, the F32 and Q8_0 GGUFs (llama.cpp's converter; the Q8_0 one splits
/// quantized rows) against llama.cpp on the same file. transformers and llama.cpp are 7e-3
/// apart in log-probability (llama.cpp's f16 KV cache and f16 rounding; corvid's cache is
/// f16 too); corvid must be within [`TINY_TOLERANCE`] of each, and its greedy tokens equal
/// theirs up to a near-tie. The Q8_0 file is held to [`Q8_0_SHARE`] of its own distance from
/// the F32 one instead: on the 33-token prompt corvid is 0.12 from llama.cpp there (2e-6 on
/// the shorter ones). Its prefixes are within 2e-6 up to 8 tokens and 0.04–0.14 from 9 on
/// (llama.cpp's AVX2 and AVX-512 builds agree bit for bit at every length): a last-bit
/// difference in attention over more than 8 keys, which rounding the activations to int8
/// amplifies in this random model (README, GLM-4 row).
#[test]
fn tiny_glm4_matches_transformers_and_llama_cpp() {
    let reference = json(&repo().join("fixtures/tiny/glm4.reference.json"));
    let hf = tiny("glm4-hf");
    let ggufs = [
        ("GGUF", tiny("glm4.gguf"), "llama_cpp", 0.0),
        (
            "Q8_0 GGUF",
            tiny("glm4.q8_0.gguf"),
            "llama_cpp_q8_0",
            Q8_0_SHARE,
        ),
    ];
    for case in reference["cases"].as_array().unwrap() {
        let name = format!("glm4/{}", case["name"].as_str().unwrap());
        let input = ids(&case["input_ids"]);
        let t = &case["transformers"];
        let want = ids(&t["greedy_ids"]);
        let (logits, got) = run(&hf, &input, want.len(), &[]);
        let err = max_abs(&logits, &floats(&t["last_logits"]));
        eprintln!("{name}: safetensors vs transformers max |Δlogit| {err:.2e}");
        assert!(
            err < TINY_TOLERANCE,
            "{name}: safetensors logits {err} from transformers'"
        );
        let margins = floats(&t["greedy_margins"]);
        assert_greedy(
            &format!("{name} (safetensors)"),
            &got,
            &want,
            &margins,
            0.02,
        );
        for (form, model, key, share) in &ggufs {
            let l = &case[key];
            let quantization = case["max_abs_logprob_diff_q8_0"].as_f64().unwrap() as f32;
            let bound = TINY_TOLERANCE.max(share * quantization);
            let want = ids(&l["greedy_ids"]);
            let (logits, got) = run(model, &input, want.len(), &[]);
            let err = max_abs(&log_softmax(&logits), &floats(&l["last_logprobs"]));
            eprintln!("{name}: {form} vs llama.cpp max |Δlogp| {err:.2e} (bound {bound:.2e})");
            assert!(
                err < bound,
                "{name}: {form} log-probabilities {err} from llama.cpp's"
            );
            let margins = floats(&l["greedy_margins"]);
            assert_greedy(&format!("{name} ({form})"), &got, &want, &margins, 0.02);
        }
    }
}

#[test]
fn default_model_through_safetensors_matches_transformers_f32() {
    let dir = std::env::var_os("CORVID_HF_MODEL")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| corvid_home().join("models/smollm2-135m-hf-f32"));
    let Some(dir) = installed_or_skip(
        "default_model_through_safetensors_matches_transformers_f32",
        dir,
    ) else {
        return;
    };
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
                ..LoadOptions::default()
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

/// The K-quants at load (`--quantization q4_k|q5_k`) on a model whose rows are 256 long:
/// both stay near the f32 model, and the 5-bit one nearer than the 4-bit one (about half
/// the step, so well under the 4-bit error).
#[test]
fn load_time_k_quants_stay_close_to_f32() {
    let src = repo().join("fixtures/tiny/llama256-hf");
    let f32_model = load_model(&src, &LoadOptions::default()).unwrap();
    let prompt: Vec<u32> = (0..20).map(|i| 10 + i * 13).collect();
    let (want, _) = run(&f32_model, &prompt, 1, &[]);
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = |q: &str| {
        let options = LoadOptions {
            quantization: Some(q.parse().unwrap()),
            ..LoadOptions::default()
        };
        let (got, _) = run(&load_model(&src, &options).unwrap(), &prompt, 1, &[]);
        max_abs(&got, &want)
    };
    let (e4, e5) = (err("q4_k"), err("q5_k"));
    eprintln!("llama256 at load: max |Δlogit| vs f32 q4_k {e4:.4}, q5_k {e5:.4} (logits up to {scale:.1})");
    assert!(e4 < 0.5 * scale.max(1.0), "q4_k: {e4}");
    assert!(e5 < 0.7 * e4, "q5_k {e5} not below q4_k {e4}");
}

/// llama.cpp's Q4_K_M quantization of `llama256` (Q4_K matrices natively, its Q6_K ones
/// requantized to Q8_0) against llama.cpp's logits on the same file.
///
/// Tolerance: llama.cpp's own Q4_K_M logits differ from its F32 model's by 4.0–5.2
/// (logit range ≈ ±30, recorded as `max_abs_diff_vs_f32_model`). corvid shares the Q4_K
/// and Q6_K weights bit for bit and multiplies both against Q8_K activations rounded the
/// same way; on the F32 model corvid and llama.cpp differ by ≤ 0.01 (f16 KV cache,
/// summation order), also checked here. Measured on Q4_K_M: 0.44, 0.53, 0.45 when corvid
/// requantized the Q6_K tensors (output, half of attn_v/ffn_down) to Q8_0
/// (2026-11-28); 0.38, 0.43, 0.48 with them native (2026-11-30) — about 10% of
/// llama.cpp's own quantization error, so the Q6_K requantization was not the main
/// source; not yet attributed term by term. Bound: 0.8 (1.5× the largest measured, 15%
/// of llama.cpp's quantization error); greedy decoding must agree up to the first
/// near-tie.
#[test]
fn q4_k_m_gguf_matches_llama_cpp() {
    let reference = json(&repo().join("fixtures/tiny/llama256.reference.json"));
    let (model, f32_model) = (tiny("llama256.q4_k_m.gguf"), tiny("llama256-hf"));
    for case in reference["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let f32_ref: Vec<f32> =
            serde_json::from_value(case["f32_model_last_logits"].clone()).unwrap();
        let (f32_logits, _) = run(&f32_model, &ids(&case["input_ids"]), 1, &[]);
        let base = max_abs(&f32_logits, &f32_ref);
        let input = ids(&case["input_ids"]);
        let want_logits: Vec<f32> = serde_json::from_value(case["last_logits"].clone()).unwrap();
        let want = ids(&case["greedy_ids"]);
        let margins: Vec<f32> = serde_json::from_value(case["greedy_margins"].clone()).unwrap();
        let (logits, got) = run(&model, &input, want.len(), &[]);
        let err = max_abs(&logits, &want_logits);
        let own = case["max_abs_diff_vs_f32_model"].as_f64().unwrap();
        eprintln!(
            "llama256 Q4_K_M {name}: max |Δlogit| vs llama.cpp = {err:.4} \
             (F32 model, corvid vs llama.cpp: {base:.4}; llama.cpp Q4_K_M vs its F32: {own:.3})"
        );
        assert!(base < 0.05, "{name}: F32 model differs by {base}");
        assert!(err < 0.8, "{name}: max abs logit error {err}");
        assert_greedy(name, &got, &want, &margins, 0.05);
    }
}

/// The Q4_K_M file's Q6_K matrices load as Q6_K (not requantized), and their rows are
/// exactly the values ggml's dequantization gives for the stored bytes.
#[test]
fn q6_k_matrices_load_natively_with_their_exact_values() {
    use corvid_kernels::quant::dequantize;
    use corvid_kernels::GgmlType;
    use corvid_model::weights::convert::to_matrix;
    use corvid_model::weights::TensorSource;
    let dir = repo().join("fixtures/tiny");
    let gguf = corvid_model::gguf::GgufFile::open(dir.join("llama256.q4_k_m.gguf")).unwrap();
    let mut checked = 0;
    for (name, info) in &gguf.tensors {
        if info.ty != GgmlType::Q6K {
            continue;
        }
        let raw = gguf.require(name).unwrap();
        let (cols, rows) = (raw.dims[0], raw.dims[1]);
        let m = to_matrix(&raw, rows, cols, None).unwrap();
        assert!(m.format().starts_with("Q6_K"), "{name}: {}", m.format());
        let row_bytes = cols / 256 * 210;
        let (mut got, mut want) = (vec![0.0; cols], vec![0.0; cols]);
        for r in [0, 1, rows / 2, rows - 1] {
            m.row_f32(r, &mut got);
            dequantize(
                GgmlType::Q6K,
                &raw.data[r * row_bytes..(r + 1) * row_bytes],
                &mut want,
            );
            assert_eq!(got, want, "{name} row {r}");
        }
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} Q6_K tensors");
}

/// corvid's Q4_K quantizer (`--quantization q4_k`) reproduces llama.cpp's blocks: the
/// HF twin holds the same (f16-exact) values llama.cpp quantized, so every Q4_K tensor
/// of the Q4_K_M file whose rows are not permuted (all but attn_q/attn_k) must come out
/// byte for byte the same.
#[test]
fn q4_k_quantizer_reproduces_llama_cpp_blocks() {
    use corvid_kernels::quant::quantize::quantize_weight_q4_k;
    use corvid_kernels::GgmlType;
    use corvid_model::weights::convert::to_f32;
    use corvid_model::weights::{SafetensorsDir, TensorSource};
    let dir = repo().join("fixtures/tiny");
    let gguf = corvid_model::gguf::GgufFile::open(dir.join("llama256.q4_k_m.gguf")).unwrap();
    let hf = SafetensorsDir::open(&dir.join("llama256-hf")).unwrap();
    let (mut tensors, mut blocks, mut same) = (0, 0, 0);
    for (name, info) in &gguf.tensors {
        if info.ty != GgmlType::Q4K || name.contains("attn_q") || name.contains("attn_k") {
            continue;
        }
        let x = to_f32(&hf.require(name).unwrap()).unwrap();
        let ours = quantize_weight_q4_k(&x);
        let theirs = gguf.tensor_data(info);
        assert_eq!(theirs.len(), ours.len() * 144, "{name}");
        for (i, b) in ours.iter().enumerate() {
            let mut bytes = Vec::with_capacity(144);
            bytes.extend_from_slice(&b.d.to_le_bytes());
            bytes.extend_from_slice(&b.dmin.to_le_bytes());
            bytes.extend_from_slice(&b.scales);
            bytes.extend_from_slice(&b.qs);
            same += usize::from(bytes == theirs[i * 144..(i + 1) * 144]);
        }
        tensors += 1;
        blocks += ours.len();
    }
    eprintln!("{same} of {blocks} Q4_K blocks in {tensors} tensors byte-identical to llama.cpp's");
    assert!(tensors >= 5, "only {tensors} Q4_K tensors compared");
    assert_eq!(same, blocks, "Q4_K blocks differing from llama.cpp's");
}

/// `--quantization q4_k` on the HF twin stays as close to the F32 model as llama.cpp's
/// Q4_K_M is to its own F32 model (4.0–5.2 on these logits, range ≈ ±30; Q4_K for every
/// matrix, output included, is a little coarser than Q4_K_M, hence 1.5×).
#[test]
fn q4_k_load_quantization_stays_close_to_f32() {
    let dir = repo().join("fixtures/tiny");
    let reference = json(&dir.join("llama256.reference.json"));
    let src = dir.join("llama256-hf");
    let f32_model = load_model(&src, &LoadOptions::default()).unwrap();
    let q = load_model(
        &src,
        &LoadOptions {
            quantization: Some("q4_k".parse().unwrap()),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    for case in reference["cases"].as_array().unwrap() {
        let input = ids(&case["input_ids"]);
        let own = case["max_abs_diff_vs_f32_model"].as_f64().unwrap() as f32;
        let (want, _) = run(&f32_model, &input, 1, &[]);
        let (got, _) = run(&q, &input, 1, &[]);
        let err = max_abs(&got, &want);
        eprintln!(
            "llama256 q4_k {}: max |Δlogit| vs f32 = {err:.3} (llama.cpp Q4_K_M vs F32: {own:.3})",
            case["name"]
        );
        assert!(err < 1.5 * own, "{}: {err}", case["name"]);
    }
}
