//! Element-wise and per-row operations of a transformer layer, each computed the way
//! ggml's CPU backend computes it (f64 accumulation where ggml uses it) so that corvid
//! and llama.cpp agree closely on logits.

use half::f16;
use std::sync::OnceLock;

/// RMSNorm of each `w.len()`-wide row of `x` in place: `x / sqrt(mean(x²) + eps) * w`.
pub fn rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(w.len()) {
        let sum: f64 = row.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let scale = 1.0 / ((sum / row.len() as f64) as f32 + eps).sqrt();
        for (v, &g) in row.iter_mut().zip(w) {
            *v = (*v * scale) * g;
        }
    }
}

/// How RoPE pairs up the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs (2i, 2i+1): llama.cpp's layout for LLaMA GGUF files, whose Q/K
    /// weights were permuted at conversion.
    Adjacent,
    /// Pairs (i, i + d/2): Hugging Face's `rotate_half`, used by Qwen and by HF LLaMA.
    Half,
}

/// Precomputed inverse frequencies for RoPE (with optional per-pair frequency factors,
/// e.g. LLaMA 3's `rope_freqs`).
#[derive(Clone, Debug)]
pub struct Rope {
    /// Rotated dimensions per head.
    pub dims: usize,
    /// Pairing convention.
    pub style: RopeStyle,
    theta_scale: f32,
    freq_factors: Option<Vec<f32>>,
}

impl Rope {
    /// Builds RoPE for `dims` rotated dimensions and base `theta`.
    pub fn new(dims: usize, theta: f32, style: RopeStyle, freq_factors: Option<Vec<f32>>) -> Self {
        Self {
            dims,
            style,
            theta_scale: theta.powf(-2.0 / dims as f32),
            freq_factors,
        }
    }

    /// Rotates every head (`head_dim` wide) of the `heads * head_dim` row `x` for
    /// position `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        let half = self.dims / 2;
        let mut cs = [(0.0f32, 0.0f32); 256];
        let mut theta = pos as f32;
        for (i, c) in cs.iter_mut().enumerate().take(half) {
            let f = self.freq_factors.as_ref().map_or(1.0, |f| f[i]);
            let t = theta / f;
            *c = (t.cos(), t.sin());
            theta *= self.theta_scale;
        }
        for head in x.chunks_exact_mut(head_dim) {
            for (i, &(c, s)) in cs.iter().enumerate().take(half) {
                let (a, b) = match self.style {
                    RopeStyle::Adjacent => (2 * i, 2 * i + 1),
                    RopeStyle::Half => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c - x1 * s;
                head[b] = x0 * s + x1 * c;
            }
        }
    }
}

/// `gate = silu(gate) * up`, the SwiGLU activation.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::isa::avx2() {
        // SAFETY: AVX2 and FMA are present; `up` pairs with `gate` element for element.
        unsafe { crate::vexp::silu_mul(gate, up) };
        return;
    }
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `gate = gelu(gate) * up`, the GeGLU activation of Gemma, with GELU's tanh
/// approximation computed as ggml's CPU backend does: read from a table of f16 results
/// indexed by the f16-rounded input, identity from 10 up and zero from −10 down.
pub fn gelu_tanh_mul(gate: &mut [f32], up: &[f32]) {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| f16::from_f32(gelu_tanh(f16::from_bits(bits).to_f32())).to_f32())
            .collect()
    });
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = if *g <= -10.0 {
            0.0
        } else if *g >= 10.0 {
            *g * u
        } else {
            table[f16::from_f32(*g).to_bits() as usize] * u
        };
    }
}

/// GELU with the tanh approximation, `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x * x)).tanh())
}

/// `x += y`.
pub fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Index of the largest value (the first one on ties), as greedy decoding picks it: the
/// index a scan keeping the first strictly greater value returns (NaNs never win, except
/// a NaN at index 0, which nothing compares greater than).
///
/// Greedy sampling runs it over every sequence's logits on the engine thread while the
/// compute threads wait, so it keeps eight running maxima side by side (one per index
/// mod 8, a form the compiler turns into vector compares and blends) instead of the
/// scan's one: over 49,152 values that rise and fall often, 10.9 µs against the scan's
/// 74 µs (Zen 3).
pub fn argmax(v: &[f32]) -> u32 {
    const LANES: usize = 8;
    if v.first().is_none_or(|x| x.is_nan()) {
        return 0;
    }
    let mut max = [f32::NEG_INFINITY; LANES];
    let mut at = [0u32; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        for (j, &x) in chunk.iter().enumerate() {
            let i = (c * LANES + j) as u32;
            let greater = x > max[j];
            max[j] = if greater { x } else { max[j] };
            at[j] = if greater { i } else { at[j] };
        }
    }
    // Each lane holds the first index of its largest value; the answer is the smallest
    // index among the lanes holding the overall largest, then the tail can only win by
    // being strictly greater.
    let mut best = (max[0], at[0]);
    for (&m, &i) in max.iter().zip(&at).skip(1) {
        if m > best.0 || (m == best.0 && i < best.1) {
            best = (m, i);
        }
    }
    let first_tail = v.len() - tail.len();
    for (j, &x) in tail.iter().enumerate() {
        if x > best.0 {
            best = (x, (first_tail + j) as u32);
        }
    }
    best.1
}

/// Softmax in place (f64 sum, as ggml).
pub fn softmax(x: &mut [f32]) {
    let (_, sum) = exp_shifted(x);
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// The unnormalized half of [`softmax`]: `x = exp(x - max(x))` in place, returning the
/// maximum and the sum (f64), so partial softmaxes over pieces of a row can be merged.
pub fn exp_shifted(x: &mut [f32]) -> (f32, f64) {
    let max = max_of(x);
    (max, exp_shifted_sum(x, max))
}

/// `x = exp(x - max)` in place, returning the sum in f64. Partial sums run side by side
/// (attention calls this for every head and token); in f64 their order does not show in
/// the f32 result. (glibc's `expf` exactly, on the SIMD tiers by [`crate::exact_exp`], not
/// [`crate::vexp`]: the golden test showed the attention weights to be the one place
/// where last-bit differences move greedy tokens at llama.cpp's near-ties.)
fn exp_shifted_sum(x: &mut [f32], max: f32) -> f64 {
    // Two passes: the exps alone, then the sum.
    exp_minus(x, max);
    sum_f64(x)
}

/// The sum of `x` in f64, in sixteen partial sums the compiler keeps in vector registers
/// (four independent vector add chains, where one running sum is a chain of dependent
/// adds as long as `x`).
pub fn sum_f64(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; 16];
    for c in x.chunks(16) {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v as f64;
        }
    }
    acc.iter().sum()
}

/// `x = exp(x - max)` in place with glibc's `expf`, eight lanes at a time on the SIMD
/// tiers ([`crate::exact_exp`]), bit for bit the same either way.
fn exp_minus(x: &mut [f32], max: f32) {
    #[cfg(target_arch = "x86_64")]
    if crate::isa::avx2() {
        // SAFETY: the AVX2 tier implies AVX2 and FMA.
        unsafe { crate::exact_exp::exp_shifted(x, max) };
        return;
    }
    x.iter_mut().for_each(|v| *v = (*v - max).exp());
}

/// The largest element (eight lanes at a time, so it vectorizes); -inf when empty.
fn max_of(x: &[f32]) -> f32 {
    let chunks = x.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let mut lanes = [f32::NEG_INFINITY; 8];
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    lanes.into_iter().fold(tail, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan [`argmax`] must agree with.
    fn argmax_scan(v: &[f32]) -> u32 {
        let mut best = 0;
        for (i, &x) in v.iter().enumerate() {
            if x > v[best] {
                best = i;
            }
        }
        best as u32
    }

    #[test]
    fn argmax_is_the_first_greatest_as_a_scan_finds_it() {
        // Few distinct values, so ties across and within lanes are common; NaNs, both
        // zeros and infinities mixed in; every length up to 70 (tails of 0..7).
        let pool = [
            -1.5,
            0.0,
            -0.0,
            2.0,
            2.0,
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            -3.0,
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for case in 0..20_000 {
            let len = case % 71;
            let v: Vec<f32> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Infinity and NaN rarely, so finite maxima are tested most.
                    let k = (state % 64) as usize;
                    if k < 56 {
                        pool[[0, 1, 2, 3, 4, 8][k % 6]]
                    } else {
                        pool[k % pool.len()]
                    }
                })
                .collect();
            assert_eq!(argmax(&v), argmax_scan(&v), "{v:?}");
        }
        let all_neg_inf = vec![f32::NEG_INFINITY; 19];
        assert_eq!(argmax(&all_neg_inf), 0);
        let mut late = vec![0.5f32; 49_152];
        late[49_151] = 0.75;
        assert_eq!(argmax(&late), 49_151);
    }

    #[test]
    fn gelu_tanh_mul_is_the_formula_within_f16_rounding() {
        let x: Vec<f32> = (0..400).map(|i| (i as f32 - 200.0) * 0.06).collect();
        let up: Vec<f32> = (0..400).map(|i| 1.0 + (i % 7) as f32 * 0.5).collect();
        let mut got = x.clone();
        gelu_tanh_mul(&mut got, &up);
        for ((&x, &u), &g) in x.iter().zip(&up).zip(&got) {
            let erf = 0.5 * x * (1.0 + libm_erf(x / std::f32::consts::SQRT_2));
            let want = if x <= -10.0 { 0.0 } else { erf * u };
            // f16 rounding of input and result, and tanh's approximation of erf (< 1e-3).
            let tol = 2e-3 * (1.0 + x.abs()) * u;
            assert!((g - want).abs() <= tol, "gelu({x}) * {u}: {g} vs {want}");
        }
        assert_eq!(got[0], 0.0, "−12 and below gives zero");
    }

    /// erf by Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7): exact GELU to check the
    /// tanh approximation against, independent of it.
    fn libm_erf(x: f32) -> f32 {
        let t = 1.0 / (1.0 + 0.327_591_1 * x.abs() as f64);
        let poly = t
            * (0.254_829_592
                + t * (-0.284_496_736
                    + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
        let y = 1.0 - poly * (-(x as f64) * x as f64).exp();
        (y * x.signum() as f64) as f32
    }

    #[test]
    fn rope_styles_agree_after_permutation() {
        // Rotating the permuted vector with adjacent pairs equals permuting the
        // half-rotated vector.
        let d = 8;
        let x: Vec<f32> = (0..d).map(|i| i as f32 * 0.3 - 1.0).collect();
        let perm: Vec<usize> = (0..d / 2).flat_map(|i| [i, i + d / 2]).collect();
        let mut half = x.clone();
        Rope::new(d, 10000.0, RopeStyle::Half, None).apply(&mut half, d, 5);
        let mut adj: Vec<f32> = perm.iter().map(|&p| x[p]).collect();
        Rope::new(d, 10000.0, RopeStyle::Adjacent, None).apply(&mut adj, d, 5);
        for (k, &p) in perm.iter().enumerate() {
            assert!((adj[k] - half[p]).abs() < 1e-6);
        }
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut x = vec![1.0, 2.0, 3.0, -1.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[2] > x[1] && x[1] > x[0]);
    }
}
