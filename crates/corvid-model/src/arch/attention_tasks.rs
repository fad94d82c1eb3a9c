//! A step's attention work, split into tasks for the compute threads.

use super::llama::TokenMeta;
use super::tensor_parallel::ShardSpec;
use crate::model::SeqInput;
use corvid_kernels::attention::{
    merge_partitions, paged_attention_tile, partitions, AttnScratch, KvLayout, KvStore,
    PartialSoftmax, Piece,
};
use rayon::prelude::*;
use std::ops::Range;

/// Most query tokens one task attends together. Each key and value a task loads serves
/// every query head of its tile's tokens, so a prefill chunk reads (and converts) its
/// context once per tile instead of once per token.
const MAX_TILE: usize = 4;

/// Tasks per compute thread a step should keep: tiles shrink below [`MAX_TILE`] tokens
/// for short prefills so that every thread still gets several tasks (their sizes differ:
/// a later token attends a longer context).
const TASKS_PER_THREAD: usize = 8;

/// One task: the query heads of KV head `kv_head` of the tokens `tokens` (consecutive
/// positions of one sequence, whose contexts are split into the same number of pieces),
/// over their whole contexts or over piece `piece` of each.
struct Task {
    tokens: Range<usize>,
    kv_head: usize,
    piece: Option<usize>,
    /// Where the task's outputs start in [`AttentionTasks::outputs`], in tokens.
    at: usize,
}

/// A step's attention work: one task per (tile of a sequence's consecutive tokens, KV
/// head), or per (tile, KV head, context piece) for contexts longer than
/// [`PARTITION`](corvid_kernels::attention::PARTITION) tokens. The query heads sharing a
/// KV head are adjacent in `q` and in the output, so each task reads its K/V rows once
/// for all of them and all of its tokens; the pieces of a split context run on different
/// threads (so a single long sequence keeps every core busy) and are merged afterwards.
/// Decode steps (one token per sequence) get one-token tiles. Tiling never changes a
/// token's numbers ([`paged_attention_tile`]), so results do not depend on the batch.
/// Built once per step, reused by every layer of one kind (global, or local with a
/// sliding window).
pub(super) struct AttentionTasks {
    /// In (tile, KV head, piece) order.
    tasks: Vec<Task>,
    /// Pieces of each token's context.
    pieces: Vec<usize>,
    /// Every task's outputs (`group * head_dim` values per token; unnormalized for a
    /// piece), in task order.
    outputs: Vec<f32>,
    /// The pieces' per-head softmax maxima and sums (`group` per token), same order.
    stats: Vec<PartialSoftmax>,
    /// Query heads per KV head (of the shard's).
    group: usize,
    head_dim: usize,
    /// The shard's KV heads.
    kv_heads: Range<usize>,
    /// Positions attended, `None` for the whole context.
    window: Option<usize>,
}

impl AttentionTasks {
    pub(super) fn new(
        shard: &ShardSpec,
        head_dim: usize,
        meta: &[TokenMeta],
        block_size: usize,
        window: Option<usize>,
    ) -> Self {
        let (group, kv_heads) = (shard.group(), shard.kv_heads.clone());
        let pieces: Vec<usize> = meta
            .iter()
            .map(|m| partitions(context(m, window), block_size))
            .collect();
        let per_thread = TASKS_PER_THREAD * rayon::current_num_threads();
        let tile = (meta.len() * kv_heads.len() / per_thread).clamp(1, MAX_TILE);
        let mut tiles: Vec<Range<usize>> = Vec::new();
        for (t, m) in meta.iter().enumerate() {
            match tiles.last_mut() {
                Some(last)
                    if last.len() < tile
                        && meta[t - 1].seq == m.seq
                        && meta[t - 1].pos + 1 == m.pos
                        && pieces[t - 1] == pieces[t] =>
                {
                    last.end = t + 1
                }
                _ => tiles.push(t..t + 1),
            }
        }
        let mut tasks = Vec::new();
        let mut at = 0;
        for tokens in tiles {
            let k = pieces[tokens.start];
            for kv_head in kv_heads.clone() {
                for p in 0..k {
                    let piece = (k > 1).then_some(p);
                    let len = tokens.len();
                    tasks.push(Task {
                        tokens: tokens.clone(),
                        kv_head,
                        piece,
                        at,
                    });
                    at += len;
                }
            }
        }
        Self {
            outputs: vec![0.0; at * group * head_dim],
            stats: vec![PartialSoftmax::default(); at * group],
            tasks,
            pieces,
            group,
            head_dim,
            kv_heads,
            window,
        }
    }

    /// Attention of every token's query heads `q` (the shard's) over its sequence's
    /// cached context, written to `out` (same layout as `q`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        &mut self,
        layout: &KvLayout,
        store: &KvStore,
        batch: &[SeqInput<'_>],
        meta: &[TokenMeta],
        kv_group: usize,
        q: &[f32],
        scale: f32,
        out: &mut [f32],
    ) {
        let (group, gw, window) = (self.group, self.group * self.head_dim, self.window);
        let (qd, kv0) = (gw * self.kv_heads.len(), self.kv_heads.start);
        let query = |t: usize, h: usize| &q[t * qd + (h - kv0) * gw..][..gw];
        // Each (token, KV head)'s slice of `out`: a whole-context task copies its tokens'
        // outputs there itself; the pieces of a split context are merged there below.
        let mut dst: Vec<Option<&mut [f32]>> = out.chunks_exact_mut(gw).map(Some).collect();
        let mut slot = |t: usize, h: usize| {
            dst[t * self.kv_heads.len() + h - kv0]
                .take()
                .expect("one writer per output")
        };
        let mut jobs = Vec::with_capacity(self.tasks.len());
        let mut merges = Vec::new();
        let (mut outputs, mut stats) = (&mut self.outputs[..], &mut self.stats[..]);
        for (i, task) in self.tasks.iter().enumerate() {
            let n = task.tokens.len();
            let (o, rest) = std::mem::take(&mut outputs).split_at_mut(n * gw);
            let (s, rest_stats) = std::mem::take(&mut stats).split_at_mut(n * group);
            (outputs, stats) = (rest, rest_stats);
            let mut whole = Vec::new();
            match task.piece {
                None => whole.extend(task.tokens.clone().map(|t| slot(t, task.kv_head))),
                Some(0) => {
                    let dsts: Vec<_> = task.tokens.clone().map(|t| slot(t, task.kv_head)).collect();
                    merges.push((i, dsts));
                }
                Some(_) => {}
            }
            jobs.push((task, o, s, whole));
        }
        jobs.into_par_iter().for_each_init(
            || (AttnScratch::default(), Vec::new(), Vec::new()),
            |(scratch, qs, contexts), (task, o, stats, whole)| {
                let h = task.kv_head;
                qs.clear();
                contexts.clear();
                for t in task.tokens.clone() {
                    qs.extend_from_slice(query(t, h));
                    contexts.push(context(&meta[t], window));
                }
                let table = &batch[meta[task.tokens.start].seq].block_tables[kv_group];
                let piece = task.piece.map(|index| Piece { index, stats });
                paged_attention_tile(
                    layout, store, table, contexts, h, qs, scale, scratch, o, piece,
                );
                for (dst, src) in whole.into_iter().zip(o.chunks_exact(gw)) {
                    dst.copy_from_slice(src);
                }
            },
        );
        // The split contexts: each (token, KV head)'s pieces merged.
        let (mut parts, mut part_stats) = (Vec::new(), Vec::new());
        for (first, dsts) in merges {
            let task = &self.tasks[first];
            let pieces = &self.tasks[first..first + self.pieces[task.tokens.start]];
            for (j, dst) in dsts.into_iter().enumerate() {
                parts.clear();
                part_stats.clear();
                for p in pieces {
                    parts.extend_from_slice(&self.outputs[(p.at + j) * gw..][..gw]);
                    part_stats.extend_from_slice(&self.stats[(p.at + j) * group..][..group]);
                }
                merge_partitions(&parts, &part_stats, dst);
            }
        }
    }
}

/// The positions a token attends to: the whole context, or the last `window` of it.
fn context(m: &TokenMeta, window: Option<usize>) -> Range<usize> {
    let end = m.pos + 1;
    end - window.map_or(end, |w| w.min(end))..end
}
