//! The `corvid` command: `generate` (offline), `serve` (OpenAI-compatible server with
//! Prometheus metrics), `bench` and `cpu`. A library so that the same command runs from
//! the native binary and from the Python package's `corvid` console script (one copy of
//! the engine in the wheel).

mod cpu;
mod generate;
mod serve;

use clap::{Parser, Subcommand};
use corvid_model::chat_template::isolated::{serve_stdio, WorkerCommand};
use std::ffi::OsString;

#[derive(Parser)]
#[command(
    name = "corvid",
    version,
    about = "LLM inference server with first-class observability"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text offline from one prompt or a file of prompts.
    Generate(generate::GenerateArgs),
    /// Serve the OpenAI-compatible API and Prometheus /metrics.
    Serve(serve::ServeArgs),
    /// Benchmarks: `serve` (HTTP load generator) and `throughput` (offline engine).
    #[command(subcommand)]
    Bench(corvid_bench::BenchCommand),
    /// Show the CPU and the kernel tiers it supports (see CORVID_ISA).
    Cpu(cpu::CpuArgs),
    /// Internal: a chat-template render worker of `corvid serve` (memory-limited, talks
    /// over stdin/stdout).
    #[command(hide = true)]
    TemplateWorker,
}

/// The subcommand that runs a render worker ([`serve_stdio`]).
const TEMPLATE_WORKER: &str = "template-worker";

/// Runs the command line `args` (program name first) and returns the process exit code:
/// 0 on success, 1 when the command fails, 2 for bad flags or a bad `CORVID_ISA`.
/// `this` starts the same command line again (no arguments yet): `corvid serve` runs its
/// chat-template workers with it.
pub fn run<I, T>(args: I, this: WorkerCommand) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // A host process (the Python console script) may have set a subscriber already.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    if let Command::TemplateWorker = cli.command {
        return match serve_stdio() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: template worker: {e}");
                1
            }
        };
    }
    // A bad CORVID_ISA is a one-line error before any work, not a panic mid-load.
    match corvid_kernels::isa::Isa::from_env() {
        Ok(tier) => tracing::info!(
            "kernel tier {tier} (CPU best: {})",
            corvid_kernels::isa::Isa::detect()
        ),
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    }
    let result = match cli.command {
        Command::Generate(args) => generate::run(args),
        Command::Bench(cmd) => corvid_bench::run(cmd),
        Command::Cpu(args) => cpu::run(args),
        Command::Serve(args) => {
            let mut worker = this;
            worker.args.push(TEMPLATE_WORKER.into());
            serve::run(args, worker)
        }
        Command::TemplateWorker => unreachable!("handled above"),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}
