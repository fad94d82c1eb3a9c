//! Hermetic tier: the whole engine (GGUF load, tokenizer, scheduler, model step,
//! sampler, streams) over the committed tiny llama, no installed model needed. Batched
//! greedy output equals each prompt alone, through preemptions, with every block freed.

mod common;

use common::*;
use corvid_engine::testing::{start_tiny, tiny_model};
use corvid_engine::{EngineArgs, FinishReason, KvCacheMemory, SamplingParams, LLM};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

fn prompts() -> Vec<String> {
    (0..12)
        .map(|i| format!("{}prompt number {i}:", "some context. ".repeat(i % 5)))
        .collect()
}

fn greedy(llm: &LLM, prompts: &[String], max_tokens: usize) -> Vec<Vec<u32>> {
    let p = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(max_tokens)
    };
    llm.generate(prompts, &p)
        .unwrap()
        .into_iter()
        .map(|o| {
            assert_eq!(o.outputs[0].finish_reason, Some(FinishReason::Length));
            o.outputs[0].token_ids.clone()
        })
        .collect()
}

/// Engine arguments over the tiny model with a KV pool of `blocks` blocks of 16 tokens.
fn args(blocks: usize) -> EngineArgs {
    let model = corvid_model::load_model(&tiny_model("llama"), &Default::default()).unwrap();
    EngineArgs {
        max_model_len: Some(256),
        max_num_batched_tokens: 256,
        ..args_with_blocks(&model, blocks, 16)
    }
}

#[test]
fn batched_greedy_equals_alone_through_preemption() {
    let prompts = prompts();
    let max_tokens = 12;
    let alone_llm = LLM::from_engine(
        start_tiny(
            "llama",
            Duration::ZERO,
            EngineArgs {
                no_batching: true,
                kv_cache_memory: KvCacheMemory::Bytes(64 << 20),
                ..EngineArgs::default()
            },
            None,
        )
        .unwrap(),
    );
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| greedy(&alone_llm, std::slice::from_ref(p), max_tokens).remove(0))
        .collect();
    for blocks in [512, 12] {
        let rec = Arc::new(Recorder::default());
        let engine = start_tiny("llama", Duration::ZERO, args(blocks), Some(rec.clone())).unwrap();
        let together = greedy(&LLM::from_engine(engine.clone()), &prompts, max_tokens);
        assert_eq!(alone, together, "{blocks} blocks");
        wait_idle(&engine);
        assert_eq!(engine.snapshot().kv_blocks_used, 0, "KV blocks leaked");
        assert_eq!(rec.finished.load(Ordering::Relaxed), prompts.len());
        if blocks == 12 {
            assert!(rec.preemptions.load(Ordering::Relaxed) > 0);
        }
    }
}
