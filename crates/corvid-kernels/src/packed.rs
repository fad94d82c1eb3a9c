//! Weights repacked eight or sixteen rows at a time for the SIMD matrix-vector kernels.
//!
//! In ggml's row-major block layout every 32-value block needs its own float scaling
//! per row and token, so integer work is a small part of the instruction stream. Here
//! the blocks of `G` consecutive rows are interleaved four bytes at a time, so one
//! `vpdpbusd` (or, on AVX2, one `vpmaddubsw`) advances all `G` rows by four values
//! against four broadcast activation bytes, and the per-block scaling is one vector FMA
//! for `G` rows: eight rows fill a 256-bit register, sixteen a 512-bit one. Packing
//! happens once at load; results equal the row-major kernels up to float summation order.

#[cfg(target_arch = "x86_64")]
use crate::isa::Isa;
use crate::quant::{
    dequantize_q5k, dequantize_q6k, pack_scale_min_k4, scale_min_k4, BlockQ4K, BlockQ4_0,
    BlockQ4_1, BlockQ5K, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1,
};
use half::f16;

/// Rows per packed group of the 256-bit kernels.
pub const GROUP: usize = 8;

/// Rows per packed group of the 512-bit kernels.
pub const WIDE_GROUP: usize = 16;

/// One block column of `G` Q4_1 rows: scales, minimums, and the sixteen nibble bytes of
/// each row interleaved in 4-byte runs (`qs[j][r]` = row `r`'s bytes `4j..4j+4`).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct PackedQ4_1<const G: usize> {
    d: [f16; G],
    m: [f16; G],
    qs: [[[u8; 4]; G]; 4],
}

/// Eight Q4_1 rows per group, for the 256-bit kernels (AVX2, AVX-512 VNNI on `ymm`).
pub type Q4_1x8 = PackedQ4_1<GROUP>;

/// Sixteen Q4_1 rows per group, for the 512-bit VNNI kernel.
pub type Q4_1x16 = PackedQ4_1<WIDE_GROUP>;

/// One block column of eight Q8_0 rows, values stored offset by +128 as unsigned bytes
/// (`vpdpbusd` multiplies unsigned by signed; the offset is removed with the activation
/// block sums), interleaved in 4-byte runs like [`Q4_1x8`].
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Q8_0x8 {
    d: [f16; GROUP],
    qs: [u8; 256],
}

/// One super-block column (256 values) of eight Q4_K rows, the 6-bit sub-block scales
/// and minimums unpacked to bytes. The nibbles keep Q4_K's order (byte `32c + l` holds
/// values `64c + l` low and `64c + 32 + l` high) and are interleaved like [`Q4_1x8`]:
/// `qs[c][j][r]` = row `r`'s bytes `32c + 4j .. 32c + 4j + 4`.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Q4Kx8 {
    d: [f16; GROUP],
    dmin: [f16; GROUP],
    /// `sc[i][r]`: sub-block `i`'s scale in row `r`.
    sc: [[u8; GROUP]; 8],
    /// `mins[p][r]`: row `r`'s minimums of sub-blocks `2p` and `2p + 1` (one `vpmaddwd`
    /// operand against the activation's pair of sub-block sums).
    mins: [[[u8; 2]; GROUP]; 4],
    qs: [[[[u8; 4]; GROUP]; 8]; 4],
}

/// One super-block column (256 values) of eight Q5_K rows: [`Q4Kx8`]'s scales, minimums
/// and nibbles, plus the fifth bits interleaved the same way (`qh[j][r]` = row `r`'s
/// `qh` bytes `4j .. 4j + 4`; bit `i` of each is sub-block `i`'s), so one column of
/// `qh` serves all eight sub-blocks.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Q5Kx8 {
    d: [f16; GROUP],
    dmin: [f16; GROUP],
    sc: [[u8; GROUP]; 8],
    mins: [[[u8; 2]; GROUP]; 4],
    qh: [[[u8; 4]; GROUP]; 8],
    qs: [[[[u8; 4]; GROUP]; 8]; 4],
}

/// One super-block column (256 values) of eight Q6_K rows, still split into low four
/// and high two bits (unpacking to bytes at load would read 22 % more per token), each
/// interleaved like [`Q4_1x8`]: `ql[j][r]` = row `r`'s `ql` bytes `4j..4j+4`, `qh[j][r]`
/// its `qh` bytes `4j..4j+4`. Column `j` of a half's `ql` (or `qh`) holds four values of
/// each of four sub-blocks (two), so the kernel unpacks a sub-block's 16 values per row
/// from four `ql` and four `qh` columns.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Q6Kx8 {
    ql: [[[u8; 4]; GROUP]; 32],
    qh: [[[u8; 4]; GROUP]; 16],
    /// `sc[i][r]`: sub-block `i`'s scale in row `r`.
    sc: [[i8; GROUP]; 16],
    d: [f16; GROUP],
}

/// Q4_0 blocks rewritten exactly as Q4_1 (`d·(q − 8) = d·q + m` with `m = −8·d`, a
/// power-of-two scaling that f16 holds exactly), so Q4_0 weights run the packed Q4_1
/// kernels instead of the row-major dot products. `None` if some `8·|d|` overflows f16.
///
/// The products then pair with Q8_1 activations, whose block sums ggml stores in f16: each
/// block's `m·s` term carries up to 2⁻¹¹ of relative rounding that ggml's Q4_0 × Q8_0
/// path does not have (the integer sums are exact in both).
pub fn q4_0_as_q4_1(blocks: &[BlockQ4_0]) -> Option<Vec<BlockQ4_1>> {
    blocks
        .iter()
        .map(|b| {
            let m = f16::from_f32(-8.0 * b.d.to_f32());
            m.is_finite().then_some(BlockQ4_1 {
                d: b.d,
                m,
                qs: b.qs,
            })
        })
        .collect()
}

/// Packs a `rows × nb`-block Q4_1 matrix (`rows` a multiple of `G`), group-major.
pub fn pack_q4_1<const G: usize>(
    blocks: &[BlockQ4_1],
    rows: usize,
    nb: usize,
) -> Vec<PackedQ4_1<G>> {
    let mut out = Vec::with_capacity(rows / G * nb);
    for g in 0..rows / G {
        for b in 0..nb {
            let mut p = PackedQ4_1 {
                d: [f16::ZERO; G],
                m: [f16::ZERO; G],
                qs: [[[0; 4]; G]; 4],
            };
            for r in 0..G {
                let src = &blocks[(g * G + r) * nb + b];
                p.d[r] = src.d;
                p.m[r] = src.m;
                for j in 0..4 {
                    p.qs[j][r].copy_from_slice(&src.qs[j * 4..j * 4 + 4]);
                }
            }
            out.push(p);
        }
    }
    out
}

/// Packs a `rows × nb`-super-block Q4_K matrix (`rows` a multiple of 8), group-major.
pub fn pack_q4_k(blocks: &[BlockQ4K], rows: usize, nb: usize) -> Vec<Q4Kx8> {
    let mut out = Vec::with_capacity(rows / GROUP * nb);
    for g in 0..rows / GROUP {
        for b in 0..nb {
            out.push(pack_k4_column(|r| {
                let src = &blocks[(g * GROUP + r) * nb + b];
                (src.d, src.dmin, &src.scales, &src.qs)
            }));
        }
    }
    out
}

/// One packed column of eight rows of the parts Q4_K and Q5_K share, row `r`'s given by
/// `row(r)` as `(d, dmin, scales, qs)`: scales and minimums unpacked to bytes, nibbles
/// interleaved four bytes at a time.
fn pack_k4_column<'a>(row: impl Fn(usize) -> (f16, f16, &'a [u8; 12], &'a [u8; 128])) -> Q4Kx8 {
    let mut p = Q4Kx8 {
        d: [f16::ZERO; GROUP],
        dmin: [f16::ZERO; GROUP],
        sc: [[0; GROUP]; 8],
        mins: [[[0; 2]; GROUP]; 4],
        qs: [[[[0; 4]; GROUP]; 8]; 4],
    };
    for r in 0..GROUP {
        let (d, dmin, scales, qs) = row(r);
        p.d[r] = d;
        p.dmin[r] = dmin;
        for i in 0..8 {
            let (sc, m) = scale_min_k4(i, scales);
            p.sc[i][r] = sc;
            p.mins[i / 2][r][i % 2] = m;
        }
        for c in 0..4 {
            for j in 0..8 {
                let at = 32 * c + 4 * j;
                p.qs[c][j][r].copy_from_slice(&qs[at..at + 4]);
            }
        }
    }
    p
}

/// Row `r`'s lane in its `g`-row group and that group's `nb` packed block columns (what a
/// row unpacker reads).
fn row_group<T>(packed: &[T], nb: usize, r: usize, g: usize) -> (usize, &[T]) {
    let group = r / g;
    (r % g, &packed[group * nb..(group + 1) * nb])
}

/// Row `r` of a packed Q4_K matrix as f32, with the same float operations as
/// [`crate::quant::dequantize_q4k`] (so equal to it bit for bit).
pub fn unpack_row_q4_k(packed: &[Q4Kx8], nb: usize, r: usize, out: &mut [f32]) {
    let (lane, blocks) = row_group(packed, nb, r, GROUP);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(256)) {
        let (d, dmin) = (b.d[lane].to_f32(), b.dmin[lane].to_f32());
        for c in 0..4 {
            let (sc1, m1) = (b.sc[2 * c][lane] as f32, b.mins[c][lane][0] as f32);
            let (sc2, m2) = (b.sc[2 * c + 1][lane] as f32, b.mins[c][lane][1] as f32);
            for j in 0..8 {
                for (k, &q) in b.qs[c][j][lane].iter().enumerate() {
                    let l = 4 * j + k;
                    o[64 * c + l] = d * sc1 * (q & 0xF) as f32 - dmin * m1;
                    o[64 * c + 32 + l] = d * sc2 * (q >> 4) as f32 - dmin * m2;
                }
            }
        }
    }
}

/// Packs a `rows × nb`-super-block Q5_K matrix (`rows` a multiple of 8), group-major:
/// [`pack_q4_k`]'s column plus the fifth bits.
pub fn pack_q5_k(blocks: &[BlockQ5K], rows: usize, nb: usize) -> Vec<Q5Kx8> {
    let mut out = Vec::with_capacity(rows / GROUP * nb);
    for g in 0..rows / GROUP {
        for b in 0..nb {
            let src = |r: usize| &blocks[(g * GROUP + r) * nb + b];
            let k4 = pack_k4_column(|r| (src(r).d, src(r).dmin, &src(r).scales, &src(r).qs));
            let qh = std::array::from_fn(|j| {
                std::array::from_fn(|r| {
                    let at = 4 * j;
                    src(r).qh[at..at + 4].try_into().expect("four bytes")
                })
            });
            out.push(Q5Kx8 {
                d: k4.d,
                dmin: k4.dmin,
                sc: k4.sc,
                mins: k4.mins,
                qh,
                qs: k4.qs,
            });
        }
    }
    out
}

/// Row `r` of a packed Q5_K matrix as f32: its blocks reassembled (scales re-packed in
/// ggml's 12-byte form) and dequantized by [`dequantize_q5k`], so equal to the row-major
/// row bit for bit.
pub fn unpack_row_q5_k(packed: &[Q5Kx8], nb: usize, r: usize, out: &mut [f32]) {
    let (lane, blocks) = row_group(packed, nb, r, GROUP);
    for (p, o) in blocks.iter().zip(out.chunks_exact_mut(256)) {
        let sc: [u8; 8] = std::array::from_fn(|i| p.sc[i][lane]);
        let mn: [u8; 8] = std::array::from_fn(|i| p.mins[i / 2][lane][i % 2]);
        let mut b = BlockQ5K {
            d: p.d[lane],
            dmin: p.dmin[lane],
            scales: pack_scale_min_k4(&sc, &mn),
            ..Default::default()
        };
        for (j, c) in b.qh.chunks_exact_mut(4).enumerate() {
            c.copy_from_slice(&p.qh[j][lane]);
        }
        for c in 0..4 {
            for j in 0..8 {
                let at = 32 * c + 4 * j;
                b.qs[at..at + 4].copy_from_slice(&p.qs[c][j][lane]);
            }
        }
        dequantize_q5k(&b, o);
    }
}

/// Packs a `rows × nb`-super-block Q6_K matrix (`rows` a multiple of 8), group-major.
pub fn pack_q6_k(blocks: &[BlockQ6K], rows: usize, nb: usize) -> Vec<Q6Kx8> {
    let mut out = Vec::with_capacity(rows / GROUP * nb);
    for g in 0..rows / GROUP {
        for b in 0..nb {
            let mut p = Q6Kx8 {
                ql: [[[0; 4]; GROUP]; 32],
                qh: [[[0; 4]; GROUP]; 16],
                sc: [[0; GROUP]; 16],
                d: [f16::ZERO; GROUP],
            };
            for r in 0..GROUP {
                let src = &blocks[(g * GROUP + r) * nb + b];
                p.d[r] = src.d;
                for (i, &sc) in src.scales.iter().enumerate() {
                    p.sc[i][r] = sc;
                }
                for (j, c) in src.ql.chunks_exact(4).enumerate() {
                    p.ql[j][r].copy_from_slice(c);
                }
                for (j, c) in src.qh.chunks_exact(4).enumerate() {
                    p.qh[j][r].copy_from_slice(c);
                }
            }
            out.push(p);
        }
    }
    out
}

/// Row `r` of a packed Q6_K matrix as f32: its blocks reassembled and dequantized by
/// [`dequantize_q6k`], so equal to the row-major row bit for bit.
pub fn unpack_row_q6_k(packed: &[Q6Kx8], nb: usize, r: usize, out: &mut [f32]) {
    let (lane, blocks) = row_group(packed, nb, r, GROUP);
    for (p, o) in blocks.iter().zip(out.chunks_exact_mut(256)) {
        let mut b = BlockQ6K {
            d: p.d[lane],
            scales: std::array::from_fn(|i| p.sc[i][lane]),
            ..Default::default()
        };
        for (j, c) in b.ql.chunks_exact_mut(4).enumerate() {
            c.copy_from_slice(&p.ql[j][lane]);
        }
        for (j, c) in b.qh.chunks_exact_mut(4).enumerate() {
            c.copy_from_slice(&p.qh[j][lane]);
        }
        dequantize_q6k(&b, o);
    }
}

/// Each Q8_K activation block's pairs of sub-block sums (sub-block `i` = `bsums[2i] +
/// bsums[2i+1]`; word `p` holds sub-blocks `2p` and `2p + 1` as its two i16 halves),
/// the operand that multiplies [`Q4Kx8`]'s minimum pairs; computed once per matmul.
pub fn q8_k_min_pairs(blocks: &[BlockQ8K]) -> Vec<[i32; 4]> {
    blocks
        .iter()
        .map(|b| {
            let sub = |i: usize| b.bsums[2 * i].wrapping_add(b.bsums[2 * i + 1]) as u16 as i32;
            std::array::from_fn(|p| sub(2 * p) | (sub(2 * p + 1) << 16))
        })
        .collect()
}

/// Packs a `rows × nb`-block Q8_0 matrix (`rows` a multiple of 8), group-major.
pub fn pack_q8_0(blocks: &[BlockQ8_0], rows: usize, nb: usize) -> Vec<Q8_0x8> {
    let mut out = Vec::with_capacity(rows / GROUP * nb);
    for g in 0..rows / GROUP {
        for b in 0..nb {
            let mut p = Q8_0x8 {
                d: [f16::ZERO; GROUP],
                qs: [0; 256],
            };
            for r in 0..GROUP {
                let src = &blocks[(g * GROUP + r) * nb + b];
                p.d[r] = src.d;
                for j in 0..8 {
                    for k in 0..4 {
                        p.qs[j * 32 + r * 4 + k] = (src.qs[j * 4 + k] as i16 + 128) as u8;
                    }
                }
            }
            out.push(p);
        }
    }
    out
}

/// Row `r` of a packed Q4_1 matrix as f32 (for embedding lookups).
pub fn unpack_row_q4_1<const G: usize>(
    packed: &[PackedQ4_1<G>],
    nb: usize,
    r: usize,
    out: &mut [f32],
) {
    let (lane, blocks) = row_group(packed, nb, r, G);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(32)) {
        let (d, m) = (b.d[lane].to_f32(), b.m[lane].to_f32());
        for j in 0..4 {
            for (k, &byte) in b.qs[j][lane].iter().enumerate() {
                o[j * 4 + k] = (byte & 0xF) as f32 * d + m;
                o[j * 4 + k + 16] = (byte >> 4) as f32 * d + m;
            }
        }
    }
}

/// Row `r` of a packed Q8_0 matrix as f32 (for embedding lookups).
pub fn unpack_row_q8_0(packed: &[Q8_0x8], nb: usize, r: usize, out: &mut [f32]) {
    let (lane, blocks) = row_group(packed, nb, r, GROUP);
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(32)) {
        let d = b.d[lane].to_f32();
        for j in 0..8 {
            for k in 0..4 {
                o[j * 4 + k] = (b.qs[j * 32 + lane * 4 + k] as i16 - 128) as f32 * d;
            }
        }
    }
}

/// True when the packed kernels can run here (the AVX2 tier and above).
pub fn available() -> bool {
    crate::isa::avx2()
}

/// True when the sixteen-row, 512-bit kernel can run here (the AVX-512 VNNI tier).
pub fn wide_available() -> bool {
    crate::isa::vnni()
}

/// Declares a 256-bit packed kernel's entry point: `out[k][r] = row (8g + r) · acts[k]`
/// for one eight-row group, run by the active tier's copy of the kernel.
macro_rules! by_tier {
    ($(#[$doc:meta])* $name:ident($w:ty, $a:ty, $s:ty)) => {
        $(#[$doc])*
        ///
        /// `prefetch` asks for the weights ahead of use: for the first pass over a group,
        /// which streams it from memory (later passes find it in cache).
        ///
        /// # Safety
        /// Requires [`available`]; every `acts[k]` and `scales[k]` holds at least
        /// `w.len()` blocks.
        #[cfg(target_arch = "x86_64")]
        pub unsafe fn $name<const N: usize>(
            w: &[$w],
            acts: &[&[$a]],
            scales: &[&[$s]],
            prefetch: bool,
            out: &mut [[f32; GROUP]; N],
        ) {
            match crate::isa::isa() {
                Isa::Avx512Vnni => x86::vnni::$name(w, acts, scales, prefetch, out),
                Isa::AvxVnni => x86::avxvnni::$name(w, acts, scales, prefetch, out),
                _ => x86::avx2::$name(w, acts, scales, prefetch, out),
            }
        }
    };
}

by_tier!(
    /// Packed Q4_1; `scales[k][b]` is activation block `b`'s `[d, s]` as f32
    /// ([`q8_1_scales`]). The tiers compute the same integer sums and the same float
    /// operations, so their results are bit-identical.
    gemv_q4_1x8(Q4_1x8, BlockQ8_1, [f32; 2])
);

by_tier!(
    /// Packed Q8_0; `scales[k][b]` is activation block `b`'s scale as f32 and its offset
    /// correction ([`q8_0_scales`]). Bit-identical across tiers, as [`gemv_q4_1x8`].
    gemv_q8_0x8(Q8_0x8, BlockQ8_0, (f32, i32))
);

by_tier!(
    /// Packed Q4_K, as ggml computes Q4_K · Q8_K: per super-block, integer sums of the
    /// nibbles times their 6-bit scales and of the minimums times the activation's
    /// sub-block sums (`scales[k][b]`, [`q8_k_min_pairs`]), then two FMAs. Bit-identical
    /// across tiers, as [`gemv_q4_1x8`]; it differs from the row-major kernel (ggml's
    /// lane order) only in float summation order, its integer sums being exact per row
    /// instead of per byte lane.
    gemv_q4_kx8(Q4Kx8, BlockQ8K, [i32; 4])
);

by_tier!(
    /// Packed Q5_K: [`gemv_q4_kx8`] with each value's fifth bit or-ed in, and (on
    /// AVX2) each column's pairs widened to i32 at once, since a sub-block's eight
    /// columns of 5-bit products would overflow i16. Every tier equals
    /// [`crate::dot::scalar_q5_k_q8_k`] bit for bit.
    gemv_q5_kx8(Q5Kx8, BlockQ8K, [i32; 4])
);

/// Packed Q6_K against Q8_K activations: `out[k][r] = row (8g + r) · acts[k]` for one
/// eight-row group, by the active tier's copy of the kernel. Every tier computes
/// [`crate::dot::scalar_q6_k_q8_k`]'s integer sums and float operations, so all equal it
/// bit for bit. The activations need nothing precomputed: the −32 offset's correction
/// reads Q8_K's sums of 16 directly. `prefetch` as in [`gemv_q4_1x8`].
///
/// # Safety
/// Requires [`available`]; every `acts[k]` holds at least `w.len()` blocks.
#[cfg(target_arch = "x86_64")]
pub unsafe fn gemv_q6_kx8<const N: usize>(
    w: &[Q6Kx8],
    acts: &[&[BlockQ8K]],
    prefetch: bool,
    out: &mut [[f32; GROUP]; N],
) {
    match crate::isa::isa() {
        Isa::Avx512Vnni => x86::vnni::gemv_q6_kx8(w, acts, prefetch, out),
        Isa::AvxVnni => x86::avxvnni::gemv_q6_kx8(w, acts, prefetch, out),
        _ => x86::avx2::gemv_q6_kx8(w, acts, prefetch, out),
    }
}

/// [`gemv_q4_1x8`] for sixteen-row groups on 512-bit registers: the same integer sums
/// and float operations per row, so bit-identical to it; `prefetch` as there.
///
/// # Safety
/// Requires [`wide_available`]; every `acts[k]` and `scales[k]` holds at least `w.len()` blocks.
#[cfg(target_arch = "x86_64")]
pub unsafe fn gemv_q4_1x16<const N: usize>(
    w: &[Q4_1x16],
    acts: &[&[BlockQ8_1]],
    scales: &[&[[f32; 2]]],
    prefetch: bool,
    out: &mut [[f32; WIDE_GROUP]; N],
) {
    x86::gemv_q4_1x16_vnni512(w, acts, scales, prefetch, out)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The packed kernels, stamped out once per tier. Only the integer core differs: a
    //! weight vector holds four bytes of each of eight rows, and the core adds, per row
    //! lane, those bytes times four broadcast activation bytes.

    use std::arch::x86_64::*;

    /// Requests into L1 the block [`PREFETCH_BYTES`] past block `p` (every line it
    /// spans). The hardware prefetchers alone kept a one-token product at about half the
    /// machine's read bandwidth; asking for the weights this far ahead doubled single-stream
    /// decode on the AVX2 tier (135 → 269 t/s on a Xeon VM, BENCHMARKS.md).
    #[inline(always)]
    pub(super) unsafe fn prefetch_ahead<T>(p: *const T) {
        let at = (p as *const i8).wrapping_add(PREFETCH_BYTES);
        let mut line = 0;
        while line < std::mem::size_of::<T>() {
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(line));
            line += 64;
        }
    }

    /// How far ahead of the block being multiplied the weights are requested: 4–8 KiB
    /// measured best at one token, 12–16 KiB a little worse (`corvid bench kernels`).
    const PREFETCH_BYTES: usize = 8192;

    /// A K-quant kernel's two loop counts, hidden from the optimizer above two tokens on
    /// the tiers with sixteen registers (`opaque`; see `kernels!`).
    #[inline(always)]
    pub(super) fn loop_counts<const N: usize>(
        opaque: bool,
        counts: (usize, usize),
    ) -> (usize, usize) {
        if opaque && N > 2 {
            std::hint::black_box(counts)
        } else {
            counts
        }
    }

    /// Each token's Q8_K values of super-block `b`, read four bytes at a time.
    ///
    /// # Safety
    /// Every `acts[k]` (k < N) holds more than `b` blocks.
    #[inline(always)]
    pub(super) unsafe fn q8_k_words<const N: usize>(
        acts: &[&[crate::quant::BlockQ8K]],
        b: usize,
    ) -> [*const i32; N] {
        std::array::from_fn(|k| acts.get_unchecked(k).get_unchecked(b).qs.as_ptr() as *const i32)
    }

    /// The end of one Q4_K or Q5_K super-block `$wb` (column `$b`) for every token: the
    /// minimums' integer sum (each row's pairs of 6-bit minimums, widened once for all
    /// tokens, against the token's pairs of sub-block sums by `vpmaddwd`), then
    /// `acc += (d·d_a)·sums` and `acc += (dmin·−d_a)·mins`, two FMAs, in the order the
    /// portable dots use. A macro, not a function: passed by reference, the accumulators
    /// went through memory (Q4_K 7 % slower at 64 tokens).
    macro_rules! k_super_block_end {
        ($acc:ident, $sums:ident, $wb:ident, $acts:ident, $pairs:ident, $b:ident) => {{
            let dw = _mm256_cvtph_ps(_mm_loadu_si128($wb.d.as_ptr() as *const __m128i));
            let dm = _mm256_cvtph_ps(_mm_loadu_si128($wb.dmin.as_ptr() as *const __m128i));
            let mins: [__m256i; 4] = std::array::from_fn(|p| {
                _mm256_cvtepu8_epi16(_mm_loadu_si128($wb.mins[p].as_ptr() as *const __m128i))
            });
            for (k, acc_k) in $acc.iter_mut().enumerate() {
                let pk = $pairs.get_unchecked(k).get_unchecked($b);
                let mut m = _mm256_setzero_si256();
                for (&mp, &pair) in mins.iter().zip(pk) {
                    m = _mm256_add_epi32(m, _mm256_madd_epi16(mp, _mm256_set1_epi32(pair)));
                }
                let ad = $acts.get_unchecked(k).get_unchecked($b).d;
                let scale = _mm256_mul_ps(dw, _mm256_set1_ps(ad));
                let min_scale = _mm256_mul_ps(dm, _mm256_set1_ps(-ad));
                *acc_k = _mm256_fmadd_ps(_mm256_cvtepi32_ps($sums[k]), scale, *acc_k);
                *acc_k = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), min_scale, *acc_k);
            }
        }};
    }

    /// The `vpdpbusd` steps of a VNNI tier, named `$q4` and `$q8`, for one encoding of
    /// the instruction (EVEX under AVX-512 VL, VEX under AVX-VNNI: same results).
    macro_rules! vnni_steps {
        ($q4:ident, $q8:ident, $k4:ident, $k6:ident, $features:literal, $dpbusd:ident) => {
            /// VNNI step for nibbles: adds one token's products of 4-byte column `j` per
            /// row lane, the low nibbles (against activation bytes `4j..4j+4`) to `s` and
            /// the high ones (against `16+4j..`) to `t`: two dependency chains of four
            /// `vpdpbusd` (five cycles each) a block instead of one of eight.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn $q4(
                (s, t): (__m256i, __m256i),
                lo: __m256i,
                hi: __m256i,
                q: *const i32,
                j: usize,
            ) -> (__m256i, __m256i) {
                (
                    $dpbusd(s, lo, _mm256_set1_epi32(q.add(j).read_unaligned())),
                    $dpbusd(t, hi, _mm256_set1_epi32(q.add(j + 4).read_unaligned())),
                )
            }

            /// VNNI Q8_0 step: `Σ (w + 128)·a`, on top of `−128·Σa` from [`q8_start_vnni`].
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn $q8(s: __m256i, (w, _): (__m256i, __m256i), a: i32) -> __m256i {
                $dpbusd(s, w, _mm256_set1_epi32(a))
            }

            /// VNNI K-quant step: one token's products of one nibble column, in i32.
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn $k4(s: __m256i, q: __m256i, a: i32) -> __m256i {
                $dpbusd(s, q, _mm256_set1_epi32(a))
            }

            /// VNNI Q6_K step: one token's products of one column of 6-bit values, in
            /// i32 (scaled once per sub-block by [`k4_scale_vnni`]; `_sc` is for AVX2).
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn $k6(s: __m256i, q: __m256i, a: i32, _sc: __m256i) -> __m256i {
                $dpbusd(s, q, _mm256_set1_epi32(a))
            }
        };
    }

    vnni_steps!(
        q4_step_vnni,
        q8_step_vnni,
        k4_step_vnni,
        k6_step_vnni,
        "avx2,fma,f16c,avx512vnni,avx512vl",
        _mm256_dpbusd_epi32
    );
    vnni_steps!(
        q4_step_avxvnni,
        q8_step_avxvnni,
        k4_step_avxvnni,
        k6_step_avxvnni,
        "avx2,fma,f16c,avxvnni",
        _mm256_dpbusd_avx_epi32
    );

    /// AVX2 K-quant step: `vpmaddubsw` pairs summed in i16 (a sub-block's 32 products of
    /// a nibble and an i8 stay within ±30,720 per lane, as in [`q4_step_avx2`]).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn k4_step_avx2(s: __m256i, q: __m256i, a: i32) -> __m256i {
        _mm256_add_epi16(s, _mm256_maddubs_epi16(q, _mm256_set1_epi32(a)))
    }

    /// The eight rows' 6-bit scales of one sub-block (`sc[r]`), as the VNNI scaling
    /// ([`k4_scale_vnni`]) multiplies them: one i32 per row lane.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn k4_scales_vnni(sc: &[u8; 8]) -> __m256i {
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(sc.as_ptr() as *const __m128i))
    }

    /// The same scales as the AVX2 scaling's `vpmaddwd` operand: each row lane's scale in
    /// both i16 halves.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn k4_scales_avx2(sc: &[u8; 8]) -> __m256i {
        let x = k4_scales_vnni(sc);
        _mm256_or_si256(x, _mm256_slli_epi32::<16>(x))
    }

    /// A VNNI sub-block sum (i32) times its row's scale.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn k4_scale_vnni(s: __m256i, sc: __m256i) -> __m256i {
        _mm256_mullo_epi32(s, sc)
    }

    /// An AVX2 sub-block sum (i16 pairs) widened and scaled by one `vpmaddwd`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn k4_scale_avx2(s: __m256i, sc: __m256i) -> __m256i {
        _mm256_madd_epi16(s, sc)
    }

    /// AVX2 Q6_K step: `vpmaddubsw` pairs (≤ 2·63·128, exact in i16; four columns of
    /// a sub-block would not be), widened and scaled at once by `vpmaddwd` with the
    /// row's scale in both i16 halves ([`k6_scales_avx2`]).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn k6_step_avx2(s: __m256i, q: __m256i, a: i32, sc: __m256i) -> __m256i {
        let p = _mm256_maddubs_epi16(q, _mm256_set1_epi32(a));
        _mm256_add_epi32(s, _mm256_madd_epi16(p, sc))
    }

    /// The eight rows' signed Q6_K scales of one sub-block, one i32 per row lane (the
    /// VNNI scaling, [`k4_scale_vnni`], multiplies by them).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn k6_scales_vnni(sc: &[i8; 8]) -> __m256i {
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(sc.as_ptr() as *const __m128i))
    }

    /// The same scales as [`k6_step_avx2`]'s `vpmaddwd` operand: each in both i16 halves.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn k6_scales_avx2(sc: &[i8; 8]) -> __m256i {
        let x = k6_scales_vnni(sc);
        _mm256_or_si256(
            _mm256_and_si256(x, _mm256_set1_epi32(0xFFFF)),
            _mm256_slli_epi32::<16>(x),
        )
    }

    /// An AVX2 Q6_K sub-block sum is already scaled (by its steps).
    #[inline(always)]
    unsafe fn k6_scale_avx2(s: __m256i, _sc: __m256i) -> __m256i {
        s
    }

    /// AVX2 step for nibbles: `vpmaddubsw` pairs summed in i16 (the eight products of a
    /// nibble and an i8 that one block adds per lane stay within ±30,720), all in `s`
    /// (its adds take one cycle, so one chain does not wait; `t` stays zero).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q4_step_avx2(
        (s, t): (__m256i, __m256i),
        lo: __m256i,
        hi: __m256i,
        q: *const i32,
        j: usize,
    ) -> (__m256i, __m256i) {
        let a = _mm256_maddubs_epi16(lo, _mm256_set1_epi32(q.add(j).read_unaligned()));
        let b = _mm256_maddubs_epi16(hi, _mm256_set1_epi32(q.add(j + 4).read_unaligned()));
        (_mm256_add_epi16(s, _mm256_add_epi16(a, b)), t)
    }

    /// A VNNI block sum: the two chains' i32 lanes added.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q4_widen_vnni((s, t): (__m256i, __m256i)) -> __m256i {
        _mm256_add_epi32(s, t)
    }

    /// An AVX2 block sum widens from i16 pairs to i32 per lane with one `vpmaddwd`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q4_widen_avx2((s, _): (__m256i, __m256i)) -> __m256i {
        _mm256_madd_epi16(s, _mm256_set1_epi16(1))
    }

    /// VNNI form of a packed Q8_0 column: the +128-offset bytes as they are (the block's
    /// sum starts at the offset correction instead).
    #[inline(always)]
    unsafe fn q8_prep_vnni(w: __m256i) -> (__m256i, __m256i) {
        (w, w)
    }

    /// AVX2 form of a packed Q8_0 column: XOR 0x80 gives the signed weight `w`; ggml's
    /// `|w| · sign(a, w)` keeps `vpmaddubsw` exact (pairs ≤ 32,512). Computed once per
    /// column for all tokens.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q8_prep_avx2(w: __m256i) -> (__m256i, __m256i) {
        let w = _mm256_xor_si256(w, _mm256_set1_epi8(-128));
        (_mm256_abs_epi8(w), w)
    }

    /// AVX2 Q8_0 step: signed weights give `Σ w·a` directly, each pair sum widened to i32.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q8_step_avx2(s: __m256i, (abs, w): (__m256i, __m256i), a: i32) -> __m256i {
        let p = _mm256_maddubs_epi16(abs, _mm256_sign_epi8(_mm256_set1_epi32(a), w));
        _mm256_add_epi32(s, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
    }

    /// A VNNI Q8_0 block sum starts at the +128 offset's correction.
    #[inline(always)]
    unsafe fn q8_start_vnni(offset: i32) -> __m256i {
        _mm256_set1_epi32(offset)
    }

    /// An AVX2 Q8_0 block sum needs no correction (its weights are signed).
    #[inline(always)]
    unsafe fn q8_start_avx2(_offset: i32) -> __m256i {
        _mm256_setzero_si256()
    }

    /// The Q4_1 kernel on sixteen rows per 512-bit register, and the same per-lane float
    /// operations as the 256-bit kernels. Each column's `vpdpbusd` is issued for every token
    /// before the next column, so the `N` tokens' sums are `N` independent chains in flight
    /// (one chain per token: with eight tokens they cover the instruction's latency).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn gemv_q4_1x16_vnni512<const N: usize>(
        w: &[super::Q4_1x16],
        acts: &[&[crate::quant::BlockQ8_1]],
        scales: &[&[[f32; 2]]],
        prefetch: bool,
        out: &mut [[f32; super::WIDE_GROUP]; N],
    ) {
        let mut acc = [_mm512_setzero_ps(); N];
        let mask = _mm512_set1_epi8(0xF);
        for (b, wb) in w.iter().enumerate() {
            if prefetch {
                prefetch_ahead(wb);
            }
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(wb.d.as_ptr() as *const __m256i));
            let mw = _mm512_cvtph_ps(_mm256_loadu_si256(wb.m.as_ptr() as *const __m256i));
            let mut lo = [_mm512_setzero_si512(); 4];
            let mut hi = [_mm512_setzero_si512(); 4];
            for j in 0..4 {
                let v = _mm512_loadu_si512(wb.qs[j].as_ptr() as *const __m512i);
                lo[j] = _mm512_and_si512(v, mask);
                hi[j] = _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask);
            }
            let q: [*const i32; N] = std::array::from_fn(|k| {
                acts.get_unchecked(k).get_unchecked(b).qs.as_ptr() as *const i32
            });
            let mut s = [_mm512_setzero_si512(); N];
            for j in 0..4 {
                for k in 0..N {
                    s[k] = _mm512_dpbusd_epi32(
                        s[k],
                        lo[j],
                        _mm512_set1_epi32(q[k].add(j).read_unaligned()),
                    );
                }
                for k in 0..N {
                    s[k] = _mm512_dpbusd_epi32(
                        s[k],
                        hi[j],
                        _mm512_set1_epi32(q[k].add(j + 4).read_unaligned()),
                    );
                }
            }
            for (k, acc_k) in acc.iter_mut().enumerate() {
                let [ad, asum] = *scales.get_unchecked(k).get_unchecked(b);
                let scale = _mm512_mul_ps(dw, _mm512_set1_ps(ad));
                *acc_k = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[k]), scale, *acc_k);
                *acc_k = _mm512_fmadd_ps(mw, _mm512_set1_ps(asum), *acc_k);
            }
        }
        for k in 0..N {
            _mm512_storeu_ps(out[k].as_mut_ptr(), acc[k]);
        }
    }

    /// Stamps out the 256-bit kernels of one tier from its steps. Both kernels walk a
    /// block column by column and, for each column, every token (`N` accumulators), so
    /// a column is unpacked once for all tokens and only two weight vectors are live:
    /// with `N` = 4 the AVX2 tier's sixteen registers hold everything without spills.
    /// On the tiers with sixteen registers (`$opaque`), above two tokens the column count
    /// is hidden from the optimizer ([`std::hint::black_box`]): fully unrolled, LLVM
    /// reorders the steps token by token and spills every column. With thirty-two it
    /// schedules the unrolled loops best (measured 13–15 % faster for Q8_0 at m ≥ 16).
    macro_rules! kernels {
        ($tier:ident, $features:literal, $opaque:literal, $q4:ident, $widen:ident, $q8_start:ident, $q8_prep:ident, $q8:ident, $k4:ident, $k4_scales:ident, $k4_scale:ident, $k6:ident, $k6_scales:ident, $k6_scale:ident) => {
            pub mod $tier {
                use super::super::{Q4Kx8, Q4_1x8, Q5Kx8, Q6Kx8, Q8_0x8, GROUP};
                use super::{
                    $k4, $k4_scale, $k4_scales, $k6, $k6_scales, $q4, $q8, $q8_prep, $q8_start,
                    $widen,
                };
                use crate::quant::{BlockQ8K, BlockQ8_0, BlockQ8_1};
                use std::arch::x86_64::*;

                #[target_feature(enable = $features)]
                pub unsafe fn gemv_q4_1x8<const N: usize>(
                    w: &[Q4_1x8],
                    acts: &[&[BlockQ8_1]],
                    scales: &[&[[f32; 2]]],
                    prefetch: bool,
                    out: &mut [[f32; GROUP]; N],
                ) {
                    let mut acc = [_mm256_setzero_ps(); N];
                    let mask = _mm256_set1_epi8(0xF);
                    let columns = if $opaque && N > 2 {
                        std::hint::black_box(4)
                    } else {
                        4
                    };
                    for (b, wb) in w.iter().enumerate() {
                        if prefetch {
                            super::prefetch_ahead(wb);
                        }
                        let q: [*const i32; N] = std::array::from_fn(|k| {
                            acts.get_unchecked(k).get_unchecked(b).qs.as_ptr() as *const i32
                        });
                        let mut s = [(_mm256_setzero_si256(), _mm256_setzero_si256()); N];
                        for j in 0..columns {
                            let v = _mm256_loadu_si256(
                                wb.qs.get_unchecked(j).as_ptr() as *const __m256i
                            );
                            let lo = _mm256_and_si256(v, mask);
                            let hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
                            for k in 0..N {
                                s[k] = $q4(s[k], lo, hi, q[k], j);
                            }
                        }
                        let dw = _mm256_cvtph_ps(_mm_loadu_si128(wb.d.as_ptr() as *const __m128i));
                        let mw = _mm256_cvtph_ps(_mm_loadu_si128(wb.m.as_ptr() as *const __m128i));
                        for (k, acc_k) in acc.iter_mut().enumerate() {
                            let [ad, asum] = *scales.get_unchecked(k).get_unchecked(b);
                            let scale = _mm256_mul_ps(dw, _mm256_set1_ps(ad));
                            *acc_k =
                                _mm256_fmadd_ps(_mm256_cvtepi32_ps($widen(s[k])), scale, *acc_k);
                            *acc_k = _mm256_fmadd_ps(mw, _mm256_set1_ps(asum), *acc_k);
                        }
                    }
                    for k in 0..N {
                        _mm256_storeu_ps(out[k].as_mut_ptr(), acc[k]);
                    }
                }

                #[target_feature(enable = $features)]
                pub unsafe fn gemv_q8_0x8<const N: usize>(
                    w: &[Q8_0x8],
                    acts: &[&[BlockQ8_0]],
                    scales: &[&[(f32, i32)]],
                    prefetch: bool,
                    out: &mut [[f32; GROUP]; N],
                ) {
                    let mut acc = [_mm256_setzero_ps(); N];
                    let columns = if $opaque && N > 2 {
                        std::hint::black_box(8)
                    } else {
                        8
                    };
                    for (b, wb) in w.iter().enumerate() {
                        if prefetch {
                            super::prefetch_ahead(wb);
                        }
                        let q: [*const i32; N] = std::array::from_fn(|k| {
                            acts.get_unchecked(k).get_unchecked(b).qs.as_ptr() as *const i32
                        });
                        let mut s: [__m256i; N] = std::array::from_fn(|k| {
                            $q8_start(scales.get_unchecked(k).get_unchecked(b).1)
                        });
                        for j in 0..columns {
                            let v = $q8_prep(_mm256_loadu_si256(
                                wb.qs.as_ptr().add(j * 32) as *const __m256i
                            ));
                            for k in 0..N {
                                s[k] = $q8(s[k], v, q[k].add(j).read_unaligned());
                            }
                        }
                        let dw = _mm256_cvtph_ps(_mm_loadu_si128(wb.d.as_ptr() as *const __m128i));
                        for (k, acc_k) in acc.iter_mut().enumerate() {
                            let ad = scales.get_unchecked(k).get_unchecked(b).0;
                            let scale = _mm256_mul_ps(dw, _mm256_set1_ps(ad));
                            *acc_k = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[k]), scale, *acc_k);
                        }
                    }
                    for k in 0..N {
                        _mm256_storeu_ps(out[k].as_mut_ptr(), acc[k]);
                    }
                }

                #[target_feature(enable = $features)]
                pub unsafe fn gemv_q4_kx8<const N: usize>(
                    w: &[Q4Kx8],
                    acts: &[&[BlockQ8K]],
                    pairs: &[&[[i32; 4]]],
                    prefetch: bool,
                    out: &mut [[f32; GROUP]; N],
                ) {
                    let mut acc = [_mm256_setzero_ps(); N];
                    let mask = _mm256_set1_epi8(0xF);
                    // Both loop counts hidden, as in the other kernels: unrolled, the
                    // 64 columns of a super-block are reordered into spills.
                    let (sub_blocks, columns) = super::loop_counts::<N>($opaque, (8, 8));
                    for (b, wb) in w.iter().enumerate() {
                        if prefetch {
                            super::prefetch_ahead(wb);
                        }
                        let q = super::q8_k_words::<N>(acts, b);
                        let mut sums = [_mm256_setzero_si256(); N];
                        // Sub-block i is chunk i / 2's low nibbles (even i) or high ones.
                        for i in 0..sub_blocks {
                            let (c, half) = (i / 2, i % 2);
                            let shift = _mm_cvtsi32_si128(4 * half as i32);
                            let mut s = [_mm256_setzero_si256(); N];
                            for j in 0..columns {
                                let v = _mm256_loadu_si256(
                                    wb.qs.get_unchecked(c).get_unchecked(j).as_ptr()
                                        as *const __m256i,
                                );
                                let v = _mm256_and_si256(_mm256_srl_epi16(v, shift), mask);
                                let at = 8 * i + j;
                                for k in 0..N {
                                    s[k] = $k4(s[k], v, q[k].add(at).read_unaligned());
                                }
                            }
                            let sc = $k4_scales(wb.sc.get_unchecked(i));
                            for k in 0..N {
                                sums[k] = _mm256_add_epi32(sums[k], $k4_scale(s[k], sc));
                            }
                        }
                        k_super_block_end!(acc, sums, wb, acts, pairs, b);
                    }
                    for k in 0..N {
                        _mm256_storeu_ps(out[k].as_mut_ptr(), acc[k]);
                    }
                }

                #[target_feature(enable = $features)]
                pub unsafe fn gemv_q5_kx8<const N: usize>(
                    w: &[Q5Kx8],
                    acts: &[&[BlockQ8K]],
                    pairs: &[&[[i32; 4]]],
                    prefetch: bool,
                    out: &mut [[f32; GROUP]; N],
                ) {
                    let mut acc = [_mm256_setzero_ps(); N];
                    let (low4, bit4) = (_mm256_set1_epi8(0xF), _mm256_set1_epi8(0x10));
                    // Hidden loop counts, as in `gemv_q4_kx8`.
                    let (sub_blocks, columns) = super::loop_counts::<N>($opaque, (8, 8));
                    for (b, wb) in w.iter().enumerate() {
                        if prefetch {
                            super::prefetch_ahead(wb);
                        }
                        let q = super::q8_k_words::<N>(acts, b);
                        let mut sums = [_mm256_setzero_si256(); N];
                        // Sub-block i: chunk i / 2's low (even i) or high nibbles, and bit
                        // i of the qh bytes, moved to bit 4 (16-bit shifts by at most 4
                        // keep it within its byte).
                        for i in 0..sub_blocks {
                            let (c, half) = (i / 2, i % 2);
                            let shift = _mm_cvtsi32_si128(4 * half as i32);
                            let (up, down) = if i <= 4 {
                                (4 - i as i32, 0)
                            } else {
                                (0, i as i32 - 4)
                            };
                            let (up, down) = (_mm_cvtsi32_si128(up), _mm_cvtsi32_si128(down));
                            let sc = $k4_scales(wb.sc.get_unchecked(i));
                            let mut s = [_mm256_setzero_si256(); N];
                            for j in 0..columns {
                                let v = _mm256_loadu_si256(
                                    wb.qs.get_unchecked(c).get_unchecked(j).as_ptr()
                                        as *const __m256i,
                                );
                                let qh = _mm256_loadu_si256(
                                    wb.qh.get_unchecked(j).as_ptr() as *const __m256i
                                );
                                let low = _mm256_and_si256(_mm256_srl_epi16(v, shift), low4);
                                let high = _mm256_srl_epi16(_mm256_sll_epi16(qh, up), down);
                                let v = _mm256_or_si256(low, _mm256_and_si256(high, bit4));
                                let at = 8 * i + j;
                                for k in 0..N {
                                    s[k] = $k6(s[k], v, q[k].add(at).read_unaligned(), sc);
                                }
                            }
                            for k in 0..N {
                                sums[k] = _mm256_add_epi32(sums[k], super::$k6_scale(s[k], sc));
                            }
                        }
                        k_super_block_end!(acc, sums, wb, acts, pairs, b);
                    }
                    for k in 0..N {
                        _mm256_storeu_ps(out[k].as_mut_ptr(), acc[k]);
                    }
                }

                #[target_feature(enable = $features)]
                pub unsafe fn gemv_q6_kx8<const N: usize>(
                    w: &[Q6Kx8],
                    acts: &[&[BlockQ8K]],
                    prefetch: bool,
                    out: &mut [[f32; GROUP]; N],
                ) {
                    let mut acc = [_mm256_setzero_ps(); N];
                    let (low4, high2) = (_mm256_set1_epi8(0xF), _mm256_set1_epi8(0x30));
                    // Hidden loop counts, as in `gemv_q4_kx8`.
                    let (sub_blocks, columns) = super::loop_counts::<N>($opaque, (16, 4));
                    for (b, wb) in w.iter().enumerate() {
                        if prefetch {
                            super::prefetch_ahead(wb);
                        }
                        let q = super::q8_k_words::<N>(acts, b);
                        let mut sums = [_mm256_setzero_si256(); N];
                        // Sub-block i = 8n + 2m + h holds values 128n + 32m + 16h .. +16:
                        // the low (m < 2) or high nibbles of ql bytes 64n + 32(m % 2) + l,
                        // and bits 2m, 2m + 1 of qh bytes 32n + l (l = 16h .. 16h + 16).
                        for i in 0..sub_blocks {
                            let (n, m, h) = (i / 8, i % 8 / 2, i % 2);
                            let low_shift = _mm_cvtsi32_si128(4 * (m / 2) as i32);
                            // Bits 2m, 2m + 1 of each byte to bits 4, 5.
                            let (up, down) = if m == 3 {
                                (0, 2)
                            } else {
                                (4 - 2 * m as i32, 0)
                            };
                            let (up, down) = (_mm_cvtsi32_si128(up), _mm_cvtsi32_si128(down));
                            let sc = $k6_scales(wb.sc.get_unchecked(i));
                            let mut s = [_mm256_setzero_si256(); N];
                            for c in 0..columns {
                                let j = 4 * h + c;
                                let ql = _mm256_loadu_si256(
                                    wb.ql.get_unchecked(16 * n + 8 * (m % 2) + j).as_ptr()
                                        as *const __m256i,
                                );
                                let qh = _mm256_loadu_si256(
                                    wb.qh.get_unchecked(8 * n + j).as_ptr() as *const __m256i,
                                );
                                let low = _mm256_and_si256(_mm256_srl_epi16(ql, low_shift), low4);
                                let high = _mm256_srl_epi16(_mm256_sll_epi16(qh, up), down);
                                let v = _mm256_or_si256(low, _mm256_and_si256(high, high2));
                                let at = 32 * n + 8 * m + j;
                                for k in 0..N {
                                    s[k] = $k6(s[k], v, q[k].add(at).read_unaligned(), sc);
                                }
                            }
                            for k in 0..N {
                                sums[k] = _mm256_add_epi32(sums[k], super::$k6_scale(s[k], sc));
                            }
                        }
                        // The −32 offset: Σ sc·bsum per row, a pair of sub-blocks per
                        // `vpmaddwd` (row's scales against the token's two i16 sums).
                        let mut offset = [_mm256_setzero_si256(); N];
                        for p in 0..8 {
                            let pair = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(
                                _mm_loadl_epi64(
                                    wb.sc.get_unchecked(2 * p).as_ptr() as *const __m128i
                                ),
                                _mm_loadl_epi64(
                                    wb.sc.get_unchecked(2 * p + 1).as_ptr() as *const __m128i
                                ),
                            ));
                            for k in 0..N {
                                let bsums = acts.get_unchecked(k).get_unchecked(b).bsums.as_ptr();
                                let word = (bsums as *const i32).add(p).read_unaligned();
                                offset[k] = _mm256_add_epi32(
                                    offset[k],
                                    _mm256_madd_epi16(pair, _mm256_set1_epi32(word)),
                                );
                            }
                        }
                        let dw = _mm256_cvtph_ps(_mm_loadu_si128(wb.d.as_ptr() as *const __m128i));
                        for (k, acc_k) in acc.iter_mut().enumerate() {
                            let isum = _mm256_sub_epi32(sums[k], _mm256_slli_epi32::<5>(offset[k]));
                            let ad = acts.get_unchecked(k).get_unchecked(b).d;
                            let scale = _mm256_mul_ps(dw, _mm256_set1_ps(ad));
                            *acc_k = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, *acc_k);
                        }
                    }
                    for k in 0..N {
                        _mm256_storeu_ps(out[k].as_mut_ptr(), acc[k]);
                    }
                }
            }
        };
    }

    kernels!(
        avx2,
        "avx2,fma,f16c",
        true,
        q4_step_avx2,
        q4_widen_avx2,
        q8_start_avx2,
        q8_prep_avx2,
        q8_step_avx2,
        k4_step_avx2,
        k4_scales_avx2,
        k4_scale_avx2,
        k6_step_avx2,
        k6_scales_avx2,
        k6_scale_avx2
    );
    kernels!(
        vnni,
        "avx2,fma,f16c,avx512vnni,avx512vl",
        false,
        q4_step_vnni,
        q4_widen_vnni,
        q8_start_vnni,
        q8_prep_vnni,
        q8_step_vnni,
        k4_step_vnni,
        k4_scales_vnni,
        k4_scale_vnni,
        k6_step_vnni,
        k6_scales_vnni,
        k4_scale_vnni
    );
    kernels!(
        avxvnni,
        "avx2,fma,f16c,avxvnni",
        true,
        q4_step_avxvnni,
        q4_widen_vnni,
        q8_start_vnni,
        q8_prep_vnni,
        q8_step_avxvnni,
        k4_step_avxvnni,
        k4_scales_vnni,
        k4_scale_vnni,
        k6_step_avxvnni,
        k6_scales_vnni,
        k4_scale_vnni
    );
}

/// Each Q8_1 activation block's `[d, s]` as f32, converted once per matmul instead of
/// once per row group in [`gemv_q4_1x8`].
pub fn q8_1_scales(blocks: &[BlockQ8_1]) -> Vec<[f32; 2]> {
    blocks
        .iter()
        .map(|b| [b.d.to_f32(), b.s.to_f32()])
        .collect()
}

/// Each Q8_0 activation block's scale as f32 and `-128 ×` the sum of its quantized
/// values (the correction for the +128 offset of packed Q8_0 weights), for
/// [`gemv_q8_0x8`].
pub fn q8_0_scales(blocks: &[BlockQ8_0]) -> Vec<(f32, i32)> {
    blocks
        .iter()
        .map(|b| {
            (
                b.d.to_f32(),
                -128 * b.qs.iter().map(|&q| q as i32).sum::<i32>(),
            )
        })
        .collect()
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::isa::{isa, Isa};
    use crate::quant::quantize::{
        quantize_q8_0, quantize_q8_1, quantize_weight_q4_1, quantize_weight_q8_0,
    };
    use rand::{Rng, SeedableRng};

    fn random(seed: u64, n: usize) -> Vec<f32> {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| r.gen_range(-1.0..1.0)).collect()
    }

    /// Runs `f::<N>` for N = 1..=4 and returns the outputs for every N.
    fn by_n(mut f: impl FnMut(usize, &mut [[f32; GROUP]; 4])) -> Vec<[[f32; GROUP]; 4]> {
        (1..=4)
            .map(|n| {
                let mut out = [[0.0; GROUP]; 4];
                f(n, &mut out);
                out
            })
            .collect()
    }

    /// The AVX2, AVX-VNNI and AVX-512 VNNI kernels compute identical integer sums and
    /// identical float operations: their outputs must be equal bit for bit, for every
    /// token count. Every tier this run covers (up to `CORVID_ISA`) is checked.
    #[test]
    fn packed_kernels_are_bit_identical_across_tiers() {
        use crate::quant::quantize::{quantize_q8_k, quantize_weight_q4_k};
        let runs = |t: Isa| t <= isa() && t.runs_here();
        if !runs(Isa::AvxVnni) && !runs(Isa::Avx512Vnni) {
            return; // one tier only here; the AVX2 tier is checked against row-major in matmul
        }
        let (rows, nb, nbk) = (8, 12, 3);
        let w = random(1, rows * nb * 32);
        let p41 = pack_q4_1(&quantize_weight_q4_1(&w), rows, nb);
        let p80 = pack_q8_0(&quantize_weight_q8_0(&w), rows, nb);
        let pk = pack_q4_k(
            &quantize_weight_q4_k(&random(3, rows * nbk * 256)),
            rows,
            nbk,
        );
        let q81 = activations(nb, 32, quantize_q8_1);
        let q80 = activations(nb, 32, quantize_q8_0);
        let qk = activations(nbk, 256, quantize_q8_k);
        let s81: Vec<Vec<[f32; 2]>> = q81.iter().map(|q| q8_1_scales(q)).collect();
        let s80: Vec<Vec<(f32, i32)>> = q80.iter().map(|q| q8_0_scales(q)).collect();
        let sk: Vec<Vec<[i32; 4]>> = qk.iter().map(|q| q8_k_min_pairs(q)).collect();
        macro_rules! run {
            ($tier:ident, $f:ident, $w:expr, $y:expr, $s:expr) => {{
                let (y, s) = (slices(&$y), slices(&$s));
                by_n(|n, out| unsafe {
                    match n {
                        1 => x86::$tier::$f::<1>(
                            $w,
                            &y,
                            &s,
                            true,
                            (&mut out[..1]).try_into().unwrap(),
                        ),
                        2 => x86::$tier::$f::<2>(
                            $w,
                            &y,
                            &s,
                            false,
                            (&mut out[..2]).try_into().unwrap(),
                        ),
                        3 => x86::$tier::$f::<3>(
                            $w,
                            &y,
                            &s,
                            true,
                            (&mut out[..3]).try_into().unwrap(),
                        ),
                        _ => x86::$tier::$f::<4>($w, &y, &s, false, out),
                    }
                })
                .iter()
                .flatten()
                .flatten()
                .map(|x| x.to_bits())
                .collect::<Vec<u32>>()
            }};
        }
        macro_rules! same_on_every_tier {
            ($f:ident, $w:expr, $y:expr, $s:expr) => {
                let want = run!(avx2, $f, $w, $y, $s);
                assert!(want.iter().any(|&b| b != 0));
                if runs(Isa::Avx512Vnni) {
                    assert_eq!(
                        want,
                        run!(vnni, $f, $w, $y, $s),
                        "avx512vnni {}",
                        stringify!($f)
                    );
                }
                if runs(Isa::AvxVnni) {
                    assert_eq!(
                        want,
                        run!(avxvnni, $f, $w, $y, $s),
                        "avxvnni {}",
                        stringify!($f)
                    );
                }
            };
        }
        same_on_every_tier!(gemv_q4_1x8, &p41, q81, s81);
        same_on_every_tier!(gemv_q8_0x8, &p80, q80, s80);
        same_on_every_tier!(gemv_q4_kx8, &pk, qk, sk);
    }

    /// Runs `kernel` (one tier's packed kernel for `N` = 1..=4 tokens) on every tier this
    /// run covers, every group and token count, prefetching on odd counts, and checks each
    /// output against `portable(row's blocks, token)` bit for bit; then checks that `unpack`
    /// gives each row exactly `dequant`'s values of its blocks.
    #[allow(clippy::too_many_arguments)]
    fn assert_packed_k_quant_equals_portable<B, P>(
        blocks: &[B],
        packed: &[P],
        (rows, nb): (usize, usize),
        ys: &[&[BlockQ8K]],
        kernel: impl Fn(Isa, &[P], usize, bool, &mut [[f32; GROUP]; 4]),
        portable: impl Fn(&[B], &[BlockQ8K]) -> f32,
        dequant: impl Fn(&B, &mut [f32]),
        unpack: impl Fn(&[P], usize, usize, &mut [f32]),
    ) {
        let tiers = [Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni];
        let mut checked = 0;
        for tier in tiers.into_iter().filter(|&t| t <= isa() && t.runs_here()) {
            for g in 0..rows / GROUP {
                let w = &packed[g * nb..(g + 1) * nb];
                for n in 1..=4 {
                    let mut out = [[0.0; GROUP]; 4];
                    kernel(tier, w, n, n % 2 == 1, &mut out);
                    for k in 0..n {
                        for r in 0..GROUP {
                            let row = &blocks[(g * GROUP + r) * nb..(g * GROUP + r + 1) * nb];
                            assert_eq!(
                                out[k][r].to_bits(),
                                portable(row, ys[k]).to_bits(),
                                "{tier} group {g} n={n} token {k} row {r}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 0 || !available());
        let (mut a, mut b) = (vec![0.0; nb * 256], vec![0.0; nb * 256]);
        for r in 0..rows {
            for (blk, o) in blocks[r * nb..(r + 1) * nb]
                .iter()
                .zip(a.chunks_exact_mut(256))
            {
                dequant(blk, o);
            }
            unpack(packed, nb, r, &mut b);
            assert_eq!(a, b, "row {r}");
        }
    }

    /// The first `N` token rows of a four-token output.
    fn first<const N: usize>(out: &mut [[f32; GROUP]; 4]) -> &mut [[f32; GROUP]; N] {
        (&mut out[..N]).try_into().unwrap()
    }

    /// Packed Q6_K equals the portable dot ([`crate::dot::scalar_q6_k_q8_k`]) bit for bit
    /// on every tier this run covers, for every token count and with prefetching on and
    /// off; and its rows unpack to exactly the row-major blocks' values.
    #[test]
    fn packed_q6_k_is_bit_identical_to_the_portable_dot() {
        use crate::dot::tests::{q8k, random_q6k};
        let (rows, nb) = (16, 3);
        let blocks = random_q6k(7, rows * nb);
        let acts: Vec<Vec<BlockQ8K>> = (0..4).map(|k| q8k(20 + k, nb * 256)).collect();
        let ys = slices(&acts);
        let kernel = |tier, w: &[Q6Kx8], n, prefetch, out: &mut [[f32; GROUP]; 4]| {
            unsafe fn on<const N: usize>(
                tier: Isa,
                w: &[Q6Kx8],
                ys: &[&[BlockQ8K]],
                prefetch: bool,
                out: &mut [[f32; GROUP]; N],
            ) {
                match tier {
                    Isa::Avx512Vnni => x86::vnni::gemv_q6_kx8(w, ys, prefetch, out),
                    Isa::AvxVnni => x86::avxvnni::gemv_q6_kx8(w, ys, prefetch, out),
                    _ => x86::avx2::gemv_q6_kx8(w, ys, prefetch, out),
                }
            }
            // SAFETY: the tier runs here; the activations hold `nb` blocks.
            unsafe {
                match n {
                    1 => on::<1>(tier, w, &ys, prefetch, first(out)),
                    2 => on::<2>(tier, w, &ys, prefetch, first(out)),
                    3 => on::<3>(tier, w, &ys, prefetch, first(out)),
                    _ => on::<4>(tier, w, &ys, prefetch, out),
                }
            }
        };
        assert_packed_k_quant_equals_portable(
            &blocks,
            &pack_q6_k(&blocks, rows, nb),
            (rows, nb),
            &ys,
            kernel,
            crate::dot::scalar_q6_k_q8_k,
            crate::quant::dequantize_q6k,
            unpack_row_q6_k,
        );
    }

    /// Packed Q5_K equals the portable dot ([`crate::dot::scalar_q5_k_q8_k`]) bit for bit
    /// on every tier this run covers, for every token count, with random bits everywhere
    /// (all 32 levels, scales and minimums up to 63); and its rows unpack to exactly the
    /// row-major blocks' values.
    #[test]
    fn packed_q5_k_is_bit_identical_to_the_portable_dot() {
        use crate::dot::tests::{q8k, random_q5k};
        let (rows, nb) = (16, 3);
        let blocks = random_q5k(9, rows * nb);
        let acts: Vec<Vec<BlockQ8K>> = (0..4).map(|k| q8k(30 + k, nb * 256)).collect();
        let pairs: Vec<Vec<[i32; 4]>> = acts.iter().map(|q| q8_k_min_pairs(q)).collect();
        let (ys, ps) = (slices(&acts), slices(&pairs));
        let kernel = |tier, w: &[Q5Kx8], n, prefetch, out: &mut [[f32; GROUP]; 4]| {
            unsafe fn on<const N: usize>(
                tier: Isa,
                w: &[Q5Kx8],
                ys: &[&[BlockQ8K]],
                ps: &[&[[i32; 4]]],
                prefetch: bool,
                out: &mut [[f32; GROUP]; N],
            ) {
                match tier {
                    Isa::Avx512Vnni => x86::vnni::gemv_q5_kx8(w, ys, ps, prefetch, out),
                    Isa::AvxVnni => x86::avxvnni::gemv_q5_kx8(w, ys, ps, prefetch, out),
                    _ => x86::avx2::gemv_q5_kx8(w, ys, ps, prefetch, out),
                }
            }
            // SAFETY: the tier runs here; the activations hold `nb` blocks.
            unsafe {
                match n {
                    1 => on::<1>(tier, w, &ys, &ps, prefetch, first(out)),
                    2 => on::<2>(tier, w, &ys, &ps, prefetch, first(out)),
                    3 => on::<3>(tier, w, &ys, &ps, prefetch, first(out)),
                    _ => on::<4>(tier, w, &ys, &ps, prefetch, out),
                }
            }
        };
        assert_packed_k_quant_equals_portable(
            &blocks,
            &pack_q5_k(&blocks, rows, nb),
            (rows, nb),
            &ys,
            kernel,
            crate::dot::scalar_q5_k_q8_k,
            crate::quant::dequantize_q5k,
            unpack_row_q5_k,
        );
    }

    /// Four tokens' random activations quantized into `nb` blocks of `len` values each.
    fn activations<B: Default + Clone>(
        nb: usize,
        len: usize,
        quantize: fn(&[f32], &mut [B]),
    ) -> Vec<Vec<B>> {
        activations_for(4, nb, len, quantize)
    }

    /// `tokens` rows of `nb` activation blocks of `len` values each.
    fn activations_for<B: Default + Clone>(
        tokens: u64,
        nb: usize,
        len: usize,
        quantize: fn(&[f32], &mut [B]),
    ) -> Vec<Vec<B>> {
        (0..tokens)
            .map(|k| {
                let mut q = vec![B::default(); nb];
                quantize(&random(10 + k, nb * len), &mut q);
                q
            })
            .collect()
    }

    /// Borrowed rows, the shape the kernels take.
    fn slices<T>(v: &[Vec<T>]) -> Vec<&[T]> {
        v.iter().map(Vec::as_slice).collect()
    }

    /// The sixteen-row 512-bit kernel and the eight-row one compute each row with the
    /// same integer sums and float operations: bit-identical, for every token count.
    #[test]
    fn sixteen_row_kernel_equals_two_eight_row_groups_bit_for_bit() {
        if !wide_available() {
            return;
        }
        let (rows, nb) = (32, 9);
        let w = quantize_weight_q4_1(&random(7, rows * nb * 32));
        let (p8, p16) = (
            pack_q4_1::<GROUP>(&w, rows, nb),
            pack_q4_1::<WIDE_GROUP>(&w, rows, nb),
        );
        // Eight tokens, as the matmul calls the wide kernel; the narrow one takes four.
        let q = activations_for(8, nb, 32, quantize_q8_1);
        let s: Vec<Vec<[f32; 2]>> = q.iter().map(|q| q8_1_scales(q)).collect();
        let (ys, ss) = (slices(&q), slices(&s));
        for g16 in 0..rows / WIDE_GROUP {
            let mut wide = [[0.0; WIDE_GROUP]; 8];
            unsafe { gemv_q4_1x16::<8>(&p16[g16 * nb..(g16 + 1) * nb], &ys, &ss, true, &mut wide) };
            for (half, t0) in [0, 1].into_iter().flat_map(|h| [(h, 0), (h, 4)]) {
                let g8 = 2 * g16 + half;
                let mut narrow = [[0.0; GROUP]; 4];
                let (y4, s4) = (&ys[t0..t0 + 4], &ss[t0..t0 + 4]);
                unsafe {
                    gemv_q4_1x8::<4>(&p8[g8 * nb..(g8 + 1) * nb], y4, s4, false, &mut narrow)
                };
                for k in 0..4 {
                    for r in 0..GROUP {
                        assert_eq!(
                            wide[t0 + k][half * GROUP + r].to_bits(),
                            narrow[k][r].to_bits(),
                            "group {g16} token {} row {}",
                            t0 + k,
                            half * GROUP + r
                        );
                    }
                }
            }
        }
        let (mut a, mut b) = (vec![0.0; nb * 32], vec![0.0; nb * 32]);
        for r in [0, 15, 16, 31] {
            unpack_row_q4_1(&p8, nb, r, &mut a);
            unpack_row_q4_1(&p16, nb, r, &mut b);
            assert_eq!(a, b, "row {r}");
        }
    }
}
