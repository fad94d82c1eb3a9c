//! The kernel tier every hot path dispatches on, detected once per process.
//!
//! Each kernel has a portable Rust definition and SIMD versions for higher tiers. The
//! tier is the best one the CPU supports unless `CORVID_ISA` asks for a lower one, so a
//! single machine can run (and test) every tier it has the instructions for. Asking for a tier the
//! CPU lacks is an error, never a silent fallback: a test run that claims to cover the
//! AVX-512 path must really have run it.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The environment variable that forces a lower tier (`portable`, `avx2`, `avxvnni`,
/// `avx512vnni`).
pub const ISA_ENV: &str = "CORVID_ISA";

/// Kernel tiers, ordered from least to most capable: a tier's kernels may use every
/// instruction of the tiers below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust: the definition every SIMD kernel is checked against.
    Portable,
    /// AVX2 + FMA + F16C (x86-64-v3): `vpmaddubsw`/`vpmaddwd` integer dots, as ggml's x86 path.
    Avx2,
    /// AVX2 plus AVX-VNNI: the VEX-encoded 256-bit `vpdpbusd` of CPUs without AVX-512
    /// (Alder Lake and later clients, Sierra Forest Xeons); Zen 5 has it beside AVX-512.
    AvxVnni,
    /// AVX-512 VNNI with VL: `vpdpbusd` on 256- and 512-bit registers. Zen 4 and Ice
    /// Lake have it without AVX-VNNI, so the tiers below it are not always all present.
    Avx512Vnni,
}

impl Isa {
    /// Every tier, lowest first.
    pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni];

    /// The name `CORVID_ISA` accepts and logs print.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
        }
    }

    /// True when this CPU has every instruction the tier's kernels use.
    pub fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c");
            match self {
                Isa::Portable => true,
                Isa::Avx2 => avx2,
                Isa::AvxVnni => avx2 && is_x86_feature_detected!("avxvnni"),
                Isa::Avx512Vnni => {
                    avx2 && is_x86_feature_detected!("avx512vnni")
                        && is_x86_feature_detected!("avx512vl")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Isa::Portable
        }
    }

    /// The best tier this CPU supports, ignoring `CORVID_ISA`.
    pub fn detect() -> Isa {
        Isa::supported().pop().unwrap_or(Isa::Portable)
    }

    /// Every tier this CPU can run, lowest first (what a test run should cover).
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|t| t.runs_here()).collect()
    }

    /// The tier `CORVID_ISA` asks for, or the detected one when it is unset or empty.
    ///
    /// # Errors
    /// An unknown name, or a tier this CPU cannot run.
    pub fn from_env() -> Result<Isa, IsaError> {
        Isa::resolve(std::env::var(ISA_ENV).ok().as_deref(), &Isa::supported())
    }

    /// The tier to run when `requested` is asked for on a CPU that runs `supported`
    /// (lowest first).
    fn resolve(requested: Option<&str>, supported: &[Isa]) -> Result<Isa, IsaError> {
        let best = supported.last().copied().unwrap_or(Isa::Portable);
        match requested {
            Some(v) if !v.trim().is_empty() => {
                let wanted: Isa = v.parse()?;
                if !supported.contains(&wanted) {
                    return Err(IsaError::Unsupported { wanted, best });
                }
                Ok(wanted)
            }
            _ => Ok(best),
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isa {
    type Err = IsaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        Isa::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or(IsaError::Unknown(s))
    }
}

/// Why `CORVID_ISA` cannot be honoured.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IsaError {
    /// Not one of the tier names.
    #[error("{ISA_ENV}={0:?} is not a kernel tier (portable, avx2, avxvnni, avx512vnni)")]
    Unknown(String),
    /// A tier whose instructions the CPU lacks.
    #[error("{ISA_ENV}={wanted} needs instructions this CPU lacks (its best tier is {best})")]
    Unsupported {
        /// The tier asked for.
        wanted: Isa,
        /// The best tier the CPU has.
        best: Isa,
    },
}

/// The tier all kernels of this process run on, fixed at first use.
///
/// Callers that can report errors (the binary) should call [`Isa::from_env`] first; here
/// an invalid `CORVID_ISA` panics with the same message, because running a different
/// tier than the one asked for would make a test run lie about what it covered.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| Isa::from_env().unwrap_or_else(|e| panic!("{e}")))
}

/// True when the AVX2/FMA/F16C kernels may run.
#[inline]
pub fn avx2() -> bool {
    isa() >= Isa::Avx2
}

/// True when the AVX-512 VNNI kernels (EVEX `vpdpbusd`, 256- and 512-bit) may run.
#[inline]
pub fn vnni() -> bool {
    isa() == Isa::Avx512Vnni
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_tiers_are_ordered() {
        for t in Isa::ALL {
            assert_eq!(t.name().parse::<Isa>(), Ok(t));
        }
        assert_eq!(" AVX2 ".parse::<Isa>(), Ok(Isa::Avx2));
        assert!(matches!("sse".parse::<Isa>(), Err(IsaError::Unknown(_))));
        assert!(Isa::Portable < Isa::Avx2 && Isa::Avx2 < Isa::AvxVnni);
        assert!(Isa::AvxVnni < Isa::Avx512Vnni);
    }

    #[test]
    fn the_active_tier_is_supported_and_never_above_the_cpu() {
        let active = isa();
        assert!(active <= Isa::detect());
        assert!(Isa::supported().contains(&active));
        eprintln!("kernel tier {active} (CPU best {})", Isa::detect());
    }

    #[test]
    fn a_lower_tier_is_honoured_and_a_higher_one_is_an_error_naming_both() {
        let zen3 = [Isa::Portable, Isa::Avx2];
        assert_eq!(Isa::resolve(None, &zen3), Ok(Isa::Avx2));
        assert_eq!(Isa::resolve(Some(""), &zen3), Ok(Isa::Avx2));
        assert_eq!(Isa::resolve(Some("portable"), &zen3), Ok(Isa::Portable));
        let e = Isa::resolve(Some("avx512vnni"), &zen3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "CORVID_ISA=avx512vnni needs instructions this CPU lacks (its best tier is avx2)"
        );
        assert!(Isa::resolve(Some("avx9"), &zen3).is_err());
    }

    /// Zen 4 and Ice Lake have AVX-512 VNNI but not AVX-VNNI: the tier below their best
    /// is not theirs to run, and asking for it must fail rather than fault.
    #[test]
    fn a_missing_middle_tier_is_an_error_even_below_the_best() {
        let zen4 = [Isa::Portable, Isa::Avx2, Isa::Avx512Vnni];
        assert_eq!(Isa::resolve(None, &zen4), Ok(Isa::Avx512Vnni));
        assert_eq!(Isa::resolve(Some("avx2"), &zen4), Ok(Isa::Avx2));
        let e = Isa::resolve(Some("avxvnni"), &zen4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "CORVID_ISA=avxvnni needs instructions this CPU lacks (its best tier is avx512vnni)"
        );
    }
}
