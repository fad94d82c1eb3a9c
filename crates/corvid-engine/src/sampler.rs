//! Turning one sequence's logits into its next token: penalties, greedy or
//! temperature/top-k/top-p/min-p sampling from the sequence's own seeded random stream,
//! and logprobs. Everything is per sequence, so a request's tokens never depend on what
//! else is in the batch.

use crate::output::TokenLogprob;
use crate::params::SamplingParams;
use corvid_kernels::ops::argmax;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::HashMap;

/// Applies repetition (prompt + output), presence and frequency (output) penalties.
fn apply_penalties(logits: &mut [f32], p: &SamplingParams, prompt: &[u32], output: &[u32]) {
    if p.repetition_penalty != 1.0 {
        let mut seen = vec![false; logits.len()];
        for &t in prompt.iter().chain(output) {
            if let Some(s) = seen.get_mut(t as usize) {
                *s = true;
            }
        }
        for (l, _) in logits.iter_mut().zip(&seen).filter(|(_, &s)| s) {
            *l = if *l > 0.0 {
                *l / p.repetition_penalty
            } else {
                *l * p.repetition_penalty
            };
        }
    }
    if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for &t in output {
            *counts.entry(t).or_default() += 1;
        }
        for (t, c) in counts {
            if let Some(l) = logits.get_mut(t as usize) {
                *l -= p.presence_penalty + p.frequency_penalty * c as f32;
            }
        }
    }
}

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    let lse = max + sum.ln() as f32;
    logits.iter().map(|&l| l - lse).collect()
}

/// Indices of the `k` largest values, largest first.
fn top_indices(v: &[f32], k: usize) -> Vec<u32> {
    let k = k.min(v.len());
    let mut idx: Vec<u32> = (0..v.len() as u32).collect();
    if k < idx.len() {
        idx.select_nth_unstable_by(k, |&a, &b| v[b as usize].total_cmp(&v[a as usize]));
        idx.truncate(k);
    }
    idx.sort_by(|&a, &b| v[b as usize].total_cmp(&v[a as usize]).then(a.cmp(&b)));
    idx
}

/// Picks the next token for one sequence. `banned` tokens (EOS before `min_tokens`) get
/// zero probability. Returns the token and, if asked, its logprobs.
pub fn sample(
    logits: &mut [f32],
    p: &SamplingParams,
    prompt: &[u32],
    output: &[u32],
    banned: &[u32],
    rng: &mut StdRng,
) -> (u32, Option<TokenLogprob>) {
    // Logprobs report the model's distribution before any sampling transformation.
    let logprobs = p.logprobs.map(|_| log_softmax(logits));
    apply_penalties(logits, p, prompt, output);
    for &b in banned {
        if let Some(l) = logits.get_mut(b as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
    let token = if p.is_greedy() {
        argmax(logits)
    } else {
        sample_random(logits, p, rng)
    };
    let lp = logprobs.map(|lp| TokenLogprob {
        token_id: token,
        logprob: lp[token as usize],
        top: top_indices(&lp, p.logprobs.unwrap_or(0))
            .into_iter()
            .map(|t| (t, lp[t as usize]))
            .collect(),
    });
    (token, lp)
}

/// Candidates tried first for top-p without top-k: a trained model's nucleus almost
/// always lies within its few hundred most likely tokens, so a partial selection
/// replaces a full sort of the vocabulary (checked: the full sort is the fallback).
const TOP_P_CANDIDATES: usize = 512;

/// Draws from `(token, weight)` pairs whose weights sum to `total`.
fn draw(items: impl Iterator<Item = (u32, f64)>, total: f64, rng: &mut StdRng) -> u32 {
    let mut r = rng.gen::<f64>() * total;
    let mut last = 0;
    for (t, w) in items {
        if w > 0.0 {
            last = t;
        }
        r -= w;
        if r <= 0.0 {
            return t;
        }
    }
    last
}

fn sample_random(logits: &[f32], p: &SamplingParams, rng: &mut StdRng) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weight = |l: f32| (((l - max) / p.temperature) as f64).exp();
    if p.top_k.is_none() && p.top_p >= 1.0 && p.min_p <= 0.0 {
        // Plain temperature sampling: one pass, no sort.
        let total: f64 = logits.iter().map(|&l| weight(l)).sum();
        let items = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, weight(l)));
        return draw(items, total, rng);
    }
    let vocab = logits.len();
    let k = p.top_k.unwrap_or(vocab).min(vocab);
    // Candidates sorted by logit (descending) and the mass they are normalized by:
    // the top-k set, or the whole vocabulary when there is no top-k.
    let (cand, norm) = if p.top_k.is_none() && p.top_p < 1.0 && vocab > TOP_P_CANDIDATES {
        let total: f64 = logits.iter().map(|&l| weight(l)).sum();
        let few = top_indices(logits, TOP_P_CANDIDATES);
        let mass: f64 = few.iter().map(|&t| weight(logits[t as usize])).sum();
        if mass / total >= p.top_p as f64 {
            (few, total)
        } else {
            (top_indices(logits, k), total)
        }
    } else {
        let c = top_indices(logits, k);
        let norm = c.iter().map(|&t| weight(logits[t as usize])).sum();
        (c, norm)
    };
    let probs: Vec<f64> = cand
        .iter()
        .map(|&t| weight(logits[t as usize]) / norm)
        .collect();
    // top-p: the smallest prefix whose mass reaches top_p.
    let mut keep = probs.len();
    if p.top_p < 1.0 {
        let mut acc = 0.0;
        for (i, q) in probs.iter().enumerate() {
            acc += q;
            if acc >= p.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
    }
    // min-p: drop tokens below min_p × the top probability.
    if p.min_p > 0.0 {
        let floor = probs[0] * p.min_p as f64;
        keep = keep.min(probs.iter().take_while(|&&q| q >= floor).count().max(1));
    }
    let total: f64 = probs[..keep].iter().sum();
    draw(
        cand[..keep]
            .iter()
            .copied()
            .zip(probs[..keep].iter().copied()),
        total,
        rng,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn params(f: impl FnOnce(&mut SamplingParams)) -> SamplingParams {
        let mut p = SamplingParams::default();
        f(&mut p);
        p
    }

    #[test]
    fn greedy_takes_argmax_and_respects_bans() {
        let mut rng = StdRng::seed_from_u64(0);
        let p = SamplingParams::greedy(4);
        assert_eq!(
            sample(&mut [0.1, 3.0, 2.0], &p, &[], &[], &[], &mut rng).0,
            1
        );
        assert_eq!(
            sample(&mut [0.1, 3.0, 2.0], &p, &[], &[], &[1], &mut rng).0,
            2
        );
    }

    #[test]
    fn top_k_one_and_top_p_tiny_are_greedy() {
        let mut rng = StdRng::seed_from_u64(7);
        let logits = [1.0, 5.0, 4.9, 0.0];
        for _ in 0..20 {
            let p = params(|p| p.top_p = 0.01);
            assert_eq!(
                sample(&mut logits.clone(), &p, &[], &[], &[], &mut rng).0,
                1
            );
            let p = params(|p| p.top_k = Some(1));
            assert_eq!(
                sample(&mut logits.clone(), &p, &[], &[], &[], &mut rng).0,
                1
            );
        }
    }

    #[test]
    fn top_p_never_draws_outside_the_nucleus() {
        // A large vocabulary with a clear nucleus of three tokens holding >99% of the mass.
        let mut logits = vec![0.0f32; 50_000];
        logits[7] = 20.0;
        logits[42] = 19.5;
        logits[49_999] = 19.0;
        let p = params(|p| p.top_p = 0.9);
        let mut rng = StdRng::seed_from_u64(11);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..300 {
            seen.insert(sample(&mut logits.clone(), &p, &[], &[], &[], &mut rng).0);
        }
        assert!(seen.iter().all(|t| [7, 42, 49_999].contains(t)), "{seen:?}");
        assert!(seen.len() >= 2);
        // A flat distribution forces the full-sort fallback and still stays in range.
        let flat = vec![0.0f32; 50_000];
        let t = sample(&mut flat.clone(), &p, &[], &[], &[], &mut rng).0;
        assert!((t as usize) < flat.len());
    }

    #[test]
    fn same_seed_same_samples() {
        let p = params(|p| p.temperature = 1.5);
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..32)
                .map(|_| sample(&mut [1.0, 1.2, 0.8, 1.1, 0.9], &p, &[], &[], &[], &mut rng).0)
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }

    #[test]
    fn penalties_push_repeated_tokens_down() {
        let mut rng = StdRng::seed_from_u64(0);
        let p = params(|p| {
            p.temperature = 0.0;
            p.frequency_penalty = 2.0;
        });
        // Token 0 leads by 1.0 but appeared once in the output: penalized by 2.
        assert_eq!(sample(&mut [2.0, 1.0], &p, &[], &[0], &[], &mut rng).0, 1);
        let p = params(|p| {
            p.temperature = 0.0;
            p.repetition_penalty = 4.0;
        });
        assert_eq!(sample(&mut [2.0, 1.0], &p, &[0], &[], &[], &mut rng).0, 1);
    }

    #[test]
    fn logprobs_are_normalized_and_ranked() {
        let mut rng = StdRng::seed_from_u64(0);
        let p = params(|p| {
            p.temperature = 0.0;
            p.logprobs = Some(2);
        });
        let (t, lp) = sample(&mut [0.0, 2.0, 1.0], &p, &[], &[], &[], &mut rng);
        let lp = lp.unwrap();
        assert_eq!(t, 1);
        assert_eq!(lp.top.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        let total: f32 = [0.0f32, 2.0, 1.0]
            .iter()
            .map(|l| (l - 2.0 + lp.logprob).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-5);
    }
}
