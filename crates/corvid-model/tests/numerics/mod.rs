//! Helpers shared by the numeric reference tests (golden and reference models).
#![allow(dead_code)] // each test binary uses a different subset

use corvid_kernels::ops::argmax;
use corvid_model::{CausalLm, KvCache, KvDtype, KvGroups, SeqInput};
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A JSON fixture.
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A JSON array as token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

/// A JSON array as floats.
pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    serde_json::from_value(v.clone()).unwrap()
}

/// Log-probabilities of `logits` (log-softmax, f64 sum): what llama-server reports, which
/// equals the logits up to one constant per step.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max
        + logits
            .iter()
            .map(|&l| (l as f64 - max).exp())
            .sum::<f64>()
            .ln();
    logits.iter().map(|&l| (l as f64 - lse) as f32).collect()
}

/// A raw little-endian f32 file.
pub fn f32_file(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Runs `prompt` in one step, then greedy decode steps until `steps` tokens or one of
/// `stop`; returns the first step's logits and the greedy tokens.
pub fn run(
    model: &dyn CausalLm,
    prompt: &[u32],
    steps: usize,
    stop: &[u32],
) -> (Vec<f32>, Vec<u32>) {
    run_with(model, prompt, steps, stop, KvDtype::F16)
}

/// [`run`] with a KV cache of `dtype`.
pub fn run_with(
    model: &dyn CausalLm,
    prompt: &[u32],
    steps: usize,
    stop: &[u32],
    dtype: KvDtype,
) -> (Vec<f32>, Vec<u32>) {
    let (mut kv, tables) = whole_cache(model, dtype);
    let seq = SeqInput {
        tokens: prompt,
        start_pos: 0,
        block_tables: &tables,
        want_logits: true,
    };
    let first = model.forward_once(&[seq], &mut kv).unwrap()[0].to_vec();
    let mut got = vec![argmax(&first)];
    while got.len() < steps && !stop.contains(got.last().unwrap()) {
        let tok = [*got.last().unwrap()];
        let seq = SeqInput {
            tokens: &tok,
            start_pos: prompt.len() + got.len() - 1,
            block_tables: &tables,
            want_logits: true,
        };
        got.push(argmax(&model.forward_once(&[seq], &mut kv).unwrap()[0]));
    }
    (first, got)
}

/// A KV cache for one sequence of up to 4,096 tokens that keeps every block of every KV
/// group (nothing is ever released), with its block tables.
pub fn whole_cache(model: &dyn CausalLm, dtype: KvDtype) -> (KvCache, Vec<Vec<u32>>) {
    const BLOCKS: u32 = 256;
    let groups = KvGroups::of(model.config()).len() as u32;
    let kv = KvCache::new(model.config(), 16, (groups * BLOCKS) as usize, dtype);
    let tables = (0..groups)
        .map(|g| (g * BLOCKS..(g + 1) * BLOCKS).collect())
        .collect();
    (kv, tables)
}

/// Feeds `prompt`, then the reference's tokens `next` one by one, and returns the logits
/// before each of them (teacher forcing: the reference's choices, never the model's own).
pub fn teacher_forced(model: &dyn CausalLm, prompt: &[u32], next: &[u32]) -> Vec<Vec<f32>> {
    let (mut kv, tables) = whole_cache(model, KvDtype::F16);
    let mut out = Vec::with_capacity(next.len());
    let (mut tokens, mut start) = (prompt.to_vec(), 0);
    for &token in next {
        let seq = SeqInput {
            tokens: &tokens,
            start_pos: start,
            block_tables: &tables,
            want_logits: true,
        };
        out.push(model.forward_once(&[seq], &mut kv).unwrap()[0].to_vec());
        start += tokens.len();
        tokens = vec![token];
    }
    out
}

/// Largest absolute difference.
pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Indices of the `k` largest values, largest first.
pub fn top_k(v: &[f32], k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..v.len() as u32).collect();
    idx.sort_by(|&a, &b| v[b as usize].total_cmp(&v[a as usize]));
    idx.truncate(k);
    idx
}

/// Checks greedy tokens agree up to the first reference step whose top-1/top-2 gap is
/// below `near_tie` (past such a near-tie, numerically equivalent implementations may
/// legitimately part). Returns `(tokens equal, tokens checked)`.
pub fn assert_greedy(
    name: &str,
    got: &[u32],
    want: &[u32],
    margins: &[f32],
    near_tie: f32,
) -> (usize, usize) {
    let checked = margins
        .iter()
        .position(|&m| m < near_tie)
        .unwrap_or(want.len());
    let same = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    assert!(
        same >= checked,
        "{name}: greedy differs at step {same} before any near-tie: {got:?} vs {want:?}"
    );
    (same, checked)
}
