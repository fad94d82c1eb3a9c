//! The default model against two references, teacher-forced: every step of every case of
//! `fixtures/smollm2/golden.json` is compared, with the reference's own tokens fed back,
//! so one early near-tie cannot decide the outcome.
//!
//! - **Primary: the exact-weights f32 evaluation** (`fixtures/smollm2/f32_reference.*`,
//!   numpy on the dequantized GGUF weights, checked against transformers). It does not
//!   depend on the machine, so the same thresholds hold on every CPU and kernel tier.
//! - **Secondary: llama.cpp** (`golden.json`, one build on one machine). llama.cpp is not
//!   a fixed point — its AVX2 and AVX-512 builds decode 10 of these 19 cases differently
//!   (`fixtures/smollm2/llamacpp_builds.json`) — so it gets
//!   the weaker checks: argmax agreement above a wider noise bound, first-step logits,
//!   and free-running greedy tokens up to its first near-tie.
//!
//! The noise bound is measured, not tuned: how far a correct quantized implementation
//! (llama.cpp: Q4_1 weights, Q8 activations, f16 KV, like corvid) moves the top-2 margin
//! away from the exact one, over all steps where the two decode the same context. The
//! test prints that distribution, corvid's own, and corvid's tier-to-tier differences.

mod numerics;

use corvid_kernels::ops::argmax;
use corvid_model::default_model::{default_model_path, installed_or_skip};
use corvid_model::{load_model, LoadOptions};
use numerics::*;
use std::path::{Path, PathBuf};

/// corvid may be at most this many times further from the exact reference than
/// llama.cpp is, wherever the two can be compared like for like: means over the 19
/// first steps (the only steps with llama.cpp's full logits) of the mean and of the
/// worst |Δlogit| and of the KL, all-step means against llama.cpp's first-step means,
/// and the quantiles of the top-2 margin error. Means, not maxima: one sensitive prompt
/// (chat_system) dominates any maximum over 19 cases, for llama.cpp as for corvid.
/// Measured on 2026-11-29: corvid at 0.7-1.1x llama.cpp's distance; broken kernels far out.
const ABS_FACTOR: f64 = 1.5;

/// The same for KL divergences, which grow with the square of a logit error.
const KL_FACTOR: f64 = ABS_FACTOR * ABS_FACTOR;

/// Caps on the worst step of all (565 steps; llama.cpp's full logits exist only for the
/// 19 first steps, so its worst step cannot calibrate these). Measured on the SIMD tiers:
/// 1.54 and 0.105, both in english_facts, whose exact top-2 margin falls to 0.005.
const MAX_ABS_LOGIT_ERROR: f64 = 2.0;
const MAX_KL: f64 = 0.25;

/// Share of the noise-exempt steps (exact margin below the bound) on which corvid may
/// still pick another token than the exact reference (measured 7%). Above the bound it
/// must never.
const MAX_EXEMPT_FLIP_SHARE: f64 = 0.5;

fn fixtures() -> PathBuf {
    std::env::var_os("CORVID_GOLDEN_DIR")
        .map_or_else(|| repo().join("fixtures/smollm2"), PathBuf::from)
}

/// One greedy step of a reference: the token it chose, its top-1/top-2 margin, and
/// (for the f32 reference) its log-partition and top-k logits.
struct RefStep {
    token: u32,
    margin: f32,
    lse: f64,
    top: Vec<(u32, f32)>,
}

/// One case of a reference: prompt and greedy steps.
struct RefCase {
    name: String,
    category: String,
    prompt: Vec<u32>,
    steps: Vec<RefStep>,
}

/// The exact-f32 reference, joined with golden.json's prompts.
fn f32_reference(golden: &serde_json::Value) -> Vec<RefCase> {
    let meta = json(&fixtures().join("f32_reference.json"));
    let k = meta["top_k"].as_u64().unwrap() as usize;
    let bin = std::fs::read(fixtures().join(meta["topk_file"].as_str().unwrap())).unwrap();
    let mut records = bin.chunks_exact(8).map(|r| {
        (
            u32::from_le_bytes(r[..4].try_into().unwrap()),
            f32::from_le_bytes(r[4..].try_into().unwrap()),
        )
    });
    let golden_cases = golden["cases"].as_array().unwrap();
    let cases: Vec<RefCase> = meta["cases"]
        .as_array()
        .unwrap()
        .iter()
        .zip(golden_cases)
        .map(|(c, g)| {
            assert_eq!(
                c["name"], g["name"],
                "f32 reference and golden.json disagree"
            );
            let margins: Vec<f32> = serde_json::from_value(c["step_margins"].clone()).unwrap();
            let lse: Vec<f64> = serde_json::from_value(c["step_lse"].clone()).unwrap();
            let steps = ids(&c["generated_ids"])
                .into_iter()
                .zip(margins)
                .zip(lse)
                .map(|((token, margin), lse)| RefStep {
                    token,
                    margin,
                    lse,
                    top: records.by_ref().take(k).collect(),
                })
                .collect();
            RefCase {
                name: c["name"].as_str().unwrap().into(),
                category: g["category"].as_str().unwrap().into(),
                prompt: ids(&g["prompt_ids"]),
                steps,
            }
        })
        .collect();
    assert!(records.next().is_none(), "top-k file longer than its index");
    cases
}

/// llama.cpp's greedy steps (tokens and margins only) from golden.json.
fn llama_reference(golden: &serde_json::Value) -> Vec<RefCase> {
    golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let margins: Vec<f32> = serde_json::from_value(g["step_margins"].clone()).unwrap();
            RefCase {
                name: g["name"].as_str().unwrap().into(),
                category: g["category"].as_str().unwrap().into(),
                prompt: ids(&g["prompt_ids"]),
                steps: ids(&g["generated_ids"])
                    .into_iter()
                    .zip(margins)
                    .map(|(token, margin)| RefStep {
                        token,
                        margin,
                        lse: f64::NAN,
                        top: Vec::new(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The reference's greedy tokens of a case.
fn tokens_of(case: &RefCase) -> Vec<u32> {
    case.steps.iter().map(|s| s.token).collect()
}

/// log Σ exp over all logits, in f64.
fn logsumexp(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    max + logits
        .iter()
        .map(|&l| (l as f64 - max).exp())
        .sum::<f64>()
        .ln()
}

/// How one step of corvid's logits compares with an exact-f32 reference step.
#[derive(Clone, Copy)]
struct StepDiff {
    /// Mean and max |Δlogit| over the reference's top-k tokens.
    mean_abs: f64,
    max_abs: f64,
    /// KL(p_ref ‖ p_corvid) over the top-k tokens plus one bucket for the rest (a lower
    /// bound of the full KL, exact when the rest holds little mass).
    kl: f64,
}

fn step_diff(logits: &[f32], r: &RefStep) -> StepDiff {
    let lse = logsumexp(logits);
    let (mut sum_abs, mut max_abs, mut kl, mut p_top, mut q_top) = (0.0, 0.0f64, 0.0, 0.0, 0.0);
    for &(id, l_ref) in &r.top {
        let l = logits[id as usize] as f64;
        let d = (l - l_ref as f64).abs();
        sum_abs += d;
        max_abs = max_abs.max(d);
        let (lp, lq) = (l_ref as f64 - r.lse, l - lse);
        kl += lp.exp() * (lp - lq);
        p_top += lp.exp();
        q_top += lq.exp();
    }
    let (p_rest, q_rest) = ((1.0 - p_top).max(0.0), (1.0 - q_top).max(1e-300));
    if p_rest > 0.0 {
        kl += p_rest * (p_rest / q_rest).ln();
    }
    StepDiff {
        mean_abs: sum_abs / r.top.len() as f64,
        max_abs,
        kl: kl.max(0.0),
    }
}

/// Corvid's margin between the reference's top two tokens, minus the reference's.
fn margin_error(logits: &[f32], r: &RefStep) -> f32 {
    let (a, b) = (r.top[0].0 as usize, r.top[1].0 as usize);
    ((logits[a] - logits[b]) - r.margin).abs()
}

/// Median, 95th and 99th percentile and maximum of `v`.
fn quantiles(v: &[f32]) -> [f32; 4] {
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    let q = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
    [q(0.5), q(0.95), q(0.99), q(1.0)]
}

fn show(q: [f32; 4]) -> String {
    format!(
        "median {:.3}, p95 {:.3}, p99 {:.3}, max {:.3}",
        q[0], q[1], q[2], q[3]
    )
}

/// The noise bound's samples: how far llama.cpp's top-2 margin is from the exact one on
/// every step where both decode the same context. Where both choose the same token that
/// is |Δmargin|; at the step where they part, llama.cpp's token `a` is behind the exact
/// top token `t` by `m_exact(t, a)` there, and ahead of everything by its own margin, so
/// the gap between the two moved by at least the sum of both.
fn quantized_margin_noise(llama: &[RefCase], exact: &[RefCase]) -> Vec<f32> {
    let mut samples = Vec::new();
    for (l, e) in llama.iter().zip(exact) {
        for (sl, se) in l.steps.iter().zip(&e.steps) {
            if sl.token == se.token {
                samples.push((sl.margin - se.margin).abs());
                continue;
            }
            let behind = se
                .top
                .iter()
                .find(|&&(id, _)| id == sl.token)
                .map_or(se.top[0].1 - se.top.last().unwrap().1, |&(_, logit)| {
                    se.top[0].1 - logit
                });
            samples.push(sl.margin + behind);
            break;
        }
    }
    samples
}

/// llama.cpp's step-0 distance from the exact reference (its full first-step logits
/// are committed): per case (mean |Δ|, max |Δ|, KL), the calibration of corvid's bounds.
fn llama_step0_distance(golden: &serde_json::Value, exact: &[RefCase]) -> Vec<StepDiff> {
    golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .zip(exact)
        .map(|(g, e)| {
            let logits = f32_file(&fixtures().join(g["logits_file"].as_str().unwrap()));
            step_diff(&logits, &e.steps[0])
        })
        .collect()
}

/// Where this tier's per-step margins are kept for the other tiers' runs to compare with.
fn tier_dump(tier: corvid_kernels::isa::Isa) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("golden-tiers")
        .join(format!("{tier}.json"))
}

/// Identifies this test build, so margins from an older build are not compared.
fn build_id() -> String {
    let exe = std::env::current_exe().unwrap();
    let meta = std::fs::metadata(&exe).unwrap();
    let mtime = meta.modified().unwrap();
    format!("{}:{:?}", meta.len(), mtime)
}

/// Records this tier's margins and returns the |Δmargin| samples against every other
/// tier already recorded by this build (test.sh runs each tier in turn).
fn cross_tier(margins: &[Vec<f32>]) -> Vec<(String, Vec<f32>)> {
    use corvid_kernels::isa::{isa, Isa};
    let me = isa();
    let record = serde_json::json!({"build": build_id(), "margins": margins});
    let path = tier_dump(me);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, record.to_string()).unwrap();
    let mut out = Vec::new();
    for other in Isa::ALL.into_iter().filter(|&t| t != me) {
        let Ok(text) = std::fs::read_to_string(tier_dump(other)) else {
            continue;
        };
        let theirs: serde_json::Value = serde_json::from_str(&text).unwrap();
        if theirs["build"] != build_id() {
            continue;
        }
        let theirs: Vec<Vec<f32>> = serde_json::from_value(theirs["margins"].clone()).unwrap();
        let d: Vec<f32> = margins
            .iter()
            .zip(&theirs)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .collect();
        out.push((format!("{me} vs {other}"), d));
    }
    out
}

/// Mean of an iterator of f64.
fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0), |(s, n), x| (s + x, n + 1));
    sum / n as f64
}

/// Maximum of an iterator of f64.
fn max(v: impl Iterator<Item = f64>) -> f64 {
    v.fold(0.0, f64::max)
}

/// Asserts `got <= bound`, printing both either way.
fn within(what: &str, got: f64, bound: f64) {
    eprintln!("  {what}: {got:.4} (bound {bound:.4})");
    assert!(got <= bound, "{what}: {got} above its bound {bound}");
}

#[test]
fn teacher_forced_logits_match_the_exact_f32_reference_and_llama_cpp() {
    let tier = corvid_kernels::isa::isa();
    let golden = json(&fixtures().join("golden.json"));
    let exact = f32_reference(&golden);
    let llama = llama_reference(&golden);
    let eog = ids(&golden["model"]["eog_token_ids"]);
    let Some(path) = installed_or_skip(
        "teacher_forced_logits_match_the_exact_f32_reference_and_llama_cpp",
        default_model_path(),
    ) else {
        return;
    };
    let model = load_model(&path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e} — install the default model with scripts/setup.sh"));

    // The noise bound and llama.cpp's distance from exact, from the committed references.
    let noise_samples = quantized_margin_noise(&llama, &exact);
    let noise = quantiles(&noise_samples);
    let bound = noise[3];
    let calib = llama_step0_distance(&golden, &exact);
    eprintln!("kernel tier: {tier}");
    eprintln!(
        "noise bound {bound:.3} = max |llama.cpp margin − exact margin| over {} shared-context steps ({})",
        noise_samples.len(),
        show(noise)
    );

    // Primary: teacher-forced against the exact f32 evaluation.
    let (mut step0, mut all) = (Vec::new(), Vec::new());
    let (mut strict_flips, mut exempt_steps, mut exempt_flips) = (0, 0, 0);
    let (mut margin_errs, mut tier_margins) = (Vec::new(), Vec::new());
    for case in &exact {
        let logits = teacher_forced(&model, &case.prompt, &tokens_of(case));
        let mut agree = 0;
        let mut margins = Vec::new();
        let diffs: Vec<StepDiff> = logits
            .iter()
            .zip(&case.steps)
            .map(|(l, r)| step_diff(l, r))
            .collect();
        for (step, (l, r)) in logits.iter().zip(&case.steps).enumerate() {
            let (a, b) = (r.top[0].0 as usize, r.top[1].0 as usize);
            margins.push(l[a] - l[b]);
            margin_errs.push(margin_error(l, r));
            let same = argmax(l) == r.token;
            agree += same as usize;
            if r.margin >= bound {
                if !same {
                    strict_flips += 1;
                    eprintln!(
                        "  {}: step {step} picks {} over the exact {} (margin {:.3}, above the noise bound)",
                        case.name,
                        argmax(l),
                        r.token,
                        r.margin
                    );
                }
            } else {
                exempt_steps += 1;
                exempt_flips += !same as usize;
            }
        }
        eprintln!(
            "{:<20} {:<7} {:>2} steps, argmax = exact on {agree:>2}, mean |Δ| {:.3}, max |Δ| {:.3}, mean KL {:.4}, max KL {:.4} (noise bound {bound:.3})",
            case.name,
            case.category,
            diffs.len(),
            mean(diffs.iter().map(|d| d.mean_abs)),
            max(diffs.iter().map(|d| d.max_abs)),
            mean(diffs.iter().map(|d| d.kl)),
            max(diffs.iter().map(|d| d.kl)),
        );
        tier_margins.push(margins);
        let mut diffs = diffs.into_iter();
        step0.push(diffs.next().unwrap());
        all.extend(diffs);
    }
    all.extend(step0.iter().copied());
    let margin_q = quantiles(&margin_errs);
    eprintln!(
        "corvid vs exact, {} steps: argmax differs on {strict_flips} steps above the noise bound and on {exempt_flips} of {exempt_steps} below it; top-2 margin error {}",
        all.len(),
        show(margin_q)
    );
    let m = |v: &[StepDiff], f: fn(&StepDiff) -> f64| mean(v.iter().map(f));
    let (l_abs, l_max, l_kl) = (
        m(&calib, |d| d.mean_abs),
        m(&calib, |d| d.max_abs),
        m(&calib, |d| d.kl),
    );
    eprintln!("like for like with llama.cpp (means over the 19 first steps; all steps against its first-step mean):");
    within(
        "first-step mean |Δ|",
        m(&step0, |d| d.mean_abs),
        ABS_FACTOR * l_abs,
    );
    within(
        "first-step mean of each case's max |Δ|",
        m(&step0, |d| d.max_abs),
        ABS_FACTOR * l_max,
    );
    within("first-step mean KL", m(&step0, |d| d.kl), KL_FACTOR * l_kl);
    within(
        "all-step mean |Δ|",
        m(&all, |d| d.mean_abs),
        ABS_FACTOR * l_abs,
    );
    within("all-step mean KL", m(&all, |d| d.kl), KL_FACTOR * l_kl);
    for (i, name) in [(1, "p95"), (2, "p99"), (3, "max")] {
        within(
            &format!("top-2 margin error {name}"),
            margin_q[i] as f64,
            ABS_FACTOR * noise[i] as f64,
        );
    }
    eprintln!("worst step of all:");
    within(
        "max |Δ|",
        max(all.iter().map(|d| d.max_abs)),
        MAX_ABS_LOGIT_ERROR,
    );
    within("max KL", max(all.iter().map(|d| d.kl)), MAX_KL);
    assert_eq!(
        strict_flips, 0,
        "argmax differs from the exact reference above the noise bound"
    );
    assert!(
        exempt_flips as f64 <= MAX_EXEMPT_FLIP_SHARE * exempt_steps as f64,
        "argmax differs on {exempt_flips} of {exempt_steps} near-tie steps"
    );
    for (pair, d) in cross_tier(&tier_margins) {
        let q = quantiles(&d);
        eprintln!("corvid tiers {pair}: |Δmargin| {}", show(q));
        assert!(
            q[3] <= bound,
            "tiers {pair} differ by more than the noise bound"
        );
    }

    // Secondary: llama.cpp. corvid and llama.cpp each stray from the exact margins by up
    // to the bound, so their argmaxes may part only below twice it.
    let llama_bound = 2.0 * bound;
    let mut llama_flips = Vec::new();
    for (case, g) in llama.iter().zip(golden["cases"].as_array().unwrap()) {
        let logits = teacher_forced(&model, &case.prompt, &tokens_of(case));
        let flips: Vec<usize> = logits
            .iter()
            .zip(&case.steps)
            .enumerate()
            .filter(|(_, (l, r))| r.margin >= llama_bound && argmax(l) != r.token)
            .map(|(step, _)| step)
            .collect();
        let ref_logits = f32_file(&fixtures().join(g["logits_file"].as_str().unwrap()));
        let err = max_abs(&logits[0], &ref_logits);
        let want: Vec<u32> = case.steps.iter().map(|s| s.token).collect();
        let margins: Vec<f32> = case.steps.iter().map(|s| s.margin).collect();
        let (_, got) = run(&model, &case.prompt, want.len(), &eog);
        let (same, checked) = assert_greedy(&case.name, &got, &want, &margins, llama_bound);
        eprintln!(
            "{:<20} llama.cpp: first-step max |Δ| {err:.3} over the whole vocabulary, teacher-forced argmax differs above {llama_bound:.3} on steps {flips:?}, free-running greedy equal for {same}/{} (checked {checked})",
            case.name,
            want.len()
        );
        assert!(
            (err as f64) < MAX_ABS_LOGIT_ERROR,
            "{}: first-step max |Δlogit| {err} against llama.cpp",
            case.name
        );
        llama_flips.extend(flips.into_iter().map(|s| format!("{} step {s}", case.name)));
    }
    assert!(
        llama_flips.is_empty(),
        "argmax differs from llama.cpp's where its margin is above {llama_bound}: {llama_flips:?}"
    );
}
