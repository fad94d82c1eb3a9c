//! The machine's own limits, measured the way the kernels would meet them: the int8
//! multiply-accumulate peak of a tier's instruction, and streaming read bandwidth.
//! `corvid bench kernels` reports each GEMM as a fraction of these.

use crate::isa::Isa;
use std::hint::black_box;

/// Multiply-accumulates of int8 pairs done by [`int8_macs`] for `iters` iterations at `tier`
/// (what its loop body computes, for turning a time into MAC/s).
pub fn int8_macs_per_iter(tier: Isa, wide: bool) -> u64 {
    match (tier, wide) {
        (Isa::Portable, _) => 0,
        // AVX2: 8 chains x 32 byte pairs; VNNI: 12 chains x 32 (ymm) or 64 (zmm).
        (Isa::Avx2, _) => 8 * 32,
        (Isa::Avx512Vnni, true) => VNNI_CHAINS as u64 * 64,
        _ => VNNI_CHAINS as u64 * 32,
    }
}

/// Independent accumulators of the VNNI peak loops. `vpdpbusd` accumulates into its
/// destination (latency 5 on Intel, two or more issued per cycle), so eight chains
/// measured only 0.7–0.8× of the instruction's throughput (281–308 against 380–427
/// GMAC/s per core with 12–24 chains on the Xeon of BENCHMARKS.md); twelve fill it and
/// still leave the VEX form's sixteen registers room for its two operands.
const VNNI_CHAINS: usize = 12;

/// Runs `iters` iterations of the tier's int8 multiply-accumulate in independent chains
/// (enough to cover the instructions' latency) and returns a value that depends on all of
/// them. `wide` uses 512-bit registers on the AVX-512 tier.
///
/// The AVX2 loop is ggml's and the packed kernels' sequence: `vpmaddubsw` (u8 x i8 pairs
/// to i16), `vpmaddwd` with ones (to i32), `vpaddd`, in eight chains (only the `vpaddd`
/// is a dependency). The VNNI loops are one `vpdpbusd` (VEX-encoded on the AVX-VNNI
/// tier) in [`VNNI_CHAINS`] chains.
/// Returns 0 for the portable tier, which has no such instruction.
pub fn int8_macs(tier: Isa, wide: bool, iters: u64) -> i32 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: each loop runs only at a tier the CPU supports (callers pass a tier from
    // `Isa::supported`, checked again here).
    unsafe {
        assert!(tier.runs_here(), "tier {tier} not supported here");
        match (tier, wide) {
            (Isa::Avx512Vnni, true) => x86::vnni512(iters),
            (Isa::Avx512Vnni, false) => x86::vnni256(iters),
            (Isa::AvxVnni, _) => x86::avx_vnni(iters),
            (Isa::Avx2, _) => x86::avx2(iters),
            (Isa::Portable, _) => 0,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (tier, wide, iters);
        0
    }
}

/// Reads `buf` once, 64 bytes at a time, and returns a checksum (so the reads happen).
/// Bandwidth = `buf.len()` / time; split `buf` across threads for the machine's total.
pub fn stream_read(buf: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    for chunk in buf.chunks_exact(8) {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a ^= v;
        }
    }
    black_box(acc.iter().fold(0, |a, &b| a ^ b))
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! Each step is inline assembly, so the compiler can neither fold the loop-invariant
    //! products into one multiplication nor drop them; only the accumulate is a chain.

    use std::arch::asm;
    use std::arch::x86_64::*;

    use super::VNNI_CHAINS;

    macro_rules! chains {
        ($n:expr, $ty:ty, $zero:expr, $iters:expr, $step:ident, $fold:expr) => {{
            let mut acc: [$ty; $n] = [$zero; $n];
            for _ in 0..$iters {
                for a in acc.iter_mut() {
                    $step(a);
                }
            }
            acc.iter().fold(0, |s, &a| s ^ $fold(a))
        }};
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(iters: u64) -> i32 {
        let (w, x, ones) = (
            _mm256_set1_epi8(3),
            _mm256_set1_epi8(-5),
            _mm256_set1_epi16(1),
        );
        let step = |a: &mut __m256i| {
            asm!(
                "vpmaddubsw {t}, {w}, {x}",
                "vpmaddwd {t}, {t}, {ones}",
                "vpaddd {a}, {a}, {t}",
                a = inout(ymm_reg) *a,
                t = out(ymm_reg) _,
                w = in(ymm_reg) w,
                x = in(ymm_reg) x,
                ones = in(ymm_reg) ones,
                options(pure, nomem, nostack)
            )
        };
        chains!(8, __m256i, _mm256_setzero_si256(), iters, step, |a| {
            _mm256_extract_epi32::<0>(a)
        })
    }

    /// One `vpdpbusd` per step, in [`VNNI_CHAINS`] chains: `$name` for the register type `$ty`
    /// (`$reg` class), encoded by `$insn` (the `{vex}` prefix forces AVX-VNNI's form).
    macro_rules! dpbusd_loop {
        ($name:ident, $features:literal, $insn:literal, $ty:ty, $reg:ident, $set1:ident, $zero:expr, $lane0:expr) => {
            #[target_feature(enable = $features)]
            pub unsafe fn $name(iters: u64) -> i32 {
                let (w, x) = ($set1(3), $set1(-5));
                let step = |a: &mut $ty| {
                    asm!(
                        $insn,
                        a = inout($reg) *a,
                        w = in($reg) w,
                        x = in($reg) x,
                        options(pure, nomem, nostack)
                    )
                };
                chains!(VNNI_CHAINS, $ty, $zero, iters, step, $lane0)
            }
        };
        (ymm $name:ident, $features:literal, $insn:literal) => {
            dpbusd_loop!($name, $features, $insn, __m256i, ymm_reg, _mm256_set1_epi8,
                _mm256_setzero_si256(), |a| _mm256_extract_epi32::<0>(a));
        };
        (zmm $name:ident, $features:literal, $insn:literal) => {
            dpbusd_loop!($name, $features, $insn, __m512i, zmm_reg, _mm512_set1_epi8,
                _mm512_setzero_si512(), |a| _mm_cvtsi128_si32(_mm512_castsi512_si128(a)));
        };
    }

    dpbusd_loop!(ymm vnni256, "avx2,fma,avx512vnni,avx512vl", "vpdpbusd {a}, {w}, {x}");
    dpbusd_loop!(ymm avx_vnni, "avx2,fma,avxvnni", "{{vex}} vpdpbusd {a}, {w}, {x}");
    dpbusd_loop!(zmm vnni512, "avx512f,avx512vnni", "vpdpbusd {a}, {w}, {x}");
}
