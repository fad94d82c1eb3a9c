//! `corvid bench kernels`: the matmul kernels against the machine's own limits.
//!
//! It measures the int8 multiply-accumulate peak of the active tier's instruction (per
//! core and on all cores) and streaming read bandwidth, then times every weight format's
//! matrix products on the default model's matrix shapes, grouped as the model runs them
//! (`matmul_group`), at several token counts `m`,
//! and prints each as a fraction of the limit that applies: bandwidth at m = 1 (each
//! weight byte is read once per step), compute at large m. The bandwidth that applies is
//! that of reading as many bytes as one forward's weights: a machine whose last-level
//! cache holds them (480 MiB on the Xeon of BENCHMARKS.md, against 84 MB of Q4_1) serves
//! decode from that cache, faster than the DRAM figure also printed.

use anyhow::bail;
use clap::Args;
use corvid_kernels::isa::{isa, Isa};
use corvid_kernels::matmul::{matmul_group, QMatrix, WeightData};
use corvid_kernels::peak;
use corvid_kernels::quant::quantize::{
    quantize_weight_q4_0, quantize_weight_q4_1, quantize_weight_q4_k, quantize_weight_q5_k,
    quantize_weight_q6_k, quantize_weight_q8_0,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Options of `corvid bench kernels`.
#[derive(Clone, Debug, Args)]
pub struct KernelsArgs {
    /// Token counts (rows of the activation matrix) to time the GEMM at.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64,256")]
    pub m: Vec<usize>,
    /// Weight formats to time (q4_0, q4_1, q8_0, q4_k, q5_k, q6_k).
    #[arg(long, value_delimiter = ',', default_value = "q4_1,q8_0,q4_0,q4_k")]
    pub formats: Vec<String>,
    /// Least time spent per measurement; the best of its repetitions is reported.
    #[arg(long, default_value = "0.5")]
    pub seconds: f64,
    /// Write the results as JSON here as well.
    #[arg(long)]
    pub result_json: Option<std::path::PathBuf>,
}

/// The default model's (SmolLM2-135M) matrices, `(rows, cols)`, one layer's worth in the
/// groups the model multiplies together (those sharing an input): q, k and v; o; gate and
/// up; down. There are 30 layers, then the tied output head.
const LAYER: [&[(usize, usize)]; 4] = [
    &[(576, 576), (192, 576), (192, 576)],
    &[(576, 576)],
    &[(1536, 576), (1536, 576)],
    &[(576, 1536)],
];
const LAYERS: usize = 30;
const OUTPUT: &[(usize, usize)] = &[(49152, 576)];

/// One GEMM measurement.
#[derive(Clone, Debug, Serialize)]
pub struct GemmResult {
    /// Weight format, as `QMatrix::format` names it.
    pub format: String,
    /// Tokens.
    pub m: usize,
    /// Multiply-accumulates of one forward's matrices (30 layers + output head).
    pub macs: u64,
    /// Weight bytes one forward reads.
    pub weight_bytes: u64,
    /// Best time for one forward's matrices.
    pub seconds: f64,
    /// Achieved rate.
    pub gmacs: f64,
    /// Weight bytes per second.
    pub gbytes_per_s: f64,
    /// Achieved / measured all-core int8 peak of the instruction this format's kernel
    /// uses (512-bit `vpdpbusd` for the sixteen-row packing, 256-bit otherwise).
    pub of_compute_peak: f64,
    /// Streaming read bandwidth over a buffer of `weight_bytes` on all cores, GB/s: the
    /// roof of m = 1 (from DRAM, or from the last-level cache if it holds that much).
    pub footprint_read_gbytes_per_s: f64,
    /// Achieved weight bandwidth / `footprint_read_gbytes_per_s`.
    pub of_bandwidth: f64,
}

/// All of a `corvid bench kernels` run.
#[derive(Clone, Debug, Serialize)]
pub struct KernelsReport {
    /// The tier the kernels ran on.
    pub tier: String,
    /// Threads used for the all-core figures and the GEMMs.
    pub threads: usize,
    /// int8 MAC/s of one core with the tier's kernel instruction sequence (256-bit).
    pub peak_gmacs_per_core: f64,
    /// The same on all cores.
    pub peak_gmacs: f64,
    /// On the AVX-512 VNNI tier: the 512-bit `vpdpbusd` peak on all cores, the limit of
    /// the sixteen-row Q4_1 kernel.
    pub peak_gmacs_512: Option<f64>,
    /// Streaming read bandwidth over 512 MiB (more than most last-level caches) on all
    /// cores, GB/s.
    pub read_gbytes_per_s: f64,
    /// The GEMMs.
    pub gemm: Vec<GemmResult>,
}

/// Repetitions every measurement gets at least, however long one takes. The peak and
/// bandwidth loops repeat thousands of times within the budget and keep their best, so a
/// product taking a third of a second (Q4_1 at m = 256) must get more than the budget's one
/// or two tries for its best to be comparable on a VM whose speed swings from second to
/// second (BENCHMARKS.md).
const MIN_REPETITIONS: usize = 5;

/// Best time of `f` over repetitions filling at least `budget`, and at least
/// [`MIN_REPETITIONS`] of them.
fn best_of(budget: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm caches and the thread pool
    let (start, mut best, mut reps) = (Instant::now(), f64::MAX, 0);
    while start.elapsed() < budget || reps < MIN_REPETITIONS {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        reps += 1;
    }
    best
}

/// The int8 peak a format's products are measured against: the 512-bit `vpdpbusd` peak
/// for the sixteen-row kernel (the only one on 512-bit registers), the tier's 256-bit peak
/// for every other.
fn compute_peak(data: &WeightData, peak_256: f64, peak_512: Option<f64>) -> f64 {
    match (data, peak_512) {
        (WeightData::Q4_1x16(_), Some(p)) => p,
        _ => peak_256,
    }
}

/// int8 MAC/s of `tier`'s loop, on one thread or on every rayon thread at once.
fn int8_peak(tier: Isa, wide: bool, all_cores: bool, budget: Duration) -> f64 {
    const ITERS: u64 = 2_000_000;
    let threads = if all_cores {
        rayon::current_num_threads()
    } else {
        1
    };
    let secs = best_of(budget, || {
        let x: i32 = (0..threads)
            .into_par_iter()
            .map(|_| peak::int8_macs(tier, wide, ITERS))
            .sum();
        std::hint::black_box(x);
    });
    (threads as u64 * ITERS * peak::int8_macs_per_iter(tier, wide)) as f64 / secs / 1e9
}

/// Bytes the DRAM read-bandwidth probe streams.
const DRAM_PROBE_BYTES: usize = 512 << 20;

/// Streaming read bandwidth over a buffer of `bytes`, all threads.
fn read_bandwidth(bytes: usize, budget: Duration) -> f64 {
    let buf = vec![1u64; bytes / 8];
    let chunk = buf.len().div_ceil(rayon::current_num_threads());
    let secs = best_of(budget, || {
        let x: u64 = buf.par_chunks(chunk).map(peak::stream_read).sum();
        std::hint::black_box(x);
    });
    (buf.len() * 8) as f64 / secs / 1e9
}

/// A random `rows × cols` matrix in `format`, packed for this CPU as the loader does.
fn matrix(format: &str, rows: usize, cols: usize) -> anyhow::Result<QMatrix> {
    let mut rng = StdRng::seed_from_u64((rows * 31 + cols) as u64);
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.gen_range(-0.5..0.5)).collect();
    let data = match format {
        "q4_0" => WeightData::Q4_0(quantize_weight_q4_0(&w)),
        "q4_1" => WeightData::Q4_1(quantize_weight_q4_1(&w)),
        "q8_0" => WeightData::Q8_0(quantize_weight_q8_0(&w)),
        "q4_k" => WeightData::Q4K(quantize_weight_q4_k(&w)),
        "q5_k" => WeightData::Q5K(quantize_weight_q5_k(&w)),
        "q6_k" => WeightData::Q6K(quantize_weight_q6_k(&w)),
        other => bail!("unknown weight format {other:?} (q4_0, q4_1, q8_0, q4_k, q5_k, q6_k)"),
    };
    Ok(QMatrix { rows, cols, data }.packed_for_cpu())
}

/// Runs the benchmark and prints its tables, from inside a rayon pool of its own: the
/// model's forward calls the products from inside its pool, where a product's fork-join
/// only hands tasks to the other threads. Called from outside, every product also waits
/// for the pool to take the job and for the caller to be woken: measured 1.3× slower at
/// 1536 × 576, m = 64, and 2.5–4.6× at 576 × 576, m = 16 (BENCHMARKS.md).
pub fn run(args: KernelsArgs) -> anyhow::Result<()> {
    rayon::ThreadPoolBuilder::new()
        .build()?
        .install(|| measure(args))
}

/// [`run`]'s body, on a pool thread.
fn measure(args: KernelsArgs) -> anyhow::Result<()> {
    let tier = isa();
    let budget = Duration::from_secs_f64(args.seconds);
    let threads = rayon::current_num_threads();
    if tier == Isa::Portable {
        bail!("the portable tier has no int8 instruction to measure a peak of; run with CORVID_ISA=avx2 or higher");
    }
    let peak_core = int8_peak(tier, false, false, budget);
    let peak_all = int8_peak(tier, false, true, budget);
    let peak_512 = (tier == Isa::Avx512Vnni).then(|| int8_peak(tier, true, true, budget));
    let bandwidth = read_bandwidth(DRAM_PROBE_BYTES, budget);
    println!("kernel tier {tier}, {threads} threads");
    println!(
        "int8 peak: {peak_core:.1} GMAC/s per core, {peak_all:.1} GMAC/s on all cores (256-bit)"
    );
    if let Some(p) = peak_512 {
        println!(
            "           {p:.1} GMAC/s on all cores with 512-bit vpdpbusd (the x16 Q4_1 kernel's peak)"
        );
    }
    println!("read bandwidth: {bandwidth:.1} GB/s on all cores over 512 MiB");
    println!();
    println!(
        "{:<26} {:>4} {:>10} {:>9} {:>9} {:>8} {:>8}",
        "format", "m", "ms/fwd", "GMAC/s", "GB/s", "%peak", "%bw"
    );
    let mut gemm = Vec::new();
    for format in &args.formats {
        // Every matrix of a forward, distinct, so m = 1 streams them from memory as decode
        // does instead of re-reading one matrix from cache.
        let groups: Vec<Vec<QMatrix>> = (0..LAYERS)
            .flat_map(|_| LAYER)
            .chain([OUTPUT])
            .map(|group| {
                group
                    .iter()
                    .map(|&(rows, cols)| matrix(format, rows, cols))
                    .collect::<anyhow::Result<_>>()
            })
            .collect::<anyhow::Result<_>>()?;
        let mats = || groups.iter().flatten();
        let macs_per_token: u64 = mats().map(|w| (w.rows * w.cols) as u64).sum();
        let bytes: u64 = mats().map(|w| w.nbytes() as u64).sum();
        let first = mats().next().expect("the model has matrices");
        let roof = read_bandwidth(bytes as usize, budget);
        println!(
            "{}: {:.1} MB of weights per forward; reading that many bytes: {roof:.1} GB/s",
            first.format(),
            bytes as f64 / 1e6
        );
        // One output buffer per matrix of the largest group.
        let largest = groups.iter().map(Vec::len).max().unwrap_or(0);
        let peak = compute_peak(&first.data, peak_all, peak_512);
        for &m in &args.m {
            let widest = mats().map(|w| w.rows.max(w.cols)).max().unwrap_or(0);
            let x: Vec<f32> = (0..m * widest)
                .map(|i| ((i % 97) as f32 - 48.0) / 50.0)
                .collect();
            let mut outs = vec![vec![0.0f32; m * widest]; largest];
            let secs = best_of(budget, || {
                for group in &groups {
                    let mut products: Vec<(&QMatrix, &mut [f32])> = group
                        .iter()
                        .zip(outs.iter_mut())
                        .map(|(w, out)| (w, &mut out[..m * w.rows]))
                        .collect();
                    matmul_group(&x[..m * group[0].cols], &mut products);
                }
            });
            let macs = macs_per_token * m as u64;
            let gmacs = macs as f64 / secs / 1e9;
            let gbs = bytes as f64 / secs / 1e9;
            // Q4_0 runs as packed Q4_1 where the tier has packed kernels: name both.
            let computed = first.format();
            let label = if computed.starts_with(format.to_uppercase().as_str()) {
                computed.to_string()
            } else {
                format!("{} as {computed}", format.to_uppercase())
            };
            let r = GemmResult {
                format: label,
                m,
                macs,
                weight_bytes: bytes,
                seconds: secs,
                gmacs,
                gbytes_per_s: gbs,
                of_compute_peak: gmacs / peak,
                footprint_read_gbytes_per_s: roof,
                of_bandwidth: gbs / roof,
            };
            println!(
                "{:<26} {:>4} {:>10.2} {:>9.1} {:>9.2} {:>7.1}% {:>7.1}%",
                r.format,
                m,
                secs * 1e3,
                gmacs,
                gbs,
                100.0 * r.of_compute_peak,
                100.0 * r.of_bandwidth
            );
            gemm.push(r);
        }
    }
    let report = KernelsReport {
        tier: tier.to_string(),
        threads,
        peak_gmacs_per_core: peak_core,
        peak_gmacs: peak_all,
        peak_gmacs_512: peak_512,
        read_gbytes_per_s: bandwidth,
        gemm,
    };
    if let Some(path) = &args.result_json {
        crate::write_json(path, &report)?;
    }
    Ok(())
}
