//! GPTQ and AWQ checkpoints against an independent reference (`fixtures/gen/gptq_awq.py`: a
//! numpy packer and dequantizer following AutoGPTQ's, GPTQModel's and AutoAWQ's published
//! layouts):
//! - one layer per variant (`fixtures/gptq_awq/<case>`): corvid's loaded blocks, decoded,
//!   equal the reference dequantization exactly where the block format holds the layer,
//!   and within the stated bound elsewhere (Q4_1's f16 minimum, Q8_0 requantization);
//! - a tiny LLaMA packed both ways (`fixtures/tiny/llama-{gptq,awq}`): logits against
//!   transformers on the dequantized weights;
//! - unsupported configs are refused with the field and value named.

mod numerics;

use corvid_model::weights::{SafetensorsDir, TensorSource};
use corvid_model::{load_model, LoadOptions};
use numerics::*;
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

fn cases_dir() -> PathBuf {
    repo().join("fixtures/gptq_awq")
}

fn f32_tensor(st: &SafeTensors<'_>, name: &str) -> Vec<f32> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn layers_match_the_independent_dequantization() {
    let cases = json(&cases_dir().join("cases.json"));
    let cases = cases.as_object().unwrap();
    assert_eq!(cases.len(), 12);
    for (name, case) in cases {
        let dir = cases_dir().join(name);
        let (rows, cols) = (
            case["rows"].as_u64().unwrap() as usize,
            case["cols"].as_u64().unwrap() as usize,
        );
        let src = SafetensorsDir::open(&dir).unwrap();
        let m = src
            .matrix("blk.0.attn_q.weight", rows, cols, None)
            .unwrap()
            .unwrap();
        let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (want, bound) = (f32_tensor(&st, "weight"), f32_tensor(&st, "bound"));
        let mut got = vec![0.0; rows * cols];
        for (r, row) in got.chunks_exact_mut(cols).enumerate() {
            m.row_f32(r, row);
        }
        let worst = got
            .iter()
            .zip(&want)
            .zip(&bound)
            .map(|((g, w), b)| {
                assert!(
                    (g - w).abs() <= *b,
                    "{name}: {g} vs reference {w} (bound {b})"
                );
                (g - w).abs()
            })
            .fold(0.0, f32::max);
        // The format corvid chose: Q4_0 may run as Q4_1 on packed kernel tiers (exactly).
        let format = case["format"].as_str().unwrap();
        let family = &format[..4];
        let ok = m.format().starts_with(family)
            || (family == "Q4_0" && m.format().starts_with("Q4_1 (packed"));
        assert!(ok, "{name}: loaded as {}, expected {format}", m.format());
        let exact = bound.iter().all(|&b| b == 0.0);
        assert_eq!(
            exact,
            format == "Q4_0" || format == "Q8_0",
            "{name}: {format}"
        );
        eprintln!(
            "{name}: {} , max |Δ| {worst:.2e} (max bound {:.2e})",
            m.format(),
            bound.iter().copied().fold(0.0, f32::max)
        );
    }
}

/// How far corvid's logits on the packed tiny LLaMAs may be from transformers' on the
/// dequantized weights. corvid multiplies the Q4_1 weights by activations quantized to
/// 8 bits (Q8_1) where transformers multiplies in f32, and in a model this small (rows of
/// 64 and 128) that rounding does not average out: measured 0.18–0.25 here (logits span
/// ±13). It is not the weights' doing: the same dequantized weights saved as an f32 folder
/// load within 6e-3 of transformers, and corvid's own `--quantization q8_0` of that folder
/// is 0.19–0.33 away.
const PACKED_TOLERANCE: f32 = 0.3;

#[test]
fn tiny_llama_gptq_and_awq_match_transformers() {
    for kind in ["gptq", "awq"] {
        let reference = json(&repo().join(format!("fixtures/tiny/llama-{kind}.reference.json")));
        let model = load_model(
            &repo().join(format!("fixtures/tiny/llama-{kind}")),
            &LoadOptions::default(),
        )
        .unwrap();
        for case in reference["cases"].as_array().unwrap() {
            let name = format!("llama-{kind}/{}", case["name"].as_str().unwrap());
            let want = ids(&case["greedy_ids"]);
            let (logits, got) = run(&model, &ids(&case["input_ids"]), want.len(), &[]);
            let err = max_abs(&logits, &floats(&case["last_logits"]));
            eprintln!(
                "{name}: max |Δlogit| {err:.2e} from transformers on the dequantized weights"
            );
            assert!(
                err < PACKED_TOLERANCE,
                "{name}: logits {err} from transformers'"
            );
            let margins = floats(&case["greedy_margins"]);
            let (same, checked) =
                assert_greedy(&name, &got, &want, &margins, 2.0 * PACKED_TOLERANCE);
            eprintln!(
                "{name}: greedy {same} of {} equal, {checked} before a near-tie",
                want.len()
            );
        }
    }
}

/// A copy of a case folder with its config's `quantization_config` replaced.
fn with_config(case: &str, config: serde_json::Value, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("corvid-gptq-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        cases_dir().join(case).join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let text = serde_json::json!({ "quantization_config": config }).to_string();
    std::fs::write(dir.join("config.json"), text).unwrap();
    dir
}

fn open_error(dir: &Path) -> String {
    let err = match SafetensorsDir::open(dir) {
        Err(e) => e.to_string(),
        Ok(src) => match src.matrix("blk.0.attn_q.weight", 8, 256, None) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{}: loaded, should be refused", dir.display()),
        },
    };
    std::fs::remove_dir_all(dir).unwrap();
    err
}

#[test]
fn unsupported_variants_are_refused_naming_the_field() {
    use serde_json::json;
    let gptq = "gptq-4bit-g64-asym";
    let cases = [
        (
            json!({"quant_method": "gptq", "bits": 3, "group_size": 64}),
            "quantization_config.bits = 3",
        ),
        (
            json!({"quant_method": "gptq", "bits": 4, "group_size": 64, "checkpoint_format": "marlin"}),
            "quantization_config.checkpoint_format = \"marlin\"",
        ),
        (
            json!({"quant_method": "awq", "bits": 4, "group_size": 64, "version": "gemv"}),
            "quantization_config.version = \"gemv\"",
        ),
        // The right method but the wrong group size: the scales' shape gives it away.
        (
            json!({"quant_method": "gptq", "bits": 4, "group_size": 32}),
            "scales has shape [4, 8]: 256 input columns in groups of 32 make 8 groups",
        ),
        // GPTQ tensors read as AWQ: the packed shapes do not fit.
        (
            json!({"quant_method": "awq", "bits": 4, "group_size": 64}),
            "AWQ layers have no g_idx",
        ),
    ];
    for (i, (config, want)) in cases.into_iter().enumerate() {
        let err = open_error(&with_config(gptq, config.clone(), &i.to_string()));
        assert!(err.contains(want), "{config}: {err}");
    }
    // Packed tensors with no quantization_config at all.
    let dir = with_config(gptq, serde_json::Value::Null, "none");
    let err = open_error(&dir);
    assert!(
        err.contains("model.layers.0.self_attn.q_proj.qweight")
            && err.contains("quantization_config"),
        "{err}"
    );
}

/// GLM-4 reads its fused `gate_up_proj` as one tensor and splits its rows; corvid does not
/// split packed layers, so a packed one is refused with its name, not reported missing.
#[test]
fn a_packed_fused_projection_is_refused_naming_it() {
    let case = "gptq-4bit-g64-asym";
    let dir = with_config(
        case,
        json(&cases_dir().join(case).join("config.json"))["quantization_config"].clone(),
        "fused",
    );
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let renamed = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name.replace("self_attn.q_proj", "mlp.gate_up_proj"), view));
    let fused = safetensors::serialize(renamed, &None).unwrap();
    std::fs::write(dir.join("model.safetensors"), fused).unwrap();
    let src = SafetensorsDir::open(&dir).unwrap();
    let err = match src.get("blk.0.ffn_up.weight") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a packed gate_up_proj should be refused"),
    };
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        err.contains("model.layers.0.mlp.gate_up_proj") && err.contains("packed"),
        "{err}"
    );
}
