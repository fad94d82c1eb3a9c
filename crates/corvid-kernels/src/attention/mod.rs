//! Paged attention on CPU: the query heads that share one KV head attend over a
//! sequence's keys and values, read through its block table from a pool of fixed-size
//! KV blocks ([`KvStore`]: f16, or q8_0 with one f32 scale per token and KV head).
//!
//! Pool layout (per layer): each (block, KV head) owns one *tile* of
//! `head_dim * block_size` elements in the key pool and one in the value pool
//! ([`KvLayout::tile_offset`]). Keys are stored transposed in their tile (dimension `d`
//! of slot `s` at `d * block_size + s`) so that eight neighbouring keys load as one
//! vector; values are stored row by row (`s * head_dim + d`), one value row per load.
//! A q8_0 pool keeps the same tile layout in `i8`, plus the scale of each (block, KV head,
//! slot) row of K and of V ([`KvLayout::scale_offset`]); a key's score is its integer dot
//! product times its K scale, and a value row's weight is its probability times its V
//! scale.
//!
//! Two implementations compute the same numbers bit for bit: a portable one
//! (`portable.rs`, the definition) and an AVX2/F16C one (`avx2.rs`) that evaluates
//! eight keys at a time while keeping every per-element operation order of the
//! portable one.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod portable;

use crate::ops::{exp_shifted, softmax};
use half::f16;
use half::vec::HalfBitsVecExt;
use std::ops::Range;

/// Element type of a KV pool: how one stored element reads as f32 (before its row's
/// scale, if the pool has scales).
pub(crate) trait KvElem: Copy {
    /// The stored value as f32.
    fn to_f32(self) -> f32;

    /// Eight consecutive elements at `p` as f32.
    ///
    /// # Safety
    /// `p .. p + 8` must be readable, and the CPU must support AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
}

impl KvElem for f16 {
    #[inline]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
}

impl KvElem for i8 {
    #[inline]
    fn to_f32(self) -> f32 {
        f32::from(self)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
    }
}

/// Element format of a KV pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvDtype {
    /// f16 elements (llama.cpp's default cache type).
    #[default]
    F16,
    /// i8 elements with one f32 scale per token row of each KV head (`amax / 127`).
    Q8_0,
}

/// Shape of one layer's KV block pool.
#[derive(Clone, Copy, Debug)]
pub struct KvLayout {
    /// Tokens per block.
    pub block_size: usize,
    /// KV heads.
    pub n_kv_heads: usize,
    /// Dimensions per head.
    pub head_dim: usize,
}

impl KvLayout {
    /// Element offset of the tile of `(block, kv_head)` in the key or value pool.
    #[inline]
    pub fn tile_offset(&self, block: usize, kv_head: usize) -> usize {
        (block * self.n_kv_heads + kv_head) * self.tile_len()
    }

    /// Elements in one (block, KV head) tile.
    #[inline]
    pub fn tile_len(&self) -> usize {
        self.head_dim * self.block_size
    }

    /// Elements per token (all KV heads).
    pub fn token_width(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Offset of the scales of the tile of `(block, kv_head)` (one per slot) in a q8_0
    /// pool's key or value scales.
    #[inline]
    pub fn scale_offset(&self, block: usize, kv_head: usize) -> usize {
        (block * self.n_kv_heads + kv_head) * self.block_size
    }

    /// Bytes one block of one layer takes (keys and values, with their scales).
    pub fn block_bytes(&self, dtype: KvDtype) -> usize {
        let per_slot = match dtype {
            KvDtype::F16 => self.head_dim * std::mem::size_of::<f16>(),
            KvDtype::Q8_0 => self.head_dim + std::mem::size_of::<f32>(),
        };
        2 * self.n_kv_heads * self.block_size * per_slot
    }
}

/// Quantizes `x` to q8_0: returns `scale = amax / 127` and stores `round(x / scale)` at
/// `dst(d)` for each dimension `d` (all zeros when `x` is all zeros).
fn quantize_row(x: &[f32], mut dst: impl FnMut(usize, i8)) -> f32 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = amax / 127.0;
    for (d, &v) in x.iter().enumerate() {
        let q = if scale == 0.0 {
            0
        } else {
            (v / scale).round() as i8
        };
        dst(d, q);
    }
    scale
}

/// The smallest page the OS commits memory in ([`KvStore::commit_pages`] writes once per
/// page of this size, which also reaches every page of a larger size).
const PAGE_BYTES: usize = 4096;

/// One layer's key and value pools (layout: see the module docs).
pub enum KvStore {
    /// f16 elements.
    F16 {
        /// Keys, `num_blocks * block_size * token_width` elements.
        k: Vec<f16>,
        /// Values, same shape as `k`.
        v: Vec<f16>,
    },
    /// q8_0: i8 elements, each token row of each KV head with its own f32 scale.
    Q8 {
        /// Keys, `num_blocks * block_size * token_width` elements.
        k: Vec<i8>,
        /// Values, same shape as `k`.
        v: Vec<i8>,
        /// Key scales, `num_blocks * n_kv_heads * block_size` ([`KvLayout::scale_offset`]).
        k_scale: Vec<f32>,
        /// Value scales, same shape as `k_scale`.
        v_scale: Vec<f32>,
    },
}

impl KvStore {
    /// A zeroed pool of `num_blocks` blocks.
    pub fn new(dtype: KvDtype, layout: &KvLayout, num_blocks: usize) -> Self {
        let n = num_blocks * layout.block_size * layout.token_width();
        match dtype {
            // Zeroed u16 memory comes from the allocator's zeroed pages, so the OS
            // commits it only as blocks are written (`vec![f16::ZERO; n]` would write
            // every element and commit the whole pool at start).
            KvDtype::F16 => Self::F16 {
                k: vec![0u16; n].reinterpret_into(),
                v: vec![0u16; n].reinterpret_into(),
            },
            KvDtype::Q8_0 => {
                let scales = num_blocks * layout.n_kv_heads * layout.block_size;
                Self::Q8 {
                    k: vec![0; n],
                    v: vec![0; n],
                    k_scale: vec![0.0; scales],
                    v_scale: vec![0.0; scales],
                }
            }
        }
    }

    /// Makes the OS commit every page of the pool now, one write per page (of the byte it
    /// holds, so contents never change), as llama.cpp does by clearing its KV buffer at
    /// start: [`KvStore::new`]'s pool is committed lazily, so a fresh server's first burst
    /// of requests paid the page faults (168k in a ShareGPT-like c64 run, BENCHMARKS.md). A
    /// gibibyte took 3.6 s on a 2-vCPU VM, most of it the hypervisor backing the pages
    /// (`MADV_POPULATE_WRITE` was no faster there).
    pub fn commit_pages(&mut self) {
        fn touch<T>(v: &mut [T]) {
            let bytes = std::mem::size_of_val(v);
            let base = v.as_mut_ptr() as *mut u8;
            // A page apart from the start, then the last byte: its page is the one the
            // steps miss when the buffer does not start on a page boundary.
            let last = bytes.checked_sub(1);
            for at in (0..bytes).step_by(PAGE_BYTES).chain(last) {
                // SAFETY: `at` < the buffer's byte length, which `v` borrows mutably;
                // writing back the byte read changes nothing.
                unsafe {
                    let p = base.add(at);
                    std::ptr::write_volatile(p, std::ptr::read_volatile(p));
                }
            }
        }
        match self {
            Self::F16 { k, v } => {
                touch(k);
                touch(v);
            }
            Self::Q8 {
                k,
                v,
                k_scale,
                v_scale,
            } => {
                touch(k);
                touch(v);
                touch(k_scale);
                touch(v_scale);
            }
        }
    }

    /// Stores one token's K and V rows (`n_kv_heads * head_dim` each) at `slot`
    /// (`block * block_size + offset`).
    pub fn write(&mut self, layout: &KvLayout, slot: usize, k: &[f32], v: &[f32]) {
        self.write_tokens(layout, &[slot], 0, k, v);
    }

    /// Stores the K and V rows of a step's tokens, token `i` at `slots[i]`, of the KV
    /// heads from `first_head` on (as many as each token's row of `k` holds: a
    /// tensor-parallel shard writes only its own heads). Keys and values go to separate
    /// pools, so they are written on two threads side by side.
    pub fn write_tokens(
        &mut self,
        layout: &KvLayout,
        slots: &[usize],
        first_head: usize,
        k: &[f32],
        v: &[f32],
    ) {
        if slots.is_empty() {
            return;
        }
        let (bs, hd) = (layout.block_size, layout.head_dim);
        let heads = |rows| token_heads(layout, slots, first_head, rows);
        match self {
            Self::F16 { k: kp, v: vp } => rayon::join(
                || {
                    for (tile, _, s, x) in heads(k) {
                        for (d, &x) in x.iter().enumerate() {
                            kp[tile + d * bs + s] = f16::from_f32(x);
                        }
                    }
                },
                || {
                    for (tile, _, s, x) in heads(v) {
                        for (dst, &x) in vp[tile + s * hd..][..hd].iter_mut().zip(x) {
                            *dst = f16::from_f32(x);
                        }
                    }
                },
            ),
            Self::Q8 {
                k: kp,
                v: vp,
                k_scale,
                v_scale,
            } => rayon::join(
                || {
                    for (tile, at, s, x) in heads(k) {
                        k_scale[at] = quantize_row(x, |d, q| kp[tile + d * bs + s] = q);
                    }
                },
                || {
                    for (tile, at, s, x) in heads(v) {
                        let row = &mut vp[tile + s * hd..][..hd];
                        v_scale[at] = quantize_row(x, |d, q| row[d] = q);
                    }
                },
            ),
        };
    }
}

/// Each KV head's row of each token of [`KvStore::write_tokens`] (`rows` holds one row
/// per slot of the non-empty `slots`, heads from `first_head` on): its tile, the index of
/// its scale, its slot in the block, and its values.
fn token_heads<'a>(
    layout: &'a KvLayout,
    slots: &'a [usize],
    first_head: usize,
    rows: &'a [f32],
) -> impl Iterator<Item = (usize, usize, usize, &'a [f32])> + 'a {
    let (bs, hd) = (layout.block_size, layout.head_dim);
    let width = rows.len() / slots.len();
    slots
        .iter()
        .zip(rows.chunks_exact(width))
        .flat_map(move |(&slot, row)| {
            let (block, s) = (slot / bs, slot % bs);
            (first_head..).zip(row.chunks_exact(hd)).map(move |(h, x)| {
                let at = layout.scale_offset(block, h) + s;
                (layout.tile_offset(block, h), at, s, x)
            })
        })
}

/// Scratch buffers reused across calls so the hot loop does not allocate.
#[derive(Default)]
pub struct AttnScratch {
    scores: Vec<f32>,
    q: Vec<f32>,
    row: Vec<f32>,
    rows: Vec<Row>,
}

/// The key and value scales of a q8_0 pool.
#[derive(Clone, Copy)]
struct Scales<'a> {
    k: &'a [f32],
    v: &'a [f32],
}

/// One sequence's view of a layer's pool: what both attention passes read.
#[derive(Clone, Copy)]
struct SeqKv<'a, E> {
    layout: &'a KvLayout,
    k_pool: &'a [E],
    v_pool: &'a [E],
    /// `None` for an f16 pool (no scale multiplications at all).
    scales: Option<Scales<'a>>,
    block_table: &'a [u32],
    ctx_len: usize,
    kv_head: usize,
}

impl<E> SeqKv<'_, E> {
    /// Scale index of slot 0 of the tile at element offset `tile`.
    #[inline]
    fn scale_index(&self, tile: usize) -> usize {
        tile / self.layout.head_dim
    }

    /// The tiles covering the context, with how many of each tile's slots are used.
    fn tiles(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let bs = self.layout.block_size;
        self.block_table
            .iter()
            .take(self.ctx_len.div_ceil(bs))
            .enumerate()
            .map(move |(i, &b)| {
                let used = bs.min(self.ctx_len - i * bs);
                (self.layout.tile_offset(b as usize, self.kv_head), used)
            })
    }
}

/// Attention of the query heads that share one KV head (GQA), for one query token or a
/// tile of consecutive query tokens of one sequence (a prefill chunk), over the positions
/// `contexts[j]` of the sequence for token `j` (`0..n` for the whole context of a token at
/// position `n - 1`, a later start for a sliding window), or over one piece of each
/// (`piece`).
///
/// `qs` holds the group's query heads back to back (`head_dim` each), token 0's, then
/// token 1's, and so on; `out` receives their outputs in the same layout. `block_table[i]`
/// is the pool block holding the sequence's tokens `i*block_size .. (i+1)*block_size`. Like
/// llama.cpp's f16 KV path, queries and softmax weights are rounded to f16 before the
/// products; sums stay f32.
///
/// A window's context starts at the block holding its start; the positions before the
/// start in that block get no weight (their scores are −∞). With a [`Piece`] of contexts
/// split by [`partitions`], only the `PARTITION` context tokens from `piece.index *
/// PARTITION` (counted from that first block) of each token are attended, the outputs are
/// left unnormalized (`Σ exp(s − max) · v`, the weights rounded to f16 as in the
/// whole-context case) and each head's maximum and sum go to `piece.stats` (token by
/// token), for [`merge_partitions`].
///
/// A tile's tokens share every key and value loaded: a key tile's scores are computed for
/// all heads of all tokens in one pass, instead of once per token. Yet every output and
/// statistic is bit for bit what the token gets alone (`contexts` of one range): the tile
/// only changes the order in which independent scores and outputs are computed, never the
/// operations of one of them, so a token's result does not depend on the tokens it is
/// tiled with. The contexts must start and end in non-decreasing order (consecutive
/// positions of one sequence do) and, with a `piece`, all be split into the same number
/// of pieces by [`partitions`].
#[allow(clippy::too_many_arguments)]
pub fn paged_attention_tile(
    layout: &KvLayout,
    store: &KvStore,
    block_table: &[u32],
    contexts: &[Range<usize>],
    kv_head: usize,
    qs: &[f32],
    scale: f32,
    scratch: &mut AttnScratch,
    out: &mut [f32],
    piece: Option<Piece<'_>>,
) {
    let bs = layout.block_size;
    let index = piece.as_ref().map(|p| p.index);
    // Each token's piece: its first block in the table, its length and masked prefix.
    let spans = contexts.iter().map(|ctx| {
        let first = ctx.start / bs;
        let (len, masked) = (ctx.end - first * bs, ctx.start - first * bs);
        match index {
            None => (first, len, masked),
            Some(i) => (
                first + i * PARTITION / bs,
                PARTITION.min(len - i * PARTITION),
                if i == 0 { masked } else { 0 },
            ),
        }
    });
    // The tile attends the union of its tokens' pieces; each query row keeps to its own.
    let first = spans.clone().map(|(b, _, _)| b).min().expect("a token");
    let end = spans.clone().map(|(b, len, _)| b * bs + len).max();
    let ctx_len = end.expect("a token") - first * bs;
    let group = qs.len() / layout.head_dim / contexts.len();
    let mut rows = std::mem::take(&mut scratch.rows);
    rows.clear();
    rows.extend(spans.flat_map(|(b, len, masked)| {
        let lo = (b - first) * bs;
        std::iter::repeat_n(Row { lo, len, masked }, group)
    }));
    let block_table = &block_table[first..];
    let stats = piece.map(|p| p.stats);
    match store {
        KvStore::F16 { k, v } => attend(
            SeqKv {
                layout,
                k_pool: k,
                v_pool: v,
                scales: None,
                block_table,
                ctx_len,
                kv_head,
            },
            &rows,
            qs,
            scale,
            scratch,
            out,
            stats,
        ),
        KvStore::Q8 {
            k,
            v,
            k_scale,
            v_scale,
        } => attend(
            SeqKv {
                layout,
                k_pool: k,
                v_pool: v,
                scales: Some(Scales {
                    k: k_scale,
                    v: v_scale,
                }),
                block_table,
                ctx_len,
                kv_head,
            },
            &rows,
            qs,
            scale,
            scratch,
            out,
            stats,
        ),
    }
    scratch.rows = rows;
}

/// The positions of a tile's context (counted from its first block) that one query row
/// attends: its token's piece, `lo .. lo + len`, whose first `masked` positions lie
/// before its sliding window and get no weight.
#[derive(Clone, Copy, Debug)]
struct Row {
    lo: usize,
    len: usize,
    masked: usize,
}

impl Row {
    /// The attended positions.
    #[inline]
    fn range(&self) -> Range<usize> {
        self.lo..self.lo + self.len
    }
}

/// Context tokens per [`Piece`]: contexts up to this long are attended in one task;
/// longer ones are split into pieces of this many tokens that run on different threads
/// (flash-decoding) and are merged by [`merge_partitions`]. The pieces depend only on the
/// context length, never on the batch, so a sequence's result does not depend on what it
/// is batched with.
pub const PARTITION: usize = 512;

/// How many [`PARTITION`]-token pieces attention over the positions `ctx` uses (counted
/// from the block holding `ctx.start`): 1 (no split) up to `PARTITION` tokens, or when
/// blocks of `block_size` do not tile a piece.
pub fn partitions(ctx: Range<usize>, block_size: usize) -> usize {
    if PARTITION.is_multiple_of(block_size) {
        (ctx.end - ctx.start / block_size * block_size)
            .div_ceil(PARTITION)
            .max(1)
    } else {
        1
    }
}

/// The running maximum and sum of one query head's unnormalized softmax over one piece
/// of the context, which [`merge_partitions`] needs to combine the pieces exactly.
#[derive(Clone, Copy, Debug, Default)]
pub struct PartialSoftmax {
    /// Largest score of the piece.
    pub max: f32,
    /// `Σ exp(score − max)` over the piece.
    pub sum: f64,
}

/// One piece of a context split by [`partitions`], as [`paged_attention_tile`] computes it.
pub struct Piece<'a> {
    /// Which piece: context tokens `index * PARTITION ..`.
    pub index: usize,
    /// Receives each query head's softmax maximum and sum over the piece.
    pub stats: &'a mut [PartialSoftmax],
}

/// Combines the pieces of a split context into the normalized output of each query head.
/// `parts` holds the pieces' unnormalized outputs back to back (`out.len()` values each,
/// heads back to back), `stats` their heads' maxima and sums in the same order. The pieces
/// are added in order.
pub fn merge_partitions(parts: &[f32], stats: &[PartialSoftmax], out: &mut [f32]) {
    let width = out.len();
    let pieces = parts.len() / width;
    let heads = stats.len() / pieces;
    let hd = width / heads;
    for (h, o) in out.chunks_exact_mut(hd).enumerate() {
        let head = || stats.iter().skip(h).step_by(heads);
        let max = head().map(|s| s.max).fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f64> = head().map(|s| ((s.max - max) as f64).exp()).collect();
        let total: f64 = head().zip(&weights).map(|(s, w)| s.sum * w).sum();
        o.fill(0.0);
        for (part, w) in parts.chunks_exact(width).zip(&weights) {
            let w = (w / total) as f32;
            for (x, &y) in o.iter_mut().zip(&part[h * hd..(h + 1) * hd]) {
                *x += w * y;
            }
        }
    }
}

/// [`paged_attention_tile`] over one element type; with `stats`, the unnormalized piece.
/// Query row `r` (`qs[r * head_dim ..]`) attends the positions `rows[r]` of the context.
fn attend<E: KvElem>(
    kv: SeqKv<'_, E>,
    rows: &[Row],
    qs: &[f32],
    scale: f32,
    scratch: &mut AttnScratch,
    out: &mut [f32],
    mut stats: Option<&mut [PartialSoftmax]>,
) {
    let ctx_len = kv.ctx_len;
    scratch.q.clear();
    scratch
        .q
        .extend(qs.iter().map(|&v| f16::from_f32(v).to_f32()));
    scratch.scores.clear();
    scratch.scores.resize(rows.len() * ctx_len, 0.0);
    let simd = use_simd(kv.layout.head_dim);
    // Scores of every row over the whole tile context (a score outside a row's positions
    // is computed and never read: each score depends on its query and key alone).
    if simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `use_simd` checked AVX2, FMA and F16C and that head_dim is a multiple of 8.
        unsafe {
            avx2::scores(
                &kv,
                &scratch.q,
                scale,
                &mut scratch.row,
                &mut scratch.scores,
            )
        };
    } else {
        portable::scores(
            &kv,
            &scratch.q,
            scale,
            &mut scratch.row,
            &mut scratch.scores,
        );
    }
    for (r, (all, row)) in scratch
        .scores
        .chunks_exact_mut(ctx_len)
        .zip(rows)
        .enumerate()
    {
        let s = &mut all[row.range()];
        s[..row.masked].fill(f32::NEG_INFINITY);
        match stats.as_deref_mut() {
            Some(stats) => {
                let (max, sum) = exp_shifted(s);
                stats[r] = PartialSoftmax { max, sum };
            }
            None => softmax(s),
        }
        if simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            unsafe {
                avx2::round_to_f16(s)
            };
        } else {
            s.iter_mut().for_each(|p| *p = f16::from_f32(*p).to_f32());
        }
    }
    if simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        unsafe {
            avx2::values(&kv, &scratch.scores, rows, out)
        };
    } else {
        portable::values(&kv, &scratch.scores, rows, &mut scratch.row, out);
    }
}

/// Whether the AVX2/F16C kernels can run: CPU support and a head size of whole vectors.
fn use_simd(head_dim: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        head_dim.is_multiple_of(8) && crate::isa::avx2()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = head_dim;
        false
    }
}

#[cfg(test)]
mod tests;
