//! Real-model tier (skips, visibly, without the installed model; fails under CI=true).
//! Batch invariance on the real default model: prompts generated together give exactly
//! the tokens each gives alone — with a roomy KV pool, with one so small that
//! preemptions happen, and with prefix caching on and off — including contexts long
//! enough that attention splits them across threads.

mod common;

use common::*;
use corvid_engine::{EngineArgs, KvCacheDtype, KvCacheMemory, SamplingParams, LLM};
use corvid_model::{KvCache, KvDtype};
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn prompts() -> Vec<String> {
    let base = [
        "The capital of France is",
        "def fibonacci(n):",
        "Once upon a time, in a small village by the sea,",
        "List three colors:",
        "用一句话介绍你自己。",
        "The quick brown fox",
        "In mathematics, a prime number is",
        "Q: What is 12 times 12?\nA:",
    ];
    (0..32)
        .map(|i| {
            let b = base[i % base.len()];
            // Mixed lengths: repeat a context sentence i/4 times.
            format!(
                "{}{}",
                "Here is some context that makes the prompt longer. ".repeat(i / 4),
                b
            )
        })
        .collect()
}

fn run(llm: &LLM, prompts: &[String], max_tokens: usize) -> Vec<Vec<u32>> {
    let p = SamplingParams {
        max_tokens: Some(max_tokens),
        ignore_eos: true,
        ..SamplingParams::greedy(max_tokens)
    };
    llm.generate(prompts, &p)
        .unwrap()
        .into_iter()
        .map(|o| o.outputs[0].token_ids.clone())
        .collect()
}

#[test]
fn batched_greedy_equals_alone_with_preemption_and_prefix_caching() {
    let Some(model) = model("batched_greedy_equals_alone_with_preemption_and_prefix_caching")
    else {
        return;
    };
    let prompts = prompts();
    let max_tokens = 24;

    // Alone: one at a time (naive mode).
    let mut args = args_with_blocks(model.as_ref(), 4096, 16);
    args.no_batching = true;
    let alone_llm = LLM::from_engine(start(model.clone(), args, Arc::default()));
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| run(&alone_llm, std::slice::from_ref(p), max_tokens).remove(0))
        .collect();

    for (prefix_caching, blocks) in [(true, 4096), (false, 4096), (true, 40), (false, 40)] {
        let rec = Arc::new(Recorder::default());
        let mut args = args_with_blocks(model.as_ref(), blocks, 16);
        args.enable_prefix_caching = prefix_caching;
        args.max_num_batched_tokens = 512;
        let engine = start(model.clone(), args, rec.clone());
        let llm = LLM::from_engine(engine.clone());
        let together = run(&llm, &prompts, max_tokens);
        for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
            assert_eq!(
                a, b,
                "prompt {i} differs (prefix caching {prefix_caching}, {blocks} blocks)"
            );
        }
        wait_idle(&engine);
        assert_eq!(engine.snapshot().kv_blocks_used, 0, "KV blocks leaked");
        let preempted = rec.preemptions.load(Ordering::Relaxed);
        if blocks == 40 {
            assert!(preempted > 0, "a 40-block pool must force preemptions");
        } else {
            assert_eq!(preempted, 0);
        }
        assert_eq!(rec.finished.load(Ordering::Relaxed), prompts.len());
    }
}

/// Contexts past `corvid_kernels::attention::PARTITION` (512) tokens are attended in
/// pieces on different threads and merged; the pieces follow the context length only, so a
/// long prompt still gives the same tokens alone and batched with short ones, and the
/// same tokens again when its prefix comes from the cache.
#[test]
fn long_contexts_split_across_threads_stay_batch_invariant() {
    let Some(model) = model("long_contexts_split_across_threads_stay_batch_invariant") else {
        return;
    };
    let long = format!(
        "{}Summarize the text above in one sentence.",
        "The river runs past the old mill and the children watch the boats. ".repeat(75)
    );
    let mut prompts = prompts()[..3].to_vec();
    prompts.insert(1, long.clone());
    let max_tokens = 16;
    let mut args = args_with_blocks(model.as_ref(), 1024, 16);
    args.no_batching = true;
    let alone_llm = LLM::from_engine(start(model.clone(), args, Arc::default()));
    let alone = run(&alone_llm, std::slice::from_ref(&long), max_tokens).remove(0);
    let engine = start(
        model.clone(),
        args_with_blocks(model.as_ref(), 1024, 16),
        Arc::default(),
    );
    let llm = LLM::from_engine(engine.clone());
    let prompt_len = llm
        .generate(std::slice::from_ref(&long), &SamplingParams::greedy(1))
        .unwrap()[0]
        .prompt_token_ids
        .len();
    assert!(
        prompt_len > 2 * 512,
        "the prompt must span three pieces: {prompt_len} tokens"
    );
    let together = run(&llm, &prompts, max_tokens);
    assert_eq!(
        together[1], alone,
        "batched with short prompts (prefix cached)"
    );
    wait_idle(&engine);
    assert_eq!(engine.snapshot().kv_blocks_used, 0, "KV blocks leaked");
}

#[test]
fn prefix_cache_reuses_a_shared_system_prompt() {
    let Some(model) = model("prefix_cache_reuses_a_shared_system_prompt") else {
        return;
    };
    let rec = Arc::new(Recorder::default());
    let engine = start(
        model.clone(),
        args_with_blocks(model.as_ref(), 1024, 16),
        rec.clone(),
    );
    let llm = LLM::from_engine(engine.clone());
    let system = "You are a careful assistant. ".repeat(20);
    let p = SamplingParams::greedy(4);
    let first = llm.generate(&[format!("{system}Say hi.")], &p).unwrap();
    let second = llm.generate(&[format!("{system}Say bye.")], &p).unwrap();
    assert!(
        !first[0].outputs[0].token_ids.is_empty() && !second[0].outputs[0].token_ids.is_empty()
    );
    let cached = rec.cached_tokens.load(Ordering::Relaxed);
    assert!(
        cached >= 16 * ((first[0].prompt_token_ids.len() - 8) / 16),
        "only {cached} tokens reused"
    );
}

#[test]
fn q8_kv_cache_generates_batch_invariantly_frees_every_block_and_doubles_the_pool() {
    let Some(model) =
        model("q8_kv_cache_generates_batch_invariantly_frees_every_block_and_doubles_the_pool")
    else {
        return;
    };
    let prompts = &prompts()[..12];
    let max_tokens = 16;
    let f16_args = args_with_blocks(model.as_ref(), 60, 16);
    let q8_args = |blocks| EngineArgs {
        kv_cache_dtype: KvCacheDtype::Q8_0,
        kv_cache_memory: KvCacheMemory::Bytes(
            (blocks * KvCache::bytes_per_block(model.config(), 16, KvDtype::Q8_0)) as u64,
        ),
        ..f16_args.clone()
    };
    let alone_llm = LLM::from_engine(start(
        model.clone(),
        EngineArgs {
            no_batching: true,
            ..q8_args(4096)
        },
        Arc::default(),
    ));
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| run(&alone_llm, std::slice::from_ref(p), max_tokens).remove(0))
        .collect();
    // 16 blocks: preemptions happen.
    let rec = Arc::new(Recorder::default());
    let engine = start(model.clone(), q8_args(16), rec.clone());
    let together = run(&LLM::from_engine(engine.clone()), prompts, max_tokens);
    assert_eq!(alone, together, "q8_0: batched differs from alone");
    wait_idle(&engine);
    assert_eq!(engine.snapshot().kv_blocks_used, 0, "KV blocks leaked");
    assert!(rec.preemptions.load(Ordering::Relaxed) > 0);
    assert_eq!(rec.finished.load(Ordering::Relaxed), prompts.len());

    // The f16 budget of 60 blocks holds about twice as many q8_0 blocks.
    let f16_blocks = start(model.clone(), f16_args.clone(), Arc::default())
        .snapshot()
        .kv_blocks_total;
    let q8_blocks = start(
        model.clone(),
        EngineArgs {
            kv_cache_dtype: KvCacheDtype::Q8_0,
            ..f16_args
        },
        Arc::default(),
    )
    .snapshot()
    .kv_blocks_total;
    assert_eq!(f16_blocks, 60);
    assert!((110..=120).contains(&q8_blocks), "{q8_blocks} q8_0 blocks");
}
