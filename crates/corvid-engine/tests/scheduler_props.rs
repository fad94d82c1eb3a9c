//! Property/stress tests of the block manager and scheduler with a fast fake model:
//! random arrivals, aborts, finishes and preemptions never leak or double-free a block,
//! usage returns to zero when idle, and every request finishes (no starvation).

mod common;

use common::*;
use corvid_engine::kv::KvManager;
use corvid_engine::testing::{tiny_tokenizer, FakeLm};
use corvid_engine::{FinishReason, PromptInput, SamplingParams};
use proptest::prelude::*;
use std::sync::Arc;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn engine_never_leaks_blocks(
        reqs in prop::collection::vec((1usize..120, 1usize..40, any::<bool>(), 0u8..4), 1..40),
        blocks in 12usize..80,
        prefix in any::<bool>(),
    ) {
        let fake = FakeLm::new(&tiny_tokenizer("llama"));
        let rec = Arc::new(Recorder::default());
        let mut args = args_with_blocks(&fake, blocks, 4);
        args.enable_prefix_caching = prefix;
        args.max_num_seqs = 8;
        args.max_num_batched_tokens = 64;
        let engine = start_fake(args, rec.clone());
        let mut streams = Vec::new();
        for (i, &(plen, max_tokens, abort, shared)) in reqs.iter().enumerate() {
            // Some prompts share prefixes so the prefix cache gets exercised.
            // Ids stay inside the tiny tokenizer's vocabulary (320).
            let prompt: Vec<u32> = (0..plen).map(|j| if (shared as usize) < 2 { 100 + j as u32 } else { 100 + ((i * 7 + j) % 200) as u32 }).collect();
            let p = SamplingParams { max_tokens: Some(max_tokens), ..SamplingParams::greedy(max_tokens) };
            match engine.add_request(format!("r{i}"), PromptInput::Tokens(prompt), p) {
                Ok(s) => streams.push((s, abort)),
                Err(corvid_engine::EngineError::PromptTooLong { .. }) => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        let mut finished = 0;
        for (mut s, abort) in streams {
            if abort {
                drop(s);
                continue;
            }
            let mut last = None;
            while let Some(o) = s.next_blocking() {
                if o.finish_reason.is_some() { last = o.finish_reason; }
            }
            prop_assert!(matches!(last, Some(FinishReason::Length)));
            finished += 1;
        }
        prop_assert!(finished <= reqs.len());
        wait_idle(&engine);
        let snap = engine.snapshot();
        prop_assert_eq!(snap.kv_blocks_used, 0);
        prop_assert_eq!(snap.running + snap.waiting, 0);
    }

    /// With one full-attention group, and with a full group and two window groups (blocks
    /// released as sequences advance, the null block standing in for them).
    #[test]
    fn manager_refcounts_balance(
        ops in prop::collection::vec((0u64..6, 1usize..30, any::<bool>()), 1..200),
        windowed in any::<bool>(),
    ) {
        let mut m = if windowed {
            KvManager::with_windows(16, 4, vec![None, Some(6), Some(6)], true)
        } else {
            KvManager::new(16, 4, true)
        };
        let null = if windowed { Some(0u32) } else { None };
        let mut live = std::collections::HashMap::<u64, Vec<u32>>::new();
        for (seq, n, free) in ops {
            if free {
                m.free(seq);
                live.remove(&seq);
                continue;
            }
            // A live sequence grows from its computed tokens; a new one reuses a prefix.
            let (tokens, computed): (Vec<u32>, usize) = match live.get(&seq) {
                Some(t) => ((0..(t.len() + n) as u32).collect(), t.len()),
                None => {
                    let t: Vec<u32> = (0..n as u32).collect();
                    let c = m.reuse_prefix(seq, &t);
                    (t, c)
                }
            };
            if m.allocate_slots(seq, computed, tokens.len()) {
                m.cache_full_blocks(seq, &tokens);
                live.insert(seq, tokens);
            } else {
                m.free(seq);
                live.remove(&seq);
            }
            // Every block's count equals the number of live tables holding it.
            let mut counts = std::collections::HashMap::<u32, u32>::new();
            for s in live.keys() {
                for &b in m.block_tables(*s).iter().flatten() {
                    if Some(b) != null {
                        *counts.entry(b).or_default() += 1;
                    }
                }
                // A window group keeps at most its window before the last step's tokens.
                if windowed {
                    let held = m.blocks_held(*s);
                    prop_assert!(held[1] <= held[0] && held[1] == held[2]);
                }
            }
            for b in (0..16u32).filter(|&b| Some(b) != null) {
                prop_assert_eq!(m.ref_count(b), counts.get(&b).copied().unwrap_or(0));
            }
        }
        for s in 0..6 {
            m.free(s);
        }
        prop_assert_eq!(m.num_used(), 0);
    }
}
