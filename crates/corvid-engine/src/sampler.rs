//! Turning one sequence's logits into its next token: penalties, greedy or
//! temperature/top-k/top-p/min-p sampling from the sequence's own seeded random stream,
//! and logprobs. Everything is per sequence, so a request's tokens never depend on what
//! else is in the batch.

use crate::output::TokenLogprob;
use crate::params::SamplingParams;
use corvid_kernels::ops::{argmax, exp_shifted, sum_f64};
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::HashMap;

/// Applies repetition (prompt + output), presence and frequency (output) penalties.
fn apply_penalties(logits: &mut [f32], p: &SamplingParams, prompt: &[u32], output: &[u32]) {
    if p.repetition_penalty != 1.0 {
        // Each distinct token once, visiting the context instead of the vocabulary.
        let mut seen = vec![false; logits.len()];
        for &t in prompt.iter().chain(output) {
            let (Some(s), Some(l)) = (seen.get_mut(t as usize), logits.get_mut(t as usize)) else {
                continue;
            };
            if !std::mem::replace(s, true) {
                *l = if *l > 0.0 {
                    *l / p.repetition_penalty
                } else {
                    *l * p.repetition_penalty
                };
            }
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
    let mut e = logits.to_vec();
    let (max, sum) = exp_shifted(&mut e);
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

/// Draws from `(token, weight)` pairs whose weights sum to `total`.
fn draw(items: impl Iterator<Item = (u32, f64)>, total: f64, rng: &mut StdRng) -> u32 {
    walk(items, rng.gen::<f64>() * total)
}

/// The token at cumulative weight `r`: the first whose running sum reaches it, never one
/// of weight zero; the last with weight if rounding leaves `r` above the sum.
fn walk(items: impl Iterator<Item = (u32, f64)>, mut r: f64) -> u32 {
    let mut last = 0;
    for (t, w) in items.filter(|&(_, w)| w > 0.0) {
        last = t;
        r -= w;
        if r <= 0.0 {
            return t;
        }
    }
    last
}

/// Tokens per chunk whose weight sum [`draw_over_vocabulary`] skips at once.
const DRAW_CHUNK: usize = 512;

/// [`draw`] over every token, `w` indexed by token id: whole chunks are skipped by their
/// sums ([`sum_f64`], which vectorizes), and only the chunk the draw
/// falls in is walked token by token. A token-by-token walk is one chain of dependent f64
/// subtractions, about as slow over a 49,152-token vocabulary as computing the weights.
fn draw_over_vocabulary(w: &[f32], total: f64, rng: &mut StdRng) -> u32 {
    let mut r = rng.gen::<f64>() * total;
    let mut last = None;
    for (c, chunk) in w.chunks(DRAW_CHUNK).enumerate() {
        let sum = sum_f64(chunk);
        if sum <= 0.0 {
            continue;
        }
        let first = (c * DRAW_CHUNK) as u32;
        if r > sum {
            r -= sum;
            last = Some((first, chunk));
            continue;
        }
        let items = chunk
            .iter()
            .enumerate()
            .map(|(i, &x)| (first + i as u32, x as f64));
        return walk(items, r);
    }
    // Rounding left `r` above the last sums: the last token with weight.
    last.map_or(0, |(first, chunk)| {
        first + chunk.iter().rposition(|&x| x > 0.0).unwrap_or(0) as u32
    })
}

/// Temperature, top-k, top-p and min-p sampling. It runs on the engine thread between
/// steps, once per sequence, while the compute threads wait: with a scalar f64 `exp` per
/// token of a 49,152-token vocabulary (twice) and a selection over all of it, it took
/// 0.5–0.7 ms per sequence, 7–8 % of the offline mix's time at temperature 1
/// (BENCHMARKS.md). The weights now come from the vectorized `expf` pass attention uses,
/// and the filters sort only their [`candidates`].
fn sample_random(logits: &[f32], p: &SamplingParams, rng: &mut StdRng) -> u32 {
    if p.top_k.is_none() && p.top_p >= 1.0 && p.min_p <= 0.0 {
        // Plain temperature sampling: no filter, no sort.
        let (w, _, total) = weights(logits, p.temperature);
        if !(total.is_finite() && total > 0.0) {
            // Every logit -inf (all banned), or some +inf/NaN: nothing to weigh.
            return argmax(logits);
        }
        return draw_over_vocabulary(&w, total, rng);
    }
    let (kept, probs) = nucleus(logits, p);
    let mass: f64 = probs.iter().sum();
    if !(mass.is_finite() && mass > 0.0) {
        return argmax(logits);
    }
    draw(kept.into_iter().zip(probs), mass, rng)
}

/// Every token's weight `exp(l / T − max(l / T))` (the largest 1), `max(l / T)`, and
/// the weights' sum.
fn weights(logits: &[f32], temperature: f32) -> (Vec<f32>, f32, f64) {
    let inv_t = 1.0 / temperature;
    let mut w: Vec<f32> = logits.iter().map(|&l| l * inv_t).collect();
    let (top, total) = exp_shifted(&mut w);
    (w, top, total)
}

/// The tokens top-k, then top-p, then min-p leave to draw from, most likely first (ties
/// by token id), with their probabilities: weights as [`weights`] computes them (the same
/// `expf`, bit for bit), normalized over the top-k set, or over the whole vocabulary
/// without top-k.
fn nucleus(logits: &[f32], p: &SamplingParams) -> (Vec<u32>, Vec<f64>) {
    let inv_t = 1.0 / p.temperature;
    let top_k = p.top_k.map(|k| k.min(logits.len()));
    // Without top-k the probabilities are over the vocabulary: every token's weight.
    let vocab = top_k.is_none().then(|| weights(logits, p.temperature));
    // max(l / T): the weights' own, else by argmax (a positive factor keeps the order).
    let top = vocab.as_ref().map_or_else(
        || logits[argmax(logits) as usize] * inv_t,
        |&(_, top, _)| top,
    );
    let weight = |t: u32| match &vocab {
        Some((w, ..)) => w[t as usize] as f64,
        None => ((logits[t as usize] * inv_t) - top).exp() as f64,
    };
    // The weights exist exactly when there is no top-k.
    let bound = match &vocab {
        Some((w, _, total)) => Bound::Mass(w, *total),
        None => Bound::Count(top_k.unwrap_or(logits.len())),
    };
    let mut kept = candidates(logits, inv_t, top, bound, p);
    let most_likely_first = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if let Some(k) = top_k.filter(|&k| k > 0 && k < kept.len()) {
        kept.select_nth_unstable_by(k - 1, most_likely_first);
        kept.truncate(k);
    }
    kept.sort_unstable_by(most_likely_first);
    let w: Vec<f64> = kept.iter().map(|&t| weight(t)).collect();
    let norm = vocab
        .as_ref()
        .map_or_else(|| w.iter().sum(), |&(.., total)| total);
    let probs: Vec<f64> = w.iter().map(|x| x / norm).collect();
    let mut keep = probs.len();
    if p.top_p < 1.0 {
        // top-p: the smallest prefix whose mass reaches top_p.
        let mut acc = 0.0;
        if let Some(i) = probs.iter().position(|q| {
            acc += q;
            acc >= p.top_p as f64
        }) {
            keep = i + 1;
        }
    }
    if p.min_p > 0.0 {
        // min-p: drop tokens below min_p × the top probability.
        let floor = probs.first().map_or(0.0, |&q| q * p.min_p as f64);
        keep = keep.min(probs.iter().take_while(|&&q| q >= floor).count().max(1));
    }
    kept.truncate(keep);
    (kept, probs[..keep].to_vec())
}

/// What bounds [`candidates`]: top-k's count, or else the vocabulary's weights and their
/// total, which top-p and min-p are fractions of.
enum Bound<'a> {
    Count(usize),
    Mass(&'a [f32], f64),
}

/// How far below the top scaled logit (`l / T`) [`candidates`] may reach: weights down
/// to 10⁻², 10⁻⁴, 10⁻⁶, 10⁻¹², 10⁻²⁴; beyond the last, everything.
const CANDIDATE_DEPTHS: [f32; 5] = [4.6, 9.2, 13.8, 27.6, 55.3];

/// Every token within the shallowest depth below the top scaled logit `top` that surely
/// holds what [`nucleus`] keeps: the `top_k` most likely with top-k; without it, the top-p
/// prefix (the set's weights `w` reach `top_p` of their `total`) or the min-p set (the
/// depth's weight is at most half `min_p`: `expf` rounding cannot lift a token from below
/// it to `min_p`). Every token left out ranks below every token in, so the set's order is
/// the vocabulary's. A trained model's mass sits in a few hundred tokens: a vectorized count
/// or two and one collecting pass, where sorting the whole vocabulary cost more than the
/// rest of sampling.
fn candidates(
    logits: &[f32],
    inv_t: f32,
    top: f32,
    bound: Bound<'_>,
    p: &SamplingParams,
) -> Vec<u32> {
    let within = |floor: f32| {
        (0..logits.len() as u32)
            .filter(|&i| logits[i as usize] * inv_t >= floor)
            .collect::<Vec<u32>>()
    };
    for depth in CANDIDATE_DEPTHS {
        let floor = top - depth;
        match bound {
            Bound::Count(k) => {
                if logits.iter().filter(|&&l| l * inv_t >= floor).count() >= k {
                    return within(floor);
                }
            }
            Bound::Mass(w, total) => {
                if p.min_p > 0.0 && (-depth).exp() <= p.min_p / 2.0 {
                    return within(floor);
                }
                let set = within(floor);
                let mass: f64 = set.iter().map(|&t| w[t as usize] as f64).sum();
                // Compared with a margin: the sums add in different orders.
                if p.top_p < 1.0 && mass >= p.top_p as f64 * total * (1.0 + 1e-9) {
                    return set;
                }
            }
        }
    }
    (0..logits.len() as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

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

    /// [`nucleus`] as the filters read: the whole vocabulary weighed and sorted, then cut.
    fn nucleus_by_full_sort(logits: &[f32], p: &SamplingParams) -> (Vec<u32>, Vec<f64>) {
        let (w, _, total) = weights(logits, p.temperature);
        let k = p.top_k.unwrap_or(w.len()).min(w.len());
        let mut order: Vec<u32> = (0..w.len() as u32).collect();
        order.sort_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        order.truncate(k);
        let norm = if p.top_k.is_some() {
            order.iter().map(|&t| w[t as usize] as f64).sum()
        } else {
            total
        };
        let probs: Vec<f64> = order.iter().map(|&t| w[t as usize] as f64 / norm).collect();
        let mut keep = probs.len();
        let mut acc = 0.0;
        for (i, q) in probs.iter().enumerate() {
            acc += q;
            if p.top_p < 1.0 && acc >= p.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
        if p.min_p > 0.0 {
            let floor = probs[0] * p.min_p as f64;
            keep = keep.min(probs.iter().take_while(|&&q| q >= floor).count().max(1));
        }
        (order[..keep].to_vec(), probs[..keep].to_vec())
    }

    #[test]
    fn candidate_filtering_equals_a_full_sort() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut cases = 0;
        for vocab in [3, 1000, 49_152] {
            for shape in 0..4 {
                let logits: Vec<f32> = (0..vocab)
                    .map(|i| match shape {
                        0 => rng.gen_range(-4.0f32..4.0),
                        1 => 0.0, // flat: every threshold
                        2 => {
                            if i % 97 == 3 {
                                15.0
                            } else {
                                rng.gen_range(-8.0..0.0)
                            }
                        }
                        _ => (rng.gen_range(0.0f32..1.0)).ln() * 3.0, // long tail
                    })
                    .collect();
                for (temperature, top_k, top_p, min_p) in [
                    (1.0, None, 0.9, 0.0),
                    (0.7, None, 0.5, 0.0),
                    (1.3, None, 0.999, 0.0),
                    (1.0, None, 1.0, 0.05),
                    (1.0, None, 1.0, 1e-7),
                    (0.8, None, 0.95, 0.01),
                    (1.0, Some(1), 1.0, 0.0),
                    (0.8, Some(40), 1.0, 0.0),
                    (1.0, Some(40), 0.8, 0.02),
                    (1.0, Some(vocab + 5), 0.9, 0.0),
                ] {
                    let p = params(|p| {
                        p.temperature = temperature;
                        p.top_k = top_k;
                        p.top_p = top_p;
                        p.min_p = min_p;
                    });
                    assert_eq!(
                        nucleus(&logits, &p),
                        nucleus_by_full_sort(&logits, &p),
                        "vocab {vocab}, shape {shape}, {temperature} {top_k:?} {top_p} {min_p}"
                    );
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 120);
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
