//! Tensor parallelism on CPU (vLLM's `tensor_parallel_size`): how a model's heads and FFN
//! columns are divided among shards, the shards' pinned thread pools, and the all-reduce
//! that sums their partial outputs in shared memory.
//!
//! A shard owns whole KV heads with their query heads, or — when there are more shards
//! than KV heads, as in Gemma 3 270M (one KV head) — a share of one KV head's query heads,
//! the KV head replicated (as vLLM replicates it). Splits may be uneven: SmolLM2-135M's
//! 3 KV heads over 2 shards are 2 + 1 (its 9 query heads 6 + 3), where vLLM refuses
//! `num_kv_heads % tp != 0`. The FFN columns are split on the weight formats' block
//! width, so every shard's weights are the original's bits.

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use corvid_kernels::ops::add_assign;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::RwLock;

/// What one shard computes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    /// Its query heads.
    pub q_heads: Range<usize>,
    /// The KV heads those query heads read.
    pub kv_heads: Range<usize>,
    /// Its columns of the FFN's intermediate activations.
    pub ffn: Range<usize>,
    /// Whether it writes its KV heads to the cache: false for the second and later shards
    /// of a replicated KV head, which read what the first one wrote.
    pub writes_kv: bool,
}

impl ShardSpec {
    /// Query heads per KV head within the shard (the whole GQA group unless the KV head
    /// is replicated and its query heads divided).
    pub fn group(&self) -> usize {
        self.q_heads.len() / self.kv_heads.len()
    }
}

/// The shards of `c` for `tp`-way tensor parallelism, with FFN bounds on multiples of
/// `ffn_step` (the largest weight block width the FFN matrices need cut whole). One
/// shard holding everything for `tp = 1`.
pub fn plan(c: &ModelConfig, tp: usize, ffn_step: usize) -> Result<Vec<ShardSpec>> {
    let refuse = |why: String| {
        Err(ModelError::Unsupported(format!(
            "tensor_parallel_size {tp}: {why}"
        )))
    };
    let (heads, kv) = (c.num_heads, c.num_kv_heads);
    let group = heads / kv;
    if tp == 0 {
        return refuse("must be at least 1".into());
    }
    let heads: Vec<(Range<usize>, Range<usize>, bool)> = if tp <= kv {
        even(kv, tp, 1)
            .into_iter()
            .map(|k| (k.start * group..k.end * group, k, true))
            .collect()
    } else if tp.is_multiple_of(kv) && tp / kv <= group {
        let per = tp / kv;
        (0..kv)
            .flat_map(|k| {
                even(group, per, 1)
                    .into_iter()
                    .enumerate()
                    .map(move |(i, q)| (k * group + q.start..k * group + q.end, k..k + 1, i == 0))
            })
            .collect()
    } else {
        return refuse(format!(
            "the model's {kv} KV heads (with {group} query heads each) cannot be divided \
             among {tp} shards: use at most {kv} shards, or a multiple of {kv} up to {}",
            c.num_heads
        ));
    };
    if !c.intermediate_size.is_multiple_of(ffn_step) || c.intermediate_size / ffn_step < tp {
        return refuse(format!(
            "the FFN's {} columns do not split into {tp} slices of whole {ffn_step}-column \
             weight blocks",
            c.intermediate_size
        ));
    }
    let ffn = even(c.intermediate_size, tp, ffn_step);
    Ok(heads
        .into_iter()
        .zip(ffn)
        .map(|((q_heads, kv_heads, writes_kv), ffn)| ShardSpec {
            q_heads,
            kv_heads,
            ffn,
            writes_kv,
        })
        .collect())
}

/// `0..len` in `parts` contiguous ranges on multiples of `step`, sizes differing by at
/// most one step, the larger first.
fn even(len: usize, parts: usize, step: usize) -> Vec<Range<usize>> {
    let units = len / step;
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let n = (units / parts + usize::from(i < units % parts)) * step;
            start += n;
            start - n..start
        })
        .collect()
}

/// Sums the shards' partial outputs so every shard ends with the same total, in a fixed
/// order (shard 0 + shard 1 + ...), so the result is deterministic and does not depend
/// on timing. Double-buffered: a shard writes round `r`'s slot only after everyone passed
/// round `r - 1`'s barrier, so nobody still reads round `r - 2`'s from the same slot.
pub struct AllReduce {
    barrier: SpinBarrier,
    slots: [Vec<RwLock<Vec<f32>>>; 2],
}

impl AllReduce {
    /// For `shards` shards.
    pub fn new(shards: usize) -> Self {
        let slots = || (0..shards).map(|_| RwLock::new(Vec::new())).collect();
        Self {
            barrier: SpinBarrier::new(shards),
            slots: [slots(), slots()],
        }
    }

    /// Replaces `buf` (shard `shard`'s part) by the sum of every shard's part; `round`
    /// counts the calls each shard made before (all shards make the same calls). A no-op
    /// for one shard.
    pub fn sum(&self, shard: usize, round: usize, buf: &mut [f32]) {
        let slots = &self.slots[round % 2];
        if slots.len() == 1 {
            return;
        }
        {
            let mut mine = slots[shard].write().expect("all-reduce slot");
            mine.clear();
            mine.extend_from_slice(buf);
        }
        self.barrier.wait();
        buf.copy_from_slice(&slots[0].read().expect("all-reduce slot"));
        for s in &slots[1..] {
            add_assign(buf, &s.read().expect("all-reduce slot"));
        }
    }

    /// Waits until every shard arrives (after the KV writes, when a replicated KV head is
    /// written by one shard and read by others).
    pub fn wait(&self) {
        if self.slots[0].len() > 1 {
            self.barrier.wait();
        }
    }

    /// A guard a shard holds while it runs: if the shard panics, dropping the guard
    /// poisons the barrier, and every shard waiting at it (or arriving later) panics too
    /// instead of waiting forever for the one that is gone. The step then fails as a
    /// whole, as a one-shard step would, and the engine's panic handling sees it.
    pub fn poison_on_panic(&self) -> PoisonOnPanic<'_> {
        PoisonOnPanic(&self.barrier)
    }
}

/// See [`AllReduce::poison_on_panic`].
pub struct PoisonOnPanic<'a>(&'a SpinBarrier);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Release);
        }
    }
}

/// A barrier that spins, then yields, instead of parking: the shards arrive within
/// microseconds of each other (equal work), 60 times per decode step of a 30-layer model,
/// and a futex wake-up per arrival (`std::sync::Barrier`) cost more than the work itself
/// (BENCHMARKS.md, tensor parallelism). Yielding after the spin lets a shard that shares a
/// core with the waiter run.
struct SpinBarrier {
    shards: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    /// Set when a shard panicked: it will never arrive.
    poisoned: AtomicBool,
}

/// Spins before a waiting shard starts yielding its core.
const SPINS: usize = 1 << 14;

impl SpinBarrier {
    fn new(shards: usize) -> Self {
        Self {
            shards,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Returns once all shards have called `wait` for this generation. The last to
    /// arrive resets the count before it opens the next generation, so a shard that
    /// leaves and comes back at once counts toward the next round. Panics once the
    /// barrier is poisoned (another shard panicked and will never arrive).
    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.shards {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0;
        while self.generation.load(Ordering::Acquire) == generation {
            if self.poisoned.load(Ordering::Acquire) {
                panic!("another tensor-parallel shard panicked during this step");
            }
            if spins < SPINS {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bitmask that sched_getaffinity fills; the size passed is its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pins the calling thread to `cpus`; false if the OS refused.
fn pin(cpus: &[usize]) -> bool {
    // SAFETY: as in `allowed_cpus`; CPU_SET only writes bits of `set`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// One thread pool per shard: the `total` compute threads divided among `shards`, each
/// pool's threads pinned to its own contiguous share of the allowed CPUs (on a
/// multi-socket machine numbered socket by socket, each shard on its own socket). With
/// fewer CPUs than shards the pools get one thread each and are not pinned (a warning
/// says so): the result is the same, only slower.
pub fn shard_pools(shards: usize, total: usize) -> Result<Vec<rayon::ThreadPool>> {
    let cpus = allowed_cpus();
    let pinned = cpus.len() >= shards;
    if !pinned {
        tracing::warn!(
            "tensor_parallel_size {shards} exceeds the {} CPUs available: shards share CPUs, unpinned",
            cpus.len()
        );
    }
    let threads = (total / shards).max(1);
    (0..shards)
        .map(|s| {
            let mine: Vec<usize> = if pinned {
                let share = cpus.len() / shards;
                cpus[s * share..(s + 1) * share].to_vec()
            } else {
                Vec::new()
            };
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(move |i| format!("corvid-tp{s}-{i}"))
                .start_handler(move |_| {
                    if !mine.is_empty() && !pin(&mine) {
                        tracing::warn!("cannot pin tensor-parallel shard {s} to CPUs {mine:?}");
                    }
                })
                .build()
                .map_err(|e| ModelError::Unsupported(format!("cannot start compute threads: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;

    fn config(heads: usize, kv: usize, ff: usize) -> ModelConfig {
        let mut c = ModelConfig::for_tests(1, None);
        (c.num_heads, c.num_kv_heads, c.intermediate_size) = (heads, kv, ff);
        c
    }

    fn heads(specs: &[ShardSpec]) -> Vec<(Range<usize>, Range<usize>, bool)> {
        specs
            .iter()
            .map(|s| (s.q_heads.clone(), s.kv_heads.clone(), s.writes_kv))
            .collect()
    }

    #[test]
    fn smollm2_splits_its_three_kv_heads_two_and_one() {
        let p = plan(&config(9, 3, 1536), 2, 32).unwrap();
        assert_eq!(heads(&p), [(0..6, 0..2, true), (6..9, 2..3, true)]);
        assert_eq!((p[0].ffn.clone(), p[1].ffn.clone()), (0..768, 768..1536));
        assert_eq!((p[0].group(), p[1].group()), (3, 3));
    }

    #[test]
    fn one_kv_head_is_replicated_and_written_by_its_first_shard() {
        let p = plan(&config(4, 1, 2048), 2, 256).unwrap();
        assert_eq!(heads(&p), [(0..2, 0..1, true), (2..4, 0..1, false)]);
        assert_eq!(p[1].group(), 2);
        let p = plan(&config(4, 1, 2048), 3, 256).unwrap();
        assert_eq!(
            heads(&p),
            [(0..2, 0..1, true), (2..3, 0..1, false), (3..4, 0..1, false)]
        );
        assert_eq!(
            p.iter().map(|s| s.ffn.len()).collect::<Vec<_>>(),
            [768, 768, 512]
        );
    }

    #[test]
    fn one_shard_holds_everything() {
        let p = plan(&config(9, 3, 1536), 1, 32).unwrap();
        assert_eq!(heads(&p), [(0..9, 0..3, true)]);
        assert_eq!(p[0].ffn, 0..1536);
    }

    #[test]
    fn impossible_splits_are_refused_with_the_reason() {
        let e = |tp, ff, step| plan(&config(9, 3, ff), tp, step).unwrap_err().to_string();
        assert!(e(0, 1536, 32).contains("at least 1"));
        assert!(
            e(4, 1536, 32).contains("cannot be divided among 4 shards"),
            "{}",
            e(4, 1536, 32)
        );
        assert!(e(2, 1536 + 32, 256).contains("256-column"));
        assert!(plan(&config(9, 3, 1536), 6, 32).is_ok());
        assert!(plan(&config(9, 3, 1536), 12, 32).is_err());
    }

    #[test]
    fn all_reduce_sums_in_shard_order_on_every_shard() {
        let reduce = AllReduce::new(3);
        let sums: Vec<Vec<f32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|shard| {
                    let reduce = &reduce;
                    s.spawn(move || {
                        let mut out = Vec::new();
                        for round in 0..50 {
                            let mut buf = vec![(shard * 100 + round) as f32, 1.0];
                            reduce.sum(shard, round, &mut buf);
                            out.extend(buf);
                        }
                        out
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let want: Vec<f32> = (0..50).flat_map(|r| [(300 + 3 * r) as f32, 3.0]).collect();
        assert!(sums.iter().all(|s| *s == want));
    }

    /// A shard that panics mid-step never reaches the next all-reduce: the others must
    /// fail too rather than spin there forever (which would hang the engine's step).
    #[test]
    fn a_panicking_shard_makes_the_others_fail_instead_of_waiting() {
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let reduce = AllReduce::new(3);
            let outcomes: Vec<bool> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..3)
                    .map(|shard| {
                        let reduce = &reduce;
                        s.spawn(move || {
                            let _guard = reduce.poison_on_panic();
                            let mut buf = vec![1.0f32];
                            reduce.sum(shard, 0, &mut buf);
                            assert!(shard != 1, "shard 1 fails in its layers");
                            reduce.sum(shard, 1, &mut buf);
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().is_err()).collect()
            });
            done_tx.send(outcomes).unwrap();
        });
        let outcomes = done
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the surviving shards returned instead of waiting forever");
        assert_eq!(outcomes, vec![true, true, true], "every shard failed");
    }
}
