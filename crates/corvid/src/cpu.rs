//! `corvid cpu`: which kernel tiers this machine runs, so a test or benchmark log can be
//! traced to the CPU it ran on.

use clap::Args;
use corvid_kernels::isa::{Isa, ISA_ENV};

/// The CPU flags the kernel tiers depend on, as `/proc/cpuinfo` spells them.
const TIER_FLAGS: [&str; 8] = [
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
];

/// Options of `corvid cpu`.
#[derive(Args, Debug)]
pub struct CpuArgs {
    /// Print only the tiers a run can cover, lowest first, one per line (for scripts):
    /// every tier up to the active one, so `CORVID_ISA=avx2` makes this machine stand in
    /// for an AVX2-only one.
    #[arg(long)]
    tiers: bool,
}

/// Prints the CPU model, the flags that matter, the best and the active kernel tier.
pub fn run(args: CpuArgs) -> anyhow::Result<()> {
    let active = Isa::from_env()?;
    if args.tiers {
        for t in Isa::supported().into_iter().filter(|&t| t <= active) {
            println!("{t}");
        }
        return Ok(());
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let flags = field("flags").unwrap_or_default();
    let have: Vec<&str> = TIER_FLAGS
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    println!(
        "cpu: {}",
        field("model name").as_deref().unwrap_or("unknown")
    );
    println!("cores: {}", std::thread::available_parallelism()?);
    println!("tier flags: {}", have.join(" "));
    let supported: Vec<&str> = Isa::supported().into_iter().map(Isa::name).collect();
    println!("supported tiers: {}", supported.join(" "));
    println!("best tier: {}", Isa::detect());
    let asked = std::env::var(ISA_ENV).unwrap_or_default();
    println!("active tier: {active} ({ISA_ENV}={asked})");
    Ok(())
}
