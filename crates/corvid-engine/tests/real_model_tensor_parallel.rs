//! Real-model tier (skips, visibly, without the installed model; fails under CI=true).
//! The Rust offline API (`LLM`) with `tensor_parallel_size = 2` on the default model
//! (3 KV heads split 2 + 1): the KV pool is sized and counted as with one shard, prompts
//! generated together with prefix caching on give exactly the tokens each gives alone
//! (the all-reduce sums in a fixed order, so two shards stay batch invariant), and the
//! greedy tokens are one shard's up to the first near-tie. (The logit-level comparison
//! on the golden prompts is corvid-model's `tests/tensor_parallel.rs`.)

use corvid_engine::{EngineArgs, KvCacheMemory, SamplingParams, LLM};
use corvid_model::default_model::{default_model_path, installed_or_skip};

/// Top-1/top-2 log-probability gap under which two shards may pick another token than
/// one shard: two draws of the 8-bit activation noise (corvid-model's
/// `tests/tensor_parallel.rs`, `QUANTIZED_BOUNDS`).
const NEAR_TIE: f32 = 2.0;

fn llm(tensor_parallel_size: usize, no_batching: bool) -> LLM {
    LLM::new(EngineArgs {
        tensor_parallel_size,
        no_batching,
        kv_cache_memory: KvCacheMemory::Bytes(64 << 20),
        max_num_batched_tokens: 256,
        ..EngineArgs::default()
    })
    .unwrap()
}

/// Prompts sharing a two-block prefix (so the prefix cache serves the later ones).
fn prompts() -> Vec<String> {
    let context = "Here is some context that makes the prompt longer. ".repeat(4);
    [
        "The capital of France is",
        "def fibonacci(n):",
        "List three colors:",
        "用一句话介绍你自己。",
    ]
    .iter()
    .map(|p| format!("{context}{p}"))
    .collect()
}

#[test]
fn two_shards_through_the_llm_api() {
    if installed_or_skip("two_shards_through_the_llm_api", default_model_path()).is_none() {
        return;
    }
    let prompts = prompts();
    let greedy = SamplingParams {
        logprobs: Some(2),
        ignore_eos: true,
        ..SamplingParams::greedy(12)
    };
    let one = llm(1, false);
    let two = llm(2, false);
    assert_eq!(
        (
            one.engine().config().num_blocks,
            one.engine().config().kv_bytes
        ),
        (
            two.engine().config().num_blocks,
            two.engine().config().kv_bytes
        ),
        "the KV pool must not depend on the shard count"
    );
    let reference = one.generate(&prompts, &greedy).unwrap();
    let together = two.generate(&prompts, &greedy).unwrap();
    let alone_llm = llm(2, true);
    for (i, (r, t)) in reference.iter().zip(&together).enumerate() {
        let alone = alone_llm
            .generate(std::slice::from_ref(&prompts[i]), &greedy)
            .unwrap()
            .remove(0);
        let (r, t) = (&r.outputs[0], &t.outputs[0]);
        assert_eq!(
            t.token_ids, alone.outputs[0].token_ids,
            "prompt {i}: two shards batched (prefix cached) and alone differ"
        );
        // One shard's tokens, up to its first near-tie.
        let checked = r
            .logprobs
            .iter()
            .position(|l| l.top.len() < 2 || l.top[0].1 - l.top[1].1 < NEAR_TIE)
            .unwrap_or(r.token_ids.len());
        assert_eq!(
            t.token_ids[..checked],
            r.token_ids[..checked],
            "prompt {i}: two shards part from one before any near-tie"
        );
    }
    let after = two.engine().snapshot_now().unwrap();
    assert_eq!(after.kv_blocks_used, 0, "KV blocks leaked");
}
