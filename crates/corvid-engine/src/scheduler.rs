//! Continuous batching: every step, all running sequences get their next token(s) and
//! the remaining token budget is filled with prefill chunks of waiting sequences (FCFS).
//! When the KV pool runs dry, the newest running sequence is preempted: its blocks are
//! freed and it goes back to the front of the queue to be recomputed later.

use crate::kv::{KvManager, SeqKey};
use crate::sequence::Sequence;
use std::collections::VecDeque;
use std::time::Instant;

/// Scheduling limits.
#[derive(Clone, Copy, Debug)]
pub struct SchedulerConfig {
    /// Most sequences in one batch.
    pub max_num_seqs: usize,
    /// Most tokens in one step.
    pub max_num_batched_tokens: usize,
}

/// What one step runs: `running[..num_scheduled]`, with `num_new[i]` tokens each.
#[derive(Debug, Default)]
pub struct SchedulerOutput {
    /// Tokens to compute per scheduled sequence (same order as `running`).
    pub num_new: Vec<usize>,
    /// Sequences preempted while building this step.
    pub num_preempted: usize,
    /// Prompt tokens served from the prefix cache for newly admitted sequences.
    pub num_cached_tokens: usize,
    /// Prompt tokens of newly admitted sequences looked up in the prefix cache.
    pub num_queried_tokens: usize,
}

/// Waiting and running queues plus the KV manager they draw blocks from.
pub struct Scheduler {
    cfg: SchedulerConfig,
    /// KV block bookkeeping.
    pub kv: KvManager,
    /// Sequences not yet (or no longer) running, oldest first.
    pub waiting: VecDeque<Sequence>,
    /// Sequences in the batch, in admission order.
    pub running: Vec<Sequence>,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(cfg: SchedulerConfig, kv: KvManager) -> Self {
        Self {
            cfg,
            kv,
            waiting: VecDeque::new(),
            running: Vec::new(),
        }
    }

    /// True when nothing is waiting or running.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
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
            let (key, total) = {
                let s = &self.running[i];
                (s.key, s.num_computed + s.num_uncomputed().min(budget))
            };
            while !self.kv.allocate_slots(key, total) {
                if self.preempt_last() == key {
                    out.num_preempted += 1;
                    break 'running;
                }
                out.num_preempted += 1;
            }
            let n = total - self.running[i].num_computed;
            out.num_new.push(n);
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
            if !self.kv.allocate_slots(seq.key, seq.num_computed + n) {
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
            out.num_new.push(n);
            budget -= n;
            self.running.push(seq);
        }
        out
    }

    /// Removes every sequence of a request (waiting or running), freeing its blocks.
    pub fn remove_request(&mut self, request_id: &str) -> Vec<Sequence> {
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
