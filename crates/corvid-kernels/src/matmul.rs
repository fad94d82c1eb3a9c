//! Weight matrices in their compute format and the batched `out = x · Wᵀ` product.

use crate::dot::{
    dot_f32, dot_q4_0_q8_0_multi, dot_q4_1_q8_1_multi, dot_q4_k_q8_k_multi, dot_q8_0_q8_0_multi,
    scalar_q5_k_q8_k, scalar_q6_k_q8_k, MAX_MULTI,
};
use crate::packed::{self, Q4Kx8, Q4_1x16, Q4_1x8, Q5Kx8, Q6Kx8, Q8_0x8, GROUP, WIDE_GROUP};
use crate::quant::quantize::{quantize_q8_0, quantize_q8_1, quantize_q8_k};
use crate::quant::{
    dequantize_q4k, dequantize_q5k, dequantize_q6k, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K,
    BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1, QK, QK_K,
};
use rayon::prelude::*;

/// The element storage of a weight matrix, row-major, one row per output feature.
#[derive(Clone, Debug)]
pub enum WeightData {
    /// Plain f32 (safetensors F32/F16/BF16 without `--quantization`).
    F32(Vec<f32>),
    /// Q4_0 blocks.
    Q4_0(Vec<BlockQ4_0>),
    /// Q4_1 blocks.
    Q4_1(Vec<BlockQ4_1>),
    /// Q8_0 blocks.
    Q8_0(Vec<BlockQ8_0>),
    /// Q4_K super-blocks of 256 (GGUF Q4_K, `--quantization q4_k`), multiplied against
    /// Q8_K activations like ggml does.
    Q4K(Vec<BlockQ4K>),
    /// Q5_K super-blocks of 256 (GGUF Q5_K: most matrices of Q5_K_M files), multiplied
    /// against Q8_K activations like ggml does.
    Q5K(Vec<BlockQ5K>),
    /// Q6_K super-blocks of 256 (GGUF Q6_K, e.g. the output matrix of Q4_K_M files),
    /// multiplied against Q8_K activations like ggml does.
    Q6K(Vec<BlockQ6K>),
    /// Q4_1 repacked eight rows at a time for the packed SIMD kernels.
    Q4_1x8(Vec<Q4_1x8>),
    /// Q4_1 repacked sixteen rows at a time for the 512-bit VNNI kernel.
    Q4_1x16(Vec<Q4_1x16>),
    /// Q8_0 repacked eight rows at a time for the packed SIMD kernels.
    Q8_0x8(Vec<Q8_0x8>),
    /// Q4_K repacked eight rows at a time for the packed SIMD kernels.
    Q4Kx8(Vec<Q4Kx8>),
    /// Q5_K repacked eight rows at a time for the packed SIMD kernels.
    Q5Kx8(Vec<Q5Kx8>),
    /// Q6_K repacked eight rows at a time for the packed SIMD kernels.
    Q6Kx8(Vec<Q6Kx8>),
}

/// A `rows × cols` weight matrix ready for [`QMatrix::matmul`].
#[derive(Clone, Debug)]
pub struct QMatrix {
    /// Output features.
    pub rows: usize,
    /// Input features (row length).
    pub cols: usize,
    /// The elements.
    pub data: WeightData,
}

/// Rows computed per parallel task: large enough to amortize scheduling, small enough
/// to balance two to sixteen cores on 576-row matrices.
const ROWS_PER_TASK: usize = 32;

/// Rows per task of a matrix of at least [`LARGE_MATRIX_ROWS`] rows (the 49,152-row output
/// head). A task writes, for each token, its rows' slice of that token's output row; at
/// 32 rows that is 128 bytes per token a whole output row (192 KiB) apart, so a batch's
/// logits (12 MiB at 64 tokens) were written two lines per page visit, and the head ran at
/// a third to a half of the layers' rate (BENCHMARKS.md). 256 rows write 1 KiB per visit;
/// the weights a task reuses across its tokens (90 KiB of Q4_1 at 576 columns, 153 KiB of
/// Q8_0) still fit L2.
const LARGE_MATRIX_TASK_ROWS: usize = 256;

/// From this many rows a matrix is split into [`LARGE_MATRIX_TASK_ROWS`]-row tasks (still
/// 32 or more tasks).
const LARGE_MATRIX_ROWS: usize = 8192;

/// Tokens one packed-kernel call handles: each weight block is unpacked once for all of
/// them. Four fill the sixteen registers of the 256-bit tiers (eight measured no faster).
const PACKED_TOKENS: usize = 4;

/// Tokens per call of the sixteen-row 512-bit kernel: with thirty-two registers, eight
/// tokens' sums are eight independent `vpdpbusd` chains, and each block's nibble unpacking
/// is shared by twice as many tokens (`corvid bench kernels`, Q4_1 at m = 64: 212–216
/// against 190–200 GMAC/s at four; offline decode at 16 sequences +11 %, BENCHMARKS.md).
const WIDE_TOKENS: usize = 8;

/// Calls the packed kernel `$f` monomorphized for `$tc` (1..=PACKED_TOKENS, or with
/// `wide` 1..=WIDE_TOKENS) tokens, writing the first `$tc` rows of `$out` (a `&mut [[f32;
/// G]; PACKED_TOKENS]`, or `WIDE_TOKENS` rows).
macro_rules! by_token_count {
    ($tc:expr, $f:ident, $out:ident, $($arg:expr),*) => {
        match $tc {
            1 => packed::$f::<1>($($arg),*, (&mut $out[..1]).try_into().expect("1")),
            2 => packed::$f::<2>($($arg),*, (&mut $out[..2]).try_into().expect("2")),
            3 => packed::$f::<3>($($arg),*, (&mut $out[..3]).try_into().expect("3")),
            _ => packed::$f::<4>($($arg),*, $out),
        }
    };
    (wide $tc:expr, $f:ident, $out:ident, $($arg:expr),*) => {
        match $tc {
            1 => packed::$f::<1>($($arg),*, (&mut $out[..1]).try_into().expect("1")),
            2 => packed::$f::<2>($($arg),*, (&mut $out[..2]).try_into().expect("2")),
            3 => packed::$f::<3>($($arg),*, (&mut $out[..3]).try_into().expect("3")),
            4 => packed::$f::<4>($($arg),*, (&mut $out[..4]).try_into().expect("4")),
            5 => packed::$f::<5>($($arg),*, (&mut $out[..5]).try_into().expect("5")),
            6 => packed::$f::<6>($($arg),*, (&mut $out[..6]).try_into().expect("6")),
            7 => packed::$f::<7>($($arg),*, (&mut $out[..7]).try_into().expect("7")),
            _ => packed::$f::<8>($($arg),*, $out),
        }
    };
}

/// Runs the packed kernel `$f` (`[wide]`: the sixteen-row one; `[]` otherwise) over every
/// group and run of `$k` tokens of `$groups`, passing each run's rows of the two per-token
/// arrays `$a` (quantized activations) and `$b` (their scales or sums), built once per run.
///
/// # Safety
/// As the kernel's: `$w` must be packed for a tier that runs here, and `$a`, `$b` hold
/// `$nb` entries per token.
macro_rules! with_token_pairs {
    ($groups:ident, $g:ident, $k:ident, [$($wide:ident)?] $f:ident, $w:ident, $nb:ident, $a:ident, $b:ident) => {
        $groups.run::<$g, $k, _>(
            |t0, tc| {
                (
                    token_rows::<_, $k>($a, $nb, t0, tc),
                    token_rows::<_, $k>($b, $nb, t0, tc),
                )
            },
            |(ys, bs), g, t0, tc, out| unsafe {
                by_token_count!(
                    $($wide)? tc,
                    $f,
                    out,
                    &$w[g * $nb..(g + 1) * $nb],
                    ys.as_slice(),
                    bs.as_slice(),
                    t0 == 0
                )
            },
        )
    };
}

/// The `nb`-block rows of tokens `t0 .. t0 + tc` of a per-token array (quantized
/// activations or their scales), padded to `K` (the kernel's token count) with the last one.
fn token_rows<T, const K: usize>(v: &[T], nb: usize, t0: usize, tc: usize) -> [&[T]; K] {
    std::array::from_fn(|k| {
        let t = t0 + k.min(tc - 1);
        &v[t * nb..(t + 1) * nb]
    })
}

/// One task's share of a packed matmul: row groups of `r0..r1`, all `n` tokens.
struct Groups {
    r0: usize,
    r1: usize,
    n: usize,
    rows: usize,
    ptr: OutPtr,
}

impl Groups {
    /// Calls `kernel(rows, group, t0, tc, out)` for every `G`-row group and every run of up
    /// to `K` tokens, and scatters the `tc × G` results into the output. `rows` is what
    /// `tokens(t0, tc)` returns (the run's activation rows), built once per run of tokens
    /// instead of once per group: building the arrays of slices per kernel call cost
    /// 1.5–2 % of the products at 64 tokens (Q4_1 x16, Zen 4).
    fn run<const G: usize, const K: usize, R>(
        &self,
        tokens: impl Fn(usize, usize) -> R,
        mut kernel: impl FnMut(&R, usize, usize, usize, &mut [[f32; G]; K]),
    ) {
        let mut out = [[0.0f32; G]; K];
        for t0 in (0..self.n).step_by(K) {
            let tc = K.min(self.n - t0);
            let rows = tokens(t0, tc);
            for g in self.r0 / G..self.r1 / G {
                kernel(&rows, g, t0, tc, &mut out);
                for (k, row) in out[..tc].iter().enumerate() {
                    for (i, &v) in row.iter().enumerate() {
                        // SAFETY: (t, r) is written by exactly this task; index < n * rows.
                        unsafe { *self.ptr.0.add((t0 + k) * self.rows + g * G + i) = v };
                    }
                }
            }
        }
    }
}

/// Quantizes every `cols`-wide row of `x` into `nb` blocks (the activation format a
/// weight format pairs with), once per matmul; across the thread pool when there are
/// enough rows for it to pay (at 64 tokens a serial pass took a quarter of the matmul).
fn quantize_rows<B: Default + Clone + Send>(
    x: &[f32],
    cols: usize,
    nb: usize,
    quantize: fn(&[f32], &mut [B]),
) -> Vec<B> {
    const PARALLEL_ROWS: usize = 16;
    let mut q = vec![B::default(); x.len() / cols * nb];
    if x.len() / cols >= PARALLEL_ROWS {
        x.par_chunks_exact(cols)
            .zip(q.par_chunks_exact_mut(nb))
            .for_each(|(xs, qs)| quantize(xs, qs));
    } else {
        for (xs, qs) in x.chunks_exact(cols).zip(q.chunks_exact_mut(nb)) {
            quantize(xs, qs);
        }
    }
    q
}

/// Raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint (token, row) cells; the borrow outlives the parallel scope.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Activations quantized once per matmul into the format the weights pair with.
enum Activations<'a> {
    F32(&'a [f32]),
    Q8_0(Vec<BlockQ8_0>),
    Q8_1(Vec<BlockQ8_1>),
    /// Q8_K (256-value blocks with sums) for Q4_K and Q6_K weights.
    Q8K(Vec<BlockQ8K>),
    /// Q8_1 with each block's scales as f32 (for packed Q4_1 weights).
    Q8_1Scaled(Vec<BlockQ8_1>, Vec<[f32; 2]>),
    /// Q8_0 with each block's f32 scale and offset correction (for packed Q8_0 weights).
    Q8_0Scaled(Vec<BlockQ8_0>, Vec<(f32, i32)>),
    /// Q8_K with each block's pairs of sub-block sums (for packed Q4_K weights).
    Q8KPaired(Vec<BlockQ8K>, Vec<[i32; 4]>),
}

/// The activation formats of [`Activations`], known before quantizing, so the matrices of
/// a [`matmul_group`] that pair with the same one share a single quantization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ActFormat {
    F32,
    Q8_0,
    Q8_1,
    Q8K,
    Q8_1Scaled,
    Q8_0Scaled,
    Q8KPaired,
}

impl ActFormat {
    /// Quantizes the `cols`-wide rows of `x` into this format (`nb` blocks a row).
    fn quantize(self, x: &[f32], cols: usize, nb: usize) -> Activations<'_> {
        match self {
            ActFormat::F32 => Activations::F32(x),
            ActFormat::Q8_0 => Activations::Q8_0(quantize_rows(x, cols, nb, quantize_q8_0)),
            ActFormat::Q8_1 => Activations::Q8_1(quantize_rows(x, cols, nb, quantize_q8_1)),
            ActFormat::Q8K => Activations::Q8K(quantize_rows(x, cols, nb, quantize_q8_k)),
            ActFormat::Q8_1Scaled => {
                let q = quantize_rows(x, cols, nb, quantize_q8_1);
                let scales = packed::q8_1_scales(&q);
                Activations::Q8_1Scaled(q, scales)
            }
            ActFormat::Q8_0Scaled => {
                let q = quantize_rows(x, cols, nb, quantize_q8_0);
                let scales = packed::q8_0_scales(&q);
                Activations::Q8_0Scaled(q, scales)
            }
            ActFormat::Q8KPaired => {
                let q = quantize_rows(x, cols, nb, quantize_q8_k);
                let pairs = packed::q8_k_min_pairs(&q);
                Activations::Q8KPaired(q, pairs)
            }
        }
    }
}

/// `out_i = x · W_iᵀ` for matrices that read the same activations, such as a layer's q, k
/// and v projections or its gate and up projections (every `products[i].0.cols` equal).
///
/// The activations are quantized once per format the matrices pair with, and the row
/// tasks of all the matrices run in one parallel pass: a step waits at one fork-join per
/// group instead of one per matrix (on two cores a 192-row matrix at one token is a few
/// microseconds of work, no more than handing it to the other thread costs). Each result
/// equals [`QMatrix::matmul`] of its matrix bit for bit.
pub fn matmul_group(x: &[f32], products: &mut [(&QMatrix, &mut [f32])]) {
    let Some(cols) = products.first().map(|(w, _)| w.cols) else {
        return;
    };
    let n = x.len() / cols;
    assert_eq!(x.len(), n * cols, "activation length");
    let mut acts: Vec<(ActFormat, Activations<'_>)> = Vec::new();
    // Per matrix: the weights, their activations, the output, and the matrix's first task
    // (tasks are numbered across the group).
    let mut jobs = Vec::with_capacity(products.len());
    let mut tasks = 0;
    for (w, out) in products.iter_mut() {
        assert_eq!(w.cols, cols, "matrices of a group share their input");
        assert_eq!(out.len(), n * w.rows, "output length");
        let format = w.activation_format();
        let a = match acts.iter().position(|(f, _)| *f == format) {
            Some(a) => a,
            None => {
                acts.push((format, format.quantize(x, cols, w.blocks_per_row())));
                acts.len() - 1
            }
        };
        jobs.push((&**w, a, OutPtr(out.as_mut_ptr()), tasks));
        tasks += w.rows.div_ceil(w.task_rows());
    }
    let run = |task: usize| {
        let &(w, a, ptr, first) = jobs
            .iter()
            .rev()
            .find(|job| job.3 <= task)
            .expect("task 0 belongs to the first matrix");
        let r0 = (task - first) * w.task_rows();
        let r1 = (r0 + w.task_rows()).min(w.rows);
        w.compute_rows(r0, r1, &acts[a].1, n, ptr);
    };
    let work: usize = jobs.iter().map(|(w, ..)| w.rows * w.cols * n).sum();
    if work < 1 << 16 {
        (0..tasks).for_each(run);
    } else {
        (0..tasks).into_par_iter().for_each(run);
    }
}

impl QMatrix {
    /// Rows per parallel task of a product with this matrix.
    fn task_rows(&self) -> usize {
        if self.rows >= LARGE_MATRIX_ROWS {
            LARGE_MATRIX_TASK_ROWS
        } else {
            ROWS_PER_TASK
        }
    }

    /// Human-readable name of the storage format.
    pub fn format(&self) -> &'static str {
        match self.data {
            WeightData::F32(_) => "F32",
            WeightData::Q4_0(_) => "Q4_0",
            WeightData::Q4_1(_) => "Q4_1",
            WeightData::Q8_0(_) => "Q8_0",
            WeightData::Q4K(_) => "Q4_K",
            WeightData::Q5K(_) => "Q5_K",
            WeightData::Q6K(_) => "Q6_K",
            WeightData::Q4_1x8(_) => "Q4_1 (packed x8)",
            WeightData::Q4_1x16(_) => "Q4_1 (packed x16)",
            WeightData::Q8_0x8(_) => "Q8_0 (packed x8)",
            WeightData::Q4Kx8(_) => "Q4_K (packed x8)",
            WeightData::Q5Kx8(_) => "Q5_K (packed x8)",
            WeightData::Q6Kx8(_) => "Q6_K (packed x8)",
        }
    }

    /// Bytes the weights occupy.
    pub fn nbytes(&self) -> usize {
        match &self.data {
            WeightData::F32(v) => v.len() * 4,
            WeightData::Q4_0(v) => v.len() * 18,
            WeightData::Q4_1(v) => v.len() * 20,
            WeightData::Q8_0(v) => v.len() * 34,
            WeightData::Q4K(v) => v.len() * std::mem::size_of::<BlockQ4K>(),
            WeightData::Q5K(v) => v.len() * std::mem::size_of::<BlockQ5K>(),
            WeightData::Q6K(v) => v.len() * std::mem::size_of::<BlockQ6K>(),
            WeightData::Q4_1x8(v) => v.len() * std::mem::size_of::<Q4_1x8>(),
            WeightData::Q4_1x16(v) => v.len() * std::mem::size_of::<Q4_1x16>(),
            WeightData::Q8_0x8(v) => v.len() * std::mem::size_of::<Q8_0x8>(),
            WeightData::Q4Kx8(v) => v.len() * std::mem::size_of::<Q4Kx8>(),
            WeightData::Q5Kx8(v) => v.len() * std::mem::size_of::<Q5Kx8>(),
            WeightData::Q6Kx8(v) => v.len() * std::mem::size_of::<Q6Kx8>(),
        }
    }

    /// Repacks Q4_1, Q8_0, Q4_K, Q5_K and Q6_K weights (and Q4_0, rewritten as Q4_1) for the packed kernels
    /// when the kernel tier has them and the row count allows (a multiple of 8);
    /// otherwise returns the matrix unchanged.
    pub fn packed_for_cpu(self) -> Self {
        if !packed::available() || !self.rows.is_multiple_of(GROUP) {
            return self;
        }
        let nb = self.cols / QK;
        let wide = packed::wide_available() && self.rows.is_multiple_of(WIDE_GROUP);
        let data = match self.data {
            WeightData::Q4_0(b) => match packed::q4_0_as_q4_1(&b) {
                Some(q) => WeightData::Q4_1(q),
                None => WeightData::Q4_0(b),
            },
            other => other,
        };
        let data = match data {
            WeightData::Q4_1(b) if wide => {
                WeightData::Q4_1x16(packed::pack_q4_1(&b, self.rows, nb))
            }
            WeightData::Q4_1(b) => WeightData::Q4_1x8(packed::pack_q4_1(&b, self.rows, nb)),
            WeightData::Q8_0(b) => WeightData::Q8_0x8(packed::pack_q8_0(&b, self.rows, nb)),
            WeightData::Q4K(b) => {
                WeightData::Q4Kx8(packed::pack_q4_k(&b, self.rows, self.cols / QK_K))
            }
            WeightData::Q5K(b) => {
                WeightData::Q5Kx8(packed::pack_q5_k(&b, self.rows, self.cols / QK_K))
            }
            WeightData::Q6K(b) => {
                WeightData::Q6Kx8(packed::pack_q6_k(&b, self.rows, self.cols / QK_K))
            }
            other => other,
        };
        Self { data, ..self }
    }

    /// Blocks per row in the storage format (super-blocks of 256 for the K-quants).
    fn blocks_per_row(&self) -> usize {
        match self.data {
            WeightData::Q4K(_)
            | WeightData::Q4Kx8(_)
            | WeightData::Q5K(_)
            | WeightData::Q5Kx8(_)
            | WeightData::Q6K(_)
            | WeightData::Q6Kx8(_) => self.cols / QK_K,
            _ => self.cols / QK,
        }
    }

    /// Writes row `r` as f32 into `out` (embedding lookup).
    pub fn row_f32(&self, r: usize, out: &mut [f32]) {
        let c = self.cols;
        let nb = self.blocks_per_row();
        match &self.data {
            WeightData::F32(v) => out.copy_from_slice(&v[r * c..(r + 1) * c]),
            WeightData::Q4_0(v) => {
                for (b, o) in v[r * nb..(r + 1) * nb].iter().zip(out.chunks_exact_mut(QK)) {
                    let d = b.d.to_f32();
                    for j in 0..16 {
                        o[j] = ((b.qs[j] & 0xF) as i32 - 8) as f32 * d;
                        o[j + 16] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
                    }
                }
            }
            WeightData::Q4_1(v) => {
                for (b, o) in v[r * nb..(r + 1) * nb].iter().zip(out.chunks_exact_mut(QK)) {
                    let (d, m) = (b.d.to_f32(), b.m.to_f32());
                    for j in 0..16 {
                        o[j] = (b.qs[j] & 0xF) as f32 * d + m;
                        o[j + 16] = (b.qs[j] >> 4) as f32 * d + m;
                    }
                }
            }
            WeightData::Q8_0(v) => {
                for (b, o) in v[r * nb..(r + 1) * nb].iter().zip(out.chunks_exact_mut(QK)) {
                    let d = b.d.to_f32();
                    for (oj, &q) in o.iter_mut().zip(&b.qs) {
                        *oj = q as f32 * d;
                    }
                }
            }
            WeightData::Q4K(v) => {
                for (b, o) in v[r * nb..(r + 1) * nb]
                    .iter()
                    .zip(out.chunks_exact_mut(QK_K))
                {
                    dequantize_q4k(b, o);
                }
            }
            WeightData::Q5K(v) => {
                for (b, o) in v[r * nb..(r + 1) * nb]
                    .iter()
                    .zip(out.chunks_exact_mut(QK_K))
                {
                    dequantize_q5k(b, o);
                }
            }
            WeightData::Q6K(v) => {
                for (b, o) in v[r * nb..(r + 1) * nb]
                    .iter()
                    .zip(out.chunks_exact_mut(QK_K))
                {
                    dequantize_q6k(b, o);
                }
            }
            WeightData::Q4_1x8(v) => packed::unpack_row_q4_1(v, nb, r, out),
            WeightData::Q4_1x16(v) => packed::unpack_row_q4_1(v, nb, r, out),
            WeightData::Q8_0x8(v) => packed::unpack_row_q8_0(v, nb, r, out),
            WeightData::Q4Kx8(v) => packed::unpack_row_q4_k(v, nb, r, out),
            WeightData::Q5Kx8(v) => packed::unpack_row_q5_k(v, nb, r, out),
            WeightData::Q6Kx8(v) => packed::unpack_row_q6_k(v, nb, r, out),
        }
    }

    /// `out[t][r] = Σ_c x[t][c] · W[r][c]` for `n = x.len() / cols` tokens.
    ///
    /// Quantized weights are multiplied against activations quantized once per call
    /// (Q8_1 for Q4_1, Q8_K for Q4_K and Q6_K, Q8_0 otherwise), the way ggml does; rows are split
    /// across the rayon pool. [`matmul_group`] does the same for several matrices that
    /// share `x`.
    pub fn matmul(&self, x: &[f32], out: &mut [f32]) {
        matmul_group(x, &mut [(self, out)]);
    }

    /// The activation format these weights multiply against.
    fn activation_format(&self) -> ActFormat {
        match self.data {
            WeightData::F32(_) => ActFormat::F32,
            WeightData::Q4_1(_) => ActFormat::Q8_1,
            WeightData::Q4_1x8(_) | WeightData::Q4_1x16(_) => ActFormat::Q8_1Scaled,
            WeightData::Q4_0(_) | WeightData::Q8_0(_) => ActFormat::Q8_0,
            WeightData::Q8_0x8(_) => ActFormat::Q8_0Scaled,
            WeightData::Q4K(_) | WeightData::Q5K(_) | WeightData::Q6K(_) | WeightData::Q6Kx8(_) => {
                ActFormat::Q8K
            }
            WeightData::Q4Kx8(_) | WeightData::Q5Kx8(_) => ActFormat::Q8KPaired,
        }
    }

    /// Rows `r0..r1` of the product for all `n` tokens, written through `ptr` (row stride
    /// `self.rows`): the packed kernels where the weights are packed, else the row-major
    /// dot products.
    fn compute_rows(&self, r0: usize, r1: usize, acts: &Activations<'_>, n: usize, ptr: OutPtr) {
        if self.run_packed(r0, r1, acts, n, ptr) {
            return;
        }
        let rows = self.rows;
        let mut buf = [0.0f32; MAX_MULTI];
        for t0 in (0..n).step_by(MAX_MULTI) {
            let tc = MAX_MULTI.min(n - t0);
            for r in r0..r1 {
                self.dot_rows(r, acts, t0, &mut buf[..tc]);
                for (k, &v) in buf[..tc].iter().enumerate() {
                    // SAFETY: (t, r) is written by exactly this task; index < n * rows.
                    unsafe { *ptr.0.add((t0 + k) * rows + r) = v };
                }
            }
        }
    }

    /// Computes rows `r0..r1` (whole groups) for all `n` tokens with the packed kernels.
    /// Returns false for unpacked weights.
    fn run_packed(
        &self,
        r0: usize,
        r1: usize,
        acts: &Activations<'_>,
        n: usize,
        ptr: OutPtr,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let nb = self.blocks_per_row();
            let groups = Groups {
                r0,
                r1,
                n,
                rows: self.rows,
                ptr,
            };
            // SAFETY (each kernel call): packed weights exist only when their kernels
            // can run here (`packed_for_cpu`); the activation slices hold `nb` blocks
            // per token.
            match (&self.data, acts) {
                (WeightData::Q4_1x8(w), Activations::Q8_1Scaled(q, scales)) => {
                    with_token_pairs!(groups, GROUP, PACKED_TOKENS, [] gemv_q4_1x8, w, nb, q, scales)
                }
                (WeightData::Q4_1x16(w), Activations::Q8_1Scaled(q, scales)) => {
                    with_token_pairs!(groups, WIDE_GROUP, WIDE_TOKENS, [wide] gemv_q4_1x16, w, nb, q, scales)
                }
                (WeightData::Q8_0x8(w), Activations::Q8_0Scaled(q, scales)) => {
                    with_token_pairs!(groups, GROUP, PACKED_TOKENS, [] gemv_q8_0x8, w, nb, q, scales)
                }
                (WeightData::Q4Kx8(w), Activations::Q8KPaired(q, pairs)) => {
                    with_token_pairs!(groups, GROUP, PACKED_TOKENS, [] gemv_q4_kx8, w, nb, q, pairs)
                }
                (WeightData::Q5Kx8(w), Activations::Q8KPaired(q, pairs)) => {
                    with_token_pairs!(groups, GROUP, PACKED_TOKENS, [] gemv_q5_kx8, w, nb, q, pairs)
                }
                (WeightData::Q6Kx8(w), Activations::Q8K(q)) => groups
                    .run::<GROUP, PACKED_TOKENS, _>(
                        |t0, tc| token_rows::<_, PACKED_TOKENS>(q, nb, t0, tc),
                        |ys, g, t0, tc, out| unsafe {
                            by_token_count!(
                                tc,
                                gemv_q6_kx8,
                                out,
                                &w[g * nb..(g + 1) * nb],
                                ys.as_slice(),
                                t0 == 0
                            )
                        },
                    ),
                _ => return false,
            }
            true
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (r0, r1, acts, n, ptr);
            false
        }
    }

    /// Row `r` against activation rows `t0 .. t0 + out.len()` (at most [`MAX_MULTI`]).
    #[inline]
    fn dot_rows(&self, r: usize, acts: &Activations<'_>, t0: usize, out: &mut [f32]) {
        let c = self.cols;
        let nb = self.blocks_per_row();
        let w = r * nb..(r + 1) * nb;
        fn rows_of<B>(q: &[B], nb: usize, t0: usize, n: usize) -> [&[B]; MAX_MULTI] {
            let mut ys = [&q[..0]; MAX_MULTI];
            for (k, y) in ys.iter_mut().enumerate().take(n) {
                *y = &q[(t0 + k) * nb..(t0 + k + 1) * nb];
            }
            ys
        }
        let n = out.len();
        match (&self.data, acts) {
            (WeightData::F32(v), Activations::F32(x)) => {
                for (k, o) in out.iter_mut().enumerate() {
                    let t = t0 + k;
                    *o = dot_f32(&v[r * c..(r + 1) * c], &x[t * c..(t + 1) * c]);
                }
            }
            (WeightData::Q4_0(v), Activations::Q8_0(q)) => {
                dot_q4_0_q8_0_multi(&v[w], &rows_of(q, nb, t0, n)[..n], out)
            }
            (WeightData::Q4_1(v), Activations::Q8_1(q)) => {
                dot_q4_1_q8_1_multi(&v[w], &rows_of(q, nb, t0, n)[..n], out)
            }
            (WeightData::Q8_0(v), Activations::Q8_0(q)) => {
                dot_q8_0_q8_0_multi(&v[w], &rows_of(q, nb, t0, n)[..n], out)
            }
            (WeightData::Q4K(v), Activations::Q8K(q)) => {
                dot_q4_k_q8_k_multi(&v[w], &rows_of(q, nb, t0, n)[..n], out)
            }
            (WeightData::Q5K(v), Activations::Q8K(q)) => {
                for (o, y) in out.iter_mut().zip(&rows_of(q, nb, t0, n)) {
                    *o = scalar_q5_k_q8_k(&v[w.clone()], y);
                }
            }
            (WeightData::Q6K(v), Activations::Q8K(q)) => {
                for (o, y) in out.iter_mut().zip(&rows_of(q, nb, t0, n)) {
                    *o = scalar_q6_k_q8_k(&v[w.clone()], y);
                }
            }
            _ => unreachable!("activations are quantized to match the weights"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::quantize::{
        quantize_weight_q4_0, quantize_weight_q4_1, quantize_weight_q8_0,
    };
    use rand::{Rng, SeedableRng};

    fn random(seed: u64, n: usize) -> Vec<f32> {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| r.gen_range(-1.0..1.0)).collect()
    }

    #[test]
    fn packed_matmul_and_rows_match_row_major() {
        let (rows, cols) = (48, 96);
        let w = random(1, rows * cols);
        let mats = [
            QMatrix {
                rows,
                cols,
                data: WeightData::Q4_1(quantize_weight_q4_1(&w)),
            },
            QMatrix {
                rows,
                cols,
                data: WeightData::Q8_0(quantize_weight_q8_0(&w)),
            },
        ];
        for m in mats {
            let p = m.clone().packed_for_cpu();
            if !packed::available() {
                assert_eq!(p.format(), m.format());
                continue;
            }
            assert_ne!(p.format(), m.format());
            for n in [1, 2, 3, 4, 5, 9] {
                let x = random(10 + n as u64, n * cols);
                let (mut a, mut b) = (vec![0.0; n * rows], vec![0.0; n * rows]);
                m.matmul(&x, &mut a);
                p.matmul(&x, &mut b);
                for (i, (u, v)) in a.iter().zip(&b).enumerate() {
                    assert!(
                        (u - v).abs() <= 1e-4 * u.abs().max(1.0),
                        "{} n={n} [{i}]: {u} vs {v}",
                        m.format()
                    );
                }
            }
            let (mut a, mut b) = (vec![0.0; cols], vec![0.0; cols]);
            for r in [0, 7, 8, 47] {
                m.row_f32(r, &mut a);
                p.row_f32(r, &mut b);
                assert_eq!(a, b, "row {r}");
            }
        }
    }

    /// Packed Q4_K stores the same values (rows bit-identical) and computes the same
    /// integer sums as the row-major ggml-order kernel; only the float summation order
    /// differs (per-row exact integer sums before one FMA per super-block, instead of
    /// eight byte lanes summed in f32 at the end).
    #[test]
    fn packed_q4_k_matches_row_major_q4_k() {
        use crate::quant::quantize::quantize_weight_q4_k;
        let (rows, cols) = (24, 768);
        let m = QMatrix {
            rows,
            cols,
            data: WeightData::Q4K(quantize_weight_q4_k(&random(6, rows * cols))),
        };
        let p = m.clone().packed_for_cpu();
        if !packed::available() {
            return;
        }
        assert_eq!(p.format(), "Q4_K (packed x8)");
        assert_eq!(p.nbytes(), rows / 8 * 3 * std::mem::size_of::<Q4Kx8>());
        let (mut a, mut b) = (vec![0.0; cols], vec![0.0; cols]);
        for r in 0..rows {
            m.row_f32(r, &mut a);
            p.row_f32(r, &mut b);
            assert_eq!(a, b, "row {r}");
        }
        for n in [1, 2, 4, 5, 9] {
            let x = random(40 + n as u64, n * cols);
            let (mut a, mut b) = (vec![0.0; n * rows], vec![0.0; n * rows]);
            m.matmul(&x, &mut a);
            p.matmul(&x, &mut b);
            for (i, (u, v)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (u - v).abs() <= 1e-5 * u.abs().max(1.0),
                    "n={n} [{i}]: {u} vs {v}"
                );
            }
        }
    }

    /// Packed Q6_K stores the same values as row-major Q6_K and both compute the portable
    /// definition's integer sums and float operations: equal bit for bit, for every token
    /// count (several runs of [`PACKED_TOKENS`] included). Both also match an f32 product
    /// of the dequantized weights up to the Q8_K rounding of the activations.
    /// A K-quant matrix through `matmul`: it packs to `packed_format` of `packed_bytes`
    /// when the tier has kernels; packed and row-major rows and products are the same bits;
    /// and each product is near f32 on the dequantized weights (`close(got, f32)`).
    fn assert_k_quant_matmul_agrees(
        m: QMatrix,
        (packed_format, packed_bytes): (&str, usize),
        seed: u64,
        close: impl Fn(f32, f32) -> bool,
    ) {
        let (rows, cols) = (m.rows, m.cols);
        let p = m.clone().packed_for_cpu();
        if packed::available() {
            assert_eq!(p.format(), packed_format);
            assert_eq!(p.nbytes(), packed_bytes);
        }
        let mut deq = vec![0.0; rows * cols];
        let mut b = vec![0.0; cols];
        for (r, o) in deq.chunks_exact_mut(cols).enumerate() {
            m.row_f32(r, o);
            p.row_f32(r, &mut b);
            assert_eq!(o, &b[..], "row {r}");
        }
        let f = QMatrix {
            rows,
            cols,
            data: WeightData::F32(deq),
        };
        for n in [1, 2, 3, 4, 5, 9] {
            let x = random(seed + n as u64, n * cols);
            let (mut a, mut b, mut c) = (
                vec![0.0; n * rows],
                vec![0.0; n * rows],
                vec![0.0; n * rows],
            );
            m.matmul(&x, &mut a);
            p.matmul(&x, &mut b);
            f.matmul(&x, &mut c);
            assert_eq!(a, b, "n={n}");
            for (i, (u, v)) in a.iter().zip(&c).enumerate() {
                assert!(close(*u, *v), "n={n} [{i}]: {u} vs {v}");
            }
        }
    }

    /// Q5_K (random blocks: all 32 levels, weights up to ~20) through `matmul`.
    #[test]
    fn q5_k_matmul_packed_row_major_and_dequantized_agree() {
        let (rows, cols) = (24, 512);
        let m = QMatrix {
            rows,
            cols,
            data: WeightData::Q5K(crate::dot::tests::random_q5k(4, rows * cols / QK_K)),
        };
        assert_eq!(m.nbytes(), rows * cols / 256 * 176);
        // Half a Q8_K step (max|x| / 254) per value times Σ|w| (weights up to ~20).
        // Packed, the 6-bit scales and minimums take a byte each (1,440 bytes per 8 rows).
        let packed = (
            "Q5_K (packed x8)",
            rows / 8 * 2 * std::mem::size_of::<Q5Kx8>(),
        );
        assert_k_quant_matmul_agrees(m, packed, 70, |u, v| {
            (u - v).abs() < 0.05 * v.abs().max(10.0)
        });
    }

    /// Q6_K, quantized from random weights, through `matmul`.
    #[test]
    fn q6_k_matmul_packed_row_major_and_dequantized_agree() {
        use crate::quant::quantize::quantize_weight_q6_k;
        let (rows, cols) = (24, 512);
        let m = QMatrix {
            rows,
            cols,
            data: WeightData::Q6K(quantize_weight_q6_k(&random(8, rows * cols))),
        };
        assert_eq!(m.nbytes(), rows * cols / 256 * 210);
        // Half a Q8_K step (max|x| / 254) per value times Σ|w| ≈ 0.5 · 512.
        let packed = ("Q6_K (packed x8)", m.nbytes());
        assert_k_quant_matmul_agrees(m, packed, 60, |u, v| (u - v).abs() < 0.1);
    }

    /// Q4_0 runs as packed Q4_1 with `m = −8·d`: the rows it stores are the same values, and
    /// its products differ from ggml's Q4_0 × Q8_0 only by the f16 rounding of the Q8_1
    /// activation block sums (2⁻¹¹ relative) in the `m·s` terms.
    #[test]
    fn packed_q4_0_matches_row_major_q4_0() {
        let (rows, cols) = (48, 256);
        let m = QMatrix {
            rows,
            cols,
            data: WeightData::Q4_0(quantize_weight_q4_0(&random(2, rows * cols))),
        };
        let p = m.clone().packed_for_cpu();
        if !packed::available() {
            return;
        }
        assert!(p.format().starts_with("Q4_1 (packed"), "{}", p.format());
        let (mut a, mut b) = (vec![0.0; cols], vec![0.0; cols]);
        for r in 0..rows {
            m.row_f32(r, &mut a);
            p.row_f32(r, &mut b);
            assert_eq!(a, b, "row {r}");
        }
        for n in [1, 4, 9] {
            let x = random(30 + n as u64, n * cols);
            let (mut a, mut b) = (vec![0.0; n * rows], vec![0.0; n * rows]);
            m.matmul(&x, &mut a);
            p.matmul(&x, &mut b);
            // Per block, |m·s| ≤ 8·max|d|·32·max|x| ≈ 8 · (1/8) · 32 = 32; 2⁻¹¹ of it
            // over 8 blocks bounds the difference by ~0.13.
            for (i, (u, v)) in a.iter().zip(&b).enumerate() {
                assert!((u - v).abs() < 0.13, "n={n} [{i}]: {u} vs {v}");
            }
        }
    }

    /// A group of matrices that share their input (mixed formats, packed and not, and
    /// fewer rows than a task) gives each matrix exactly what its own `matmul` gives.
    #[test]
    fn a_group_equals_its_matrices_one_by_one() {
        let cols = 256;
        let mats = [
            (
                576,
                WeightData::Q4_1(quantize_weight_q4_1(&random(11, 576 * cols))),
            ),
            (
                192,
                WeightData::Q8_0(quantize_weight_q8_0(&random(12, 192 * cols))),
            ),
            (
                64,
                WeightData::Q4_1(quantize_weight_q4_1(&random(13, 64 * cols))),
            ),
            (4, WeightData::F32(random(14, 4 * cols))),
        ]
        .map(|(rows, data)| QMatrix { rows, cols, data }.packed_for_cpu());
        for n in [1, 3, 17, 64] {
            let x = random(50 + n as u64, n * cols);
            let mut outs: Vec<Vec<f32>> = mats.iter().map(|m| vec![0.0; n * m.rows]).collect();
            let mut products: Vec<(&QMatrix, &mut [f32])> = mats
                .iter()
                .zip(outs.iter_mut())
                .map(|(m, o)| (m, o.as_mut_slice()))
                .collect();
            matmul_group(&x, &mut products);
            for (m, got) in mats.iter().zip(&outs) {
                let mut want = vec![0.0; n * m.rows];
                m.matmul(&x, &mut want);
                assert_eq!(got, &want, "{} rows {} n={n}", m.format(), m.rows);
            }
        }
    }

    /// A matrix split into [`LARGE_MATRIX_TASK_ROWS`]-row tasks (the last one partial)
    /// computes every row as a small matrix of the same rows does, bit for bit.
    #[test]
    fn large_matrix_tasks_cover_every_row() {
        let (rows, cols) = (LARGE_MATRIX_ROWS + 48, 64);
        let blocks = quantize_weight_q4_1(&random(15, rows * cols));
        let nb = cols / 32;
        let matrix = |r0: usize, r1: usize| {
            QMatrix {
                rows: r1 - r0,
                cols,
                data: WeightData::Q4_1(blocks[r0 * nb..r1 * nb].to_vec()),
            }
            .packed_for_cpu()
        };
        let large = matrix(0, rows);
        assert_eq!(large.task_rows(), LARGE_MATRIX_TASK_ROWS);
        for n in [1, 9] {
            let x = random(60 + n as u64, n * cols);
            let mut got = vec![0.0; n * rows];
            large.matmul(&x, &mut got);
            for r0 in [0, 240, rows - 48] {
                let mut want = vec![0.0; n * 48];
                matrix(r0, r0 + 48).matmul(&x, &mut want);
                for t in 0..n {
                    let row = &got[t * rows + r0..t * rows + r0 + 48];
                    assert_eq!(row, &want[t * 48..(t + 1) * 48], "rows {r0}.. token {t}");
                }
            }
        }
    }

    #[test]
    fn unpacked_small_matrices_are_computed() {
        // Fewer rows than a packed group: the row-major path must handle them.
        let (rows, cols) = (4, 64);
        let w = random(3, rows * cols);
        let m = QMatrix {
            rows,
            cols,
            data: WeightData::F32(w.clone()),
        };
        let x = random(4, cols);
        let mut out = vec![0.0; rows];
        m.matmul(&x, &mut out);
        for r in 0..rows {
            let want: f32 = w[r * cols..(r + 1) * cols]
                .iter()
                .zip(&x)
                .map(|(a, b)| a * b)
                .sum();
            assert!((out[r] - want).abs() < 1e-4);
        }
    }

    #[test]
    fn q4_k_matmul_matches_f32_on_the_dequantized_weights() {
        use crate::quant::quantize::quantize_weight_q4_k;
        let (rows, cols) = (40, 512);
        let w = random(5, rows * cols);
        let q = QMatrix {
            rows,
            cols,
            data: WeightData::Q4K(quantize_weight_q4_k(&w)),
        };
        assert_eq!(q.nbytes(), rows * cols / 256 * 144);
        let mut deq = vec![0.0; rows * cols];
        for (r, o) in deq.chunks_exact_mut(cols).enumerate() {
            q.row_f32(r, o);
        }
        let f = QMatrix {
            rows,
            cols,
            data: WeightData::F32(deq),
        };
        for n in [1, 3, 4, 9] {
            let x = random(20 + n as u64, n * cols);
            let (mut a, mut b) = (vec![0.0; n * rows], vec![0.0; n * rows]);
            q.matmul(&x, &mut a);
            f.matmul(&x, &mut b);
            // Only the Q8_K rounding of the activations separates them: at most half a
            // step (max|x| / 254) per value, times Σ|w| ≈ 0.5 · 512.
            for (i, (u, v)) in a.iter().zip(&b).enumerate() {
                assert!((u - v).abs() < 0.1, "n={n} [{i}]: {u} vs {v}");
            }
        }
    }
}
