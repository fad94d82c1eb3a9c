//! corvid's benchmarks.
//!
//! * [`serve`] — `corvid bench serve`: a streaming load generator for any
//!   OpenAI-compatible server (corvid, llama.cpp's llama-server, vLLM), reporting
//!   requests/s, tokens/s, TTFT / inter-token / end-to-end percentiles and errors.
//! * [`throughput`] — `corvid bench throughput`: the offline engine benchmark under the
//!   same [`workload`]s, plus single-stream prefill/decode speed, prefix-cache TTFT and
//!   the paged-vs-contiguous KV capacity report.
//! * [`soak`] — `corvid bench soak`: ten thousand mixed requests (cancellations, client
//!   timeouts, garbage) against a running server, then checks that it lost nothing.
//! * [`kernels`] — `corvid bench kernels`: matmul rates per weight format and token count
//!   as fractions of the machine's measured int8 peak and memory bandwidth.
//!
//! The binary adds `Bench { #[command(subcommand)] cmd: BenchCommand }` and calls [`run`].

pub mod client;
pub mod kernels;
pub mod kv_capacity;
pub mod prompt;
pub mod report;
pub mod scrape;
pub mod serve;
pub mod sink;
pub mod soak;
pub mod sse;
pub mod stats;
pub mod throughput;
pub mod workload;

pub use serve::ServeBenchArgs;
pub use throughput::ThroughputArgs;

/// `corvid bench` subcommands.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Load-test an OpenAI-compatible server over HTTP (streaming).
    Serve(ServeBenchArgs),
    /// Soak a running server with thousands of mixed, partly hostile requests, then check
    /// it lost nothing (issue #17).
    Soak(soak::SoakArgs),
    /// Benchmark the engine offline (no HTTP): throughput, single-stream, prefix TTFT.
    Throughput(ThroughputArgs),
    /// The matmul kernels against this machine's int8 peak and memory bandwidth.
    Kernels(kernels::KernelsArgs),
}

/// Runs a `corvid bench` subcommand.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Serve(a) => serve::run(a),
        BenchCommand::Soak(a) => soak::run(a),
        BenchCommand::Throughput(a) => throughput::run(a),
        BenchCommand::Kernels(a) => kernels::run(a),
    }
}

/// Writes `value` as pretty JSON to `path`, creating parent folders.
pub fn write_json<T: serde::Serialize>(path: &std::path::Path, value: &T) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "result written");
    Ok(())
}
