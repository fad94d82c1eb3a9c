//! Gemma 3 270M (Q4_K_M GGUF) against llama.cpp on the same file
//! (`fixtures/gemma3/golden.json`, made by `fixtures/gen/golden_gemma3.py` with
//! llama-server): the tokenizer's ids, then every greedy step of every case teacher-forced
//! (llama.cpp's tokens fed back, so one near-tie cannot decide the outcome), compared as
//! log-probabilities over llama.cpp's top tokens, and free-running greedy tokens up to
//! llama.cpp's first near-tie.
//!
//! There is no exact-f32 reference for this model, so the bounds come from llama.cpp
//! itself: its AVX2 build (`golden.json`, the reference) and its AVX-512 build
//! (`golden_avx512.json`, same script, same flags) already disagree on this small,
//! sharp model by a mean 0.15 in log-probability and by up to 0.74 in a top-1/top-2 gap
//! (their greedy texts part within a few tokens on half the prompts). corvid may be at
//! most [`FACTOR`] times (the worst single token [`WORST_FACTOR`] times) as far from the reference as the other llama.cpp build is. corvid
//! runs the file's Q5_0 matrices as Q8_0 with the same scales and values (an exact
//! rewrite; llama.cpp runs them natively), so the weights agree bit for bit and these
//! bounds admit only summation order and activation rounding. A wrong layer (a missing
//! norm, the wrong RoPE base, a window off by one) moves logits by whole units.

mod numerics;

use corvid_kernels::ops::argmax;
use corvid_model::default_model::{gemma_model_path, installed_or_skip};
use corvid_model::{load_model, load_tokenizer, LoadOptions};
use numerics::*;

/// How many times llama.cpp's build-to-build mean distance corvid may be from the
/// reference (measured 2026-11-30: 1.15x on the AVX-512 tier).
const FACTOR: f64 = 1.5;

/// The same for the worst top-4 token of any step. Wider: corvid is compared on all 240
/// teacher-forced steps, the two builds only on the 164 before they part, so the builds'
/// maximum is taken over fewer, shorter contexts (measured 2026-11-30: 1.84x, in
/// long_window; with the window one position wider it is 1.63x, with no window the
/// greedy tokens go wrong at step 0).
const WORST_FACTOR: f64 = 2.5;

/// One llama.cpp step: the token it chose and its top tokens' log-probabilities.
struct Step {
    token: u32,
    top: Vec<(u32, f32)>,
}

impl Step {
    fn margin(&self) -> f32 {
        self.top[0].1 - self.top[1].1
    }
}

fn steps(case: &serde_json::Value) -> Vec<Step> {
    case["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Step {
            token: s["token"].as_u64().unwrap() as u32,
            top: s["top"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_f64().unwrap() as f32))
                .collect(),
        })
        .collect()
}

/// Distances between two step lists over the same prompt, while they decode the same
/// tokens: per-step mean |Δlogp| over the tokens both list, the worst |Δlogp| of a top-4
/// token, and the top-1/top-2 gap noise (|Δgap| on shared steps; at the step where they
/// part, how far the first's token is behind in the second plus its own gap).
fn distances(a: &[Step], b: &[Step]) -> (Vec<f64>, f64, Vec<f32>) {
    let (mut means, mut worst, mut gaps) = (Vec::new(), 0.0f64, Vec::new());
    for (sa, sb) in a.iter().zip(b) {
        let of = |s: &Step, id: u32| s.top.iter().find(|t| t.0 == id).map(|t| t.1);
        let d: Vec<f64> = sa
            .top
            .iter()
            .filter_map(|&(id, l)| of(sb, id).map(|m| (l - m).abs() as f64))
            .collect();
        means.push(d.iter().sum::<f64>() / d.len() as f64);
        for &(id, l) in sa.top.iter().take(4) {
            if let Some(m) = of(sb, id) {
                worst = worst.max((l - m).abs() as f64);
            }
        }
        if sa.token != sb.token {
            let last = sb.top.last().unwrap().1;
            gaps.push(sa.margin() + sb.top[0].1 - of(sb, sa.token).unwrap_or(last));
            break;
        }
        gaps.push((sa.margin() - sb.margin()).abs());
    }
    (means, worst, gaps)
}

#[test]
fn gemma3_matches_llama_cpp() {
    let golden = json(&repo().join("fixtures/gemma3/golden.json"));
    let Some(path) = installed_or_skip("gemma3_matches_llama_cpp", gemma_model_path()) else {
        return;
    };
    eprintln!("kernel tier: {}", corvid_kernels::isa::isa());
    let tok = load_tokenizer(&path).unwrap();
    for t in golden["tokenizer"].as_array().unwrap() {
        let text = t["text"].as_str().unwrap();
        assert_eq!(
            tok.encode(text, false, true).unwrap(),
            ids(&t["ids"]),
            "token ids of {text:?} differ from llama.cpp's"
        );
    }
    // Calibration: llama.cpp's AVX2 build against its AVX-512 build.
    let other = json(&repo().join("fixtures/gemma3/golden_avx512.json"));
    let (mut calib_means, mut calib_worst, mut gaps) = (Vec::new(), 0.0f64, Vec::new());
    for (a, b) in golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .zip(other["cases"].as_array().unwrap())
    {
        let (m, w, g) = distances(&steps(a), &steps(b));
        calib_means.extend(m);
        calib_worst = calib_worst.max(w);
        gaps.extend(g);
    }
    let calib_mean = calib_means.iter().sum::<f64>() / calib_means.len() as f64;
    let noise = gaps.iter().copied().fold(0.0f32, f32::max);
    // corvid and llama.cpp each stray from the truth by up to the noise: their argmaxes
    // may part only below twice it.
    let near_tie = 2.0 * noise;
    eprintln!(
        "llama.cpp AVX2 vs AVX-512 builds: mean |Δlogp| {calib_mean:.4} over {} steps, worst top-4 |Δlogp| {calib_worst:.4}, top-2 gap noise max {noise:.3}",
        calib_means.len()
    );

    let model = load_model(&path, &LoadOptions::default()).unwrap();
    let eog = tok.eos_token_ids();
    let (mut all_means, mut worst, mut flips) = (Vec::new(), 0.0f64, Vec::new());
    for case in golden["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let prompt_text = case["prompt"].as_str().unwrap();
        let prompt = ids(&case["prompt_ids"]);
        assert_eq!(
            tok.encode(prompt_text, !prompt_text.starts_with("<bos>"), true)
                .unwrap(),
            prompt,
            "{name}: prompt ids differ from llama.cpp's"
        );
        let want = steps(case);
        let tokens: Vec<u32> = want.iter().map(|s| s.token).collect();
        let logits = teacher_forced(&model, &prompt, &tokens);
        // corvid's teacher-forced steps as the same top lists (the reference's tokens).
        let got: Vec<Step> = logits
            .iter()
            .zip(&want)
            .map(|(l, s)| {
                let lp = log_softmax(l);
                let mut top: Vec<(u32, f32)> =
                    s.top.iter().map(|&(id, _)| (id, lp[id as usize])).collect();
                top.sort_by(|x, y| y.1.total_cmp(&x.1));
                Step {
                    token: s.token,
                    top,
                }
            })
            .collect();
        let (means, case_worst, _) = distances(&want, &got);
        for (i, (l, s)) in logits.iter().zip(&want).enumerate() {
            if s.margin() >= near_tie && argmax(l) != s.token {
                flips.push(format!("{name} step {i}"));
            }
        }
        let margins: Vec<f32> = want.iter().map(Step::margin).collect();
        let (_, greedy) = run(&model, &prompt, tokens.len(), eog);
        let (same, checked) = assert_greedy(name, &greedy, &tokens, &margins, near_tie);
        eprintln!(
            "{name:<16} {:>5} prompt tokens: mean |Δlogp| {:.4}, worst top-4 |Δlogp| {case_worst:.4}, free-running greedy equal for {same}/{} (checked {checked})",
            prompt.len(),
            means.iter().sum::<f64>() / means.len() as f64,
            tokens.len()
        );
        all_means.extend(means);
        worst = worst.max(case_worst);
    }
    let mean = all_means.iter().sum::<f64>() / all_means.len() as f64;
    eprintln!(
        "corvid vs llama.cpp over {} teacher-forced steps: mean |Δlogp| {mean:.4} (bound {:.4}), worst top-4 |Δlogp| {worst:.4} (bound {:.4})",
        all_means.len(),
        FACTOR * calib_mean,
        WORST_FACTOR * calib_worst
    );
    assert!(
        flips.is_empty(),
        "argmax differs from llama.cpp's where its top-2 gap is above {near_tie}: {flips:?}"
    );
    assert!(
        mean <= FACTOR * calib_mean,
        "mean |Δlogp| {mean} above the bound"
    );
    assert!(
        worst <= WORST_FACTOR * calib_worst,
        "worst |Δlogp| {worst} above the bound"
    );
}
