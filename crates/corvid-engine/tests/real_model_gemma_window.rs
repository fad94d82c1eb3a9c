//! Real-model tier (skips, visibly, without the installed Gemma 3; fails under CI=true).
//! Gemma 3's sliding-window layers keep only their window's KV blocks: a generation well
//! past the 512-token window gives exactly the greedy tokens of a forward pass that keeps
//! every block, the window groups never hold more than `ceil(window / block) + 1` blocks,
//! the released blocks show in the usage the engine reports step by step and are all back
//! in the pool at the end, and a repeated prompt reuses its prefix (full-attention blocks
//! from the start, window blocks for its last window only) and still gives the same tokens.

mod common;

use common::Recorder;
use corvid_engine::{
    EngineArgs, EngineHandle, IterationStats, KvCacheMemory, RequestStats, SamplingParams,
    StatsSink, LLM,
};
use corvid_kernels::ops::argmax;
use corvid_model::default_model::{gemma_model_path, installed_or_skip};
use corvid_model::{CausalLm, KvCache, KvDtype, KvGroups, SeqInput};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

const BLOCK: usize = 16;

/// The KV usage (blocks used, blocks in the pool) after every step, plus what
/// [`Recorder`] counts.
#[derive(Default)]
struct Usage {
    steps: Mutex<Vec<(usize, usize)>>,
    rec: Recorder,
}

impl StatsSink for Usage {
    fn on_step(&self, s: &IterationStats) {
        self.steps
            .lock()
            .unwrap()
            .push((s.state.kv_blocks_used, s.state.kv_blocks_total));
        self.rec.on_step(s);
    }
    fn on_request_finished(&self, r: &RequestStats) {
        self.rec.on_request_finished(r);
    }
}

/// Greedy tokens from a plain forward loop over a cache that keeps every block of every
/// KV group (nothing released): the reference.
fn keep_everything(model: &dyn CausalLm, prompt: &[u32], steps: usize) -> Vec<u32> {
    let groups = KvGroups::of(model.config()).len() as u32;
    let per_group = (prompt.len() + steps).div_ceil(BLOCK) as u32;
    let mut kv = KvCache::new(
        model.config(),
        BLOCK,
        (groups * per_group) as usize,
        KvDtype::F16,
    );
    let tables: Vec<Vec<u32>> = (0..groups)
        .map(|g| (g * per_group..(g + 1) * per_group).collect())
        .collect();
    let (mut out, mut input, mut start) = (Vec::new(), prompt.to_vec(), 0);
    while out.len() < steps {
        let seq = SeqInput {
            tokens: &input,
            start_pos: start,
            block_tables: &tables,
            want_logits: true,
        };
        let token = argmax(&model.forward_once(&[seq], &mut kv).unwrap()[0]);
        out.push(token);
        start += input.len();
        input = vec![token];
    }
    out
}

#[test]
fn window_blocks_are_released_and_tokens_unchanged() {
    let Some(path) = installed_or_skip(
        "window_blocks_are_released_and_tokens_unchanged",
        gemma_model_path(),
    ) else {
        return;
    };
    let model: Arc<dyn CausalLm> =
        Arc::new(corvid_model::load_model(&path, &Default::default()).unwrap());
    let tokenizer = Arc::new(corvid_model::load_tokenizer(&path).unwrap());
    let window = model
        .config()
        .sliding_window
        .expect("Gemma 3 has a window")
        .size;
    let windows = KvGroups::of(model.config()).windows;
    let full = windows.iter().filter(|w| w.is_none()).count();
    let local = windows.len() - full;
    assert!(full > 0 && local > 0, "{windows:?}");

    let text = "The river runs past the old mill and the children watch the boats. ".repeat(45);
    let prompt = tokenizer.encode(&text, true, false).unwrap();
    let p = prompt.len();
    assert!(
        p > window + 2 * BLOCK,
        "the prompt ({p} tokens) must pass the window"
    );
    let max_tokens = 40;
    let reference = keep_everything(model.as_ref(), &prompt, max_tokens);

    let sink = Arc::new(Usage::default());
    let per_block = KvCache::bytes_per_block(model.config(), BLOCK, KvDtype::F16);
    let args = EngineArgs {
        model: path.clone(),
        kv_cache_memory: KvCacheMemory::Bytes((4096 * per_block) as u64),
        block_size: BLOCK,
        ..EngineArgs::default()
    };
    let engine = EngineHandle::start_with(model.clone(), tokenizer, args, Some(sink.clone()))
        .expect("engine starts");
    let llm = LLM::from_engine(engine.clone());
    let params = SamplingParams {
        ignore_eos: true,
        ..SamplingParams::greedy(max_tokens)
    };
    let got = llm
        .generate_tokens(std::slice::from_ref(&prompt), &params)
        .unwrap()[0][0]
        .token_ids
        .clone();
    assert_eq!(got, reference, "releasing window blocks changed the tokens");

    // Step 0 prefills the whole prompt (one chunk: every block of every group); step j
    // then computes position p + j - 1 with p + j token slots, its window groups holding
    // only the blocks from the first one position p + j - window falls in.
    // (The engine answers a snapshot after its current step, sink calls included.)
    assert_eq!(engine.snapshot_now().unwrap().kv_blocks_used, 0);
    let steps = sink.steps.lock().unwrap().clone();
    assert_eq!(steps.len(), max_tokens);
    let total = engine.config().num_blocks - 1;
    let keep_all = |t: usize| windows.len() * t.div_ceil(BLOCK);
    assert_eq!(steps[0], (keep_all(p), total));
    for (j, &(used, reported_total)) in steps.iter().enumerate().skip(1) {
        assert_eq!(reported_total, total, "the null block is not capacity");
        if j == max_tokens - 1 {
            assert_eq!(
                used, 0,
                "the finished sequence's blocks are back in the pool"
            );
            continue;
        }
        let t = p + j;
        let in_window = t.div_ceil(BLOCK) - (t - window) / BLOCK;
        assert!(in_window <= window.div_ceil(BLOCK) + 1);
        assert_eq!(
            used,
            full * t.div_ceil(BLOCK) + local * in_window,
            "step {j}"
        );
        assert!(used < keep_all(t));
    }

    // The same prompt again: a prefix-cache hit, served with the null block standing in
    // for the window groups' blocks before the last window, and the same tokens.
    let again = llm
        .generate_tokens(std::slice::from_ref(&prompt), &params)
        .unwrap()[0][0]
        .token_ids
        .clone();
    assert_eq!(again, reference, "a cached prefix changed the tokens");
    let cached = sink.rec.cached_tokens.load(Ordering::Relaxed);
    assert_eq!(
        cached,
        (p - 1) / BLOCK * BLOCK,
        "the whole prefix is reused"
    );
    assert_eq!(engine.snapshot_now().unwrap().kv_blocks_used, 0);
}
