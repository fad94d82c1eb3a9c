//! Continuous batching: every step, all running sequences get their next token(s) and
//! the remaining token budget is filled with prefill chunks of waiting sequences (FCFS).
//! When the KV pool runs dry, the newest running sequence is preempted: its blocks are
//! freed and it goes back to the front of the queue to be recomputed later.

use crate::kv::{KvManager, SeqKey};
use crate::output::FinishReason;
use crate::sequence::Sequence;
use corvid_model::{Logits, SeqInput};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// Scheduling limits.
#[derive(Clone, Copy, Debug)]
pub struct SchedulerConfig {
    /// Most sequences in one batch.
    pub max_num_seqs: usize,
    /// Most tokens in one step.
    pub max_num_batched_tokens: usize,
}

/// One sequence of a step's batch and how many of its tokens the step computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduledSeq {
    /// The sequence.
    pub key: SeqKey,
    /// Tokens to compute this step (a prefill chunk, or 1 when decoding).
    pub num_new: usize,
}

/// What one step runs, keyed by sequence, plus what scheduling it cost.
#[derive(Debug, Default)]
pub struct SchedulerOutput {
    /// The batch, in the order the model sees it.
    pub scheduled: Vec<ScheduledSeq>,
    /// Of the step's tokens, how many are prompt (prefill) tokens.
    pub num_prompt_tokens: usize,
    /// Sequences preempted while building this step.
    pub num_preempted: usize,
    /// Prompt tokens served from the prefix cache for newly admitted sequences.
    pub num_cached_tokens: usize,
    /// Prompt tokens of newly admitted sequences looked up in the prefix cache.
    pub num_queried_tokens: usize,
}

impl SchedulerOutput {
    /// Tokens the step computes.
    pub fn num_tokens(&self) -> usize {
        self.scheduled.iter().map(|s| s.num_new).sum()
    }

    /// Adds `seq` to the batch with `n` new tokens.
    fn push(&mut self, seq: &Sequence, n: usize) {
        self.num_prompt_tokens += n.min(seq.prompt_len.saturating_sub(seq.num_computed));
        self.scheduled.push(ScheduledSeq {
            key: seq.key,
            num_new: n,
        });
    }
}

/// Owns the waiting and running queues and the KV blocks they hold; nothing else
/// touches them. The engine core asks it for a batch ([`Scheduler::schedule`]), runs
/// the model, and hands the result back ([`Scheduler::update_from_output`]).
pub struct Scheduler {
    cfg: SchedulerConfig,
    kv: KvManager,
    /// Sequences not yet (or no longer) running, oldest first.
    waiting: VecDeque<Sequence>,
    /// Sequences in the batch, in admission order.
    running: Vec<Sequence>,
}

impl Scheduler {
    /// An empty scheduler drawing blocks from `kv`.
    pub fn new(cfg: SchedulerConfig, kv: KvManager) -> Self {
        Self {
            cfg,
            kv,
            waiting: VecDeque::new(),
            running: Vec::new(),
        }
    }

    /// Queues new sequences behind those already waiting.
    pub fn add(&mut self, seqs: Vec<Sequence>) {
        self.waiting.extend(seqs);
    }

    /// True when nothing is waiting or running.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Sequences in the batch.
    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    /// Sequences waiting for a batch slot or KV blocks.
    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The prefix-cache changes since the last call (empty unless the engine records them).
    pub fn take_kv_events(&mut self) -> Vec<crate::kv::KvCacheEvent> {
        self.kv.take_events()
    }

    /// KV blocks held by running sequences, summed over KV groups.
    pub fn kv_blocks_used(&self) -> usize {
        self.kv.num_used()
    }

    /// KV blocks in the pool.
    pub fn kv_blocks_total(&self) -> usize {
        self.kv.num_blocks()
    }

    fn preempt_last(&mut self) -> SeqKey {
        let mut victim = self.running.pop().expect("preempting with nothing running");
        self.kv.free(victim.key);
        victim.num_computed = 0;
        victim.preemptions += 1;
        let key = victim.key;
        self.waiting.push_front(victim);
        key
    }

    /// Builds the next step's batch.
    pub fn schedule(&mut self, now: Instant) -> SchedulerOutput {
        let mut out = SchedulerOutput::default();
        let mut budget = self.cfg.max_num_batched_tokens;
        let mut i = 0;
        'running: while i < self.running.len() && budget > 0 {
            let (key, computed, total) = {
                let s = &self.running[i];
                let total = s.num_computed + s.num_uncomputed().min(budget);
                (s.key, s.num_computed, total)
            };
            while !self.kv.allocate_slots(key, computed, total) {
                if self.preempt_last() == key {
                    out.num_preempted += 1;
                    break 'running;
                }
                out.num_preempted += 1;
            }
            let s = &self.running[i];
            let n = total - s.num_computed;
            out.push(s, n);
            budget -= n;
            i += 1;
        }
        if out.num_preempted > 0 || i < self.running.len() {
            return out;
        }
        while budget > 0 && self.running.len() < self.cfg.max_num_seqs {
            let Some(seq) = self.waiting.front_mut() else {
                break;
            };
            let fresh = seq.num_computed == 0 && seq.times.first_scheduled.is_none();
            if seq.num_computed == 0 {
                seq.num_computed = self.kv.reuse_prefix(seq.key, &seq.tokens);
                if fresh {
                    seq.num_cached = seq.num_computed;
                }
            }
            let n = seq.num_uncomputed().min(budget);
            if !self
                .kv
                .allocate_slots(seq.key, seq.num_computed, seq.num_computed + n)
            {
                // Give back any prefix blocks so a waiting sequence holds nothing.
                self.kv.free(seq.key);
                seq.num_computed = 0;
                break;
            }
            let mut seq = self.waiting.pop_front().expect("front exists");
            if fresh {
                out.num_cached_tokens += seq.num_cached;
                out.num_queried_tokens += seq.prompt_len;
            }
            seq.times.first_scheduled.get_or_insert(now);
            out.push(&seq, n);
            budget -= n;
            self.running.push(seq);
        }
        out
    }

    /// Positions of the running sequences by key.
    fn running_index(&self) -> HashMap<SeqKey, usize> {
        self.running
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key, i))
            .collect()
    }

    /// The model's inputs for a batch built by [`Scheduler::schedule`].
    pub fn model_inputs(&self, out: &SchedulerOutput) -> Vec<SeqInput<'_>> {
        let at = self.running_index();
        out.scheduled
            .iter()
            .map(|sch| {
                let s = &self.running[at[&sch.key]];
                let end = s.num_computed + sch.num_new;
                SeqInput {
                    tokens: &s.tokens[s.num_computed..end],
                    start_pos: s.num_computed,
                    block_tables: self.kv.block_tables(s.key),
                    want_logits: end == s.tokens.len(),
                }
            })
            .collect()
    }

    /// Applies a step's result: advances every scheduled sequence by its computed
    /// tokens, caches its full blocks, and calls `sample` for each sequence whose
    /// logits row is ready (rows in batch order). Sequences that finish (`sample`
    /// says why, or `logits` is `None`: the step failed) leave the batch with their
    /// blocks freed and are returned with their reason.
    pub fn update_from_output(
        &mut self,
        out: &SchedulerOutput,
        logits: Option<&mut Logits>,
        mut sample: impl FnMut(&mut Sequence, &mut [f32]) -> Option<FinishReason>,
    ) -> Vec<(Sequence, FinishReason)> {
        let at = self.running_index();
        let mut done: Vec<(SeqKey, FinishReason)> = Vec::new();
        match logits {
            Some(rows) => {
                let mut rows = rows.rows_mut();
                for sch in &out.scheduled {
                    let seq = &mut self.running[at[&sch.key]];
                    seq.num_computed += sch.num_new;
                    self.kv
                        .cache_full_blocks(seq.key, &seq.tokens[..seq.num_computed]);
                    if seq.num_computed < seq.tokens.len() {
                        continue;
                    }
                    let row = rows.next().expect("one logits row per finished prefill");
                    if let Some(reason) = sample(seq, row) {
                        done.push((seq.key, reason));
                    }
                }
            }
            None => done.extend(out.scheduled.iter().map(|s| (s.key, FinishReason::Error))),
        }
        let mut finished = Vec::with_capacity(done.len());
        for (key, reason) in done {
            let i = self
                .running
                .iter()
                .position(|s| s.key == key)
                .expect("finished sequence is running");
            let seq = self.running.remove(i);
            self.kv.free(seq.key);
            finished.push((seq, reason));
        }
        finished
    }

    /// Removes every sequence of a request (waiting or running), freeing its blocks.
    pub fn abort(&mut self, request_id: &str) -> Vec<Sequence> {
        let mut removed = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].request_id == request_id {
                let s = self.running.remove(i);
                self.kv.free(s.key);
                removed.push(s);
            } else {
                i += 1;
            }
        }
        let (gone, keep): (Vec<_>, Vec<_>) = self
            .waiting
            .drain(..)
            .partition(|s| s.request_id == request_id);
        self.waiting = keep.into();
        for s in gone {
            self.kv.free(s.key);
            removed.push(s);
        }
        removed
    }
}
