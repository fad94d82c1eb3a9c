//! Shared helpers for the engine's integration tests: the hermetic tier (a fake model
//! with the committed tiny tokenizer) and the real-model tier (`real_model_*.rs`).
#![allow(dead_code)] // each test binary uses a different subset

use corvid_engine::testing::{tiny_tokenizer, FakeLm};
use corvid_engine::{
    EngineArgs, EngineHandle, IterationStats, KvCacheMemory, RequestStats, StatsSink,
};
use corvid_model::default_model::{default_model_path, installed_or_skip};
use corvid_model::tokenizer::Tokenizer;
use corvid_model::{CausalLm, KvCache, KvDtype};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The default model's tokenizer, loaded once (real-model tier only).
pub fn tokenizer() -> Arc<Tokenizer> {
    static T: OnceLock<Arc<Tokenizer>> = OnceLock::new();
    T.get_or_init(|| {
        Arc::new(
            corvid_model::load_tokenizer(&default_model_path())
                .expect("default model installed (scripts/setup.sh)"),
        )
    })
    .clone()
}

/// The default model, loaded once; `None` (the real-model test `test` skips, visibly)
/// when it is not installed.
pub fn model(test: &str) -> Option<Arc<dyn CausalLm>> {
    static M: OnceLock<Arc<corvid_model::arch::Llama>> = OnceLock::new();
    let path = installed_or_skip(test, default_model_path())?;
    let m = M.get_or_init(|| {
        Arc::new(corvid_model::load_model(&path, &Default::default()).expect("default model loads"))
    });
    Some(m.clone())
}

/// Counts what the engine reports.
#[derive(Default)]
pub struct Recorder {
    /// Preemptions over all steps.
    pub preemptions: AtomicUsize,
    /// Requests finished.
    pub finished: AtomicUsize,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: AtomicUsize,
}

impl StatsSink for Recorder {
    fn on_step(&self, s: &IterationStats) {
        self.preemptions
            .fetch_add(s.num_preemptions, Ordering::Relaxed);
        self.cached_tokens
            .fetch_add(s.num_cached_tokens, Ordering::Relaxed);
    }
    fn on_request_finished(&self, _: &RequestStats) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// Engine arguments with a KV budget of `blocks` blocks of the given model.
pub fn args_with_blocks(model: &dyn CausalLm, blocks: usize, block_size: usize) -> EngineArgs {
    let per_block = KvCache::bytes_per_block(model.config(), block_size, KvDtype::F16);
    EngineArgs {
        kv_cache_memory: KvCacheMemory::Bytes((blocks * per_block) as u64),
        block_size,
        ..EngineArgs::default()
    }
}

/// Starts an engine over the default `model` (real-model tier).
pub fn start(model: Arc<dyn CausalLm>, args: EngineArgs, rec: Arc<Recorder>) -> EngineHandle {
    EngineHandle::start_with(model, tokenizer(), args, Some(rec)).unwrap()
}

/// Starts an engine over a [`FakeLm`] with the tiny llama's tokenizer (hermetic tier).
pub fn start_fake(args: EngineArgs, rec: Arc<Recorder>) -> EngineHandle {
    let tok = tiny_tokenizer("llama");
    let fake = Arc::new(FakeLm::new(&tok));
    EngineHandle::start_with(fake, tok, args, Some(rec)).unwrap()
}

/// Waits until the engine has no unfinished requests (bounded).
pub fn wait_idle(e: &EngineHandle) {
    for _ in 0..2000 {
        if e.num_unfinished() == 0 && e.snapshot().running == 0 && e.snapshot().waiting == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("engine did not become idle");
}
