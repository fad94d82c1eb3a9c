//! Paged attention on CPU: the query heads that share one KV head attend over a
//! sequence's keys and values, read through its block table from a pool of fixed-size
//! KV blocks (f16).
//!
//! Pool layout (per layer): each (block, KV head) owns one *tile* of
//! `head_dim * block_size` elements in the key pool and one in the value pool
//! ([`KvLayout::tile_offset`]). Keys are stored transposed in their tile (dimension `d`
//! of slot `s` at `d * block_size + s`) so that eight neighbouring keys load as one
//! vector; values are stored row by row (`s * head_dim + d`), one value row per load.
//!
//! Two implementations compute the same numbers bit for bit: a portable one
//! (`portable.rs`, the definition) and an AVX2/F16C one (`avx2.rs`) that evaluates
//! eight keys at a time while keeping every per-element operation order of the
//! portable one.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod portable;

use crate::ops::softmax;
use half::f16;

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
}

/// Stores one token's K and V rows (`n_kv_heads * head_dim` each) at `slot`
/// (`block * block_size + offset`).
pub fn write_kv(
    layout: &KvLayout,
    k_pool: &mut [f16],
    v_pool: &mut [f16],
    slot: usize,
    k: &[f32],
    v: &[f32],
) {
    let (bs, hd) = (layout.block_size, layout.head_dim);
    let (block, s) = (slot / bs, slot % bs);
    for (h, (kh, vh)) in k.chunks_exact(hd).zip(v.chunks_exact(hd)).enumerate() {
        let tile = layout.tile_offset(block, h);
        for (d, &x) in kh.iter().enumerate() {
            k_pool[tile + d * bs + s] = f16::from_f32(x);
        }
        for (dst, &x) in v_pool[tile + s * hd..tile + (s + 1) * hd]
            .iter_mut()
            .zip(vh)
        {
            *dst = f16::from_f32(x);
        }
    }
}

/// Scratch buffers reused across calls so the hot loop does not allocate.
#[derive(Default)]
pub struct AttnScratch {
    scores: Vec<f32>,
    q: Vec<f32>,
    row: Vec<f32>,
}

/// One sequence's view of a layer's pool: what both attention passes read.
#[derive(Clone, Copy)]
struct SeqKv<'a> {
    layout: &'a KvLayout,
    k_pool: &'a [f16],
    v_pool: &'a [f16],
    block_table: &'a [u32],
    ctx_len: usize,
    kv_head: usize,
}

impl SeqKv<'_> {
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

/// Attention of the query heads that share one KV head (GQA), over the first
/// `ctx_len` tokens of a sequence.
///
/// `qs` holds the group's query heads back to back (`head_dim` each) and `out` receives
/// their outputs in the same layout. `block_table[i]` is the pool block holding the
/// sequence's tokens `i*block_size .. (i+1)*block_size`. Like llama.cpp's f16 KV path,
/// queries and softmax weights are rounded to f16 before the products; sums stay f32.
#[allow(clippy::too_many_arguments)]
pub fn paged_attention_group(
    layout: &KvLayout,
    k_pool: &[f16],
    v_pool: &[f16],
    block_table: &[u32],
    ctx_len: usize,
    kv_head: usize,
    qs: &[f32],
    scale: f32,
    scratch: &mut AttnScratch,
    out: &mut [f32],
) {
    let hd = layout.head_dim;
    let heads = qs.len() / hd;
    let kv = SeqKv {
        layout,
        k_pool,
        v_pool,
        block_table,
        ctx_len,
        kv_head,
    };
    scratch.q.clear();
    scratch
        .q
        .extend(qs.iter().map(|&v| f16::from_f32(v).to_f32()));
    scratch.scores.clear();
    scratch.scores.resize(heads * ctx_len, 0.0);
    let simd = use_simd(hd);
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
    for s in scratch.scores.chunks_exact_mut(ctx_len) {
        softmax(s);
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
            avx2::values(&kv, &scratch.scores, out)
        };
    } else {
        portable::values(&kv, &scratch.scores, &mut scratch.row, out);
    }
}

/// Whether the AVX2/F16C kernels can run: CPU support and a head size of whole vectors.
fn use_simd(head_dim: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        head_dim.is_multiple_of(8) && crate::dot::has_avx2() && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = head_dim;
        false
    }
}

#[cfg(test)]
mod tests;
