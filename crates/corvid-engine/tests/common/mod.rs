//! Shared helpers for the engine's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use corvid_engine::{
    EngineArgs, EngineHandle, IterationStats, KvCacheMemory, RequestStats, StatsSink,
};
use corvid_kernels::ops::RopeStyle;
use corvid_model::config::{Arch, ModelConfig};
use corvid_model::default_model::default_model_path;
use corvid_model::tokenizer::Tokenizer;
use corvid_model::{CausalLm, KvCache, KvDtype, SeqInput};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The default model's tokenizer, loaded once.
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

/// The default model, loaded once.
pub fn model() -> Arc<dyn CausalLm> {
    static M: OnceLock<Arc<corvid_model::arch::Llama>> = OnceLock::new();
    M.get_or_init(|| {
        Arc::new(
            corvid_model::load_model(&default_model_path(), &Default::default())
                .expect("default model installed"),
        )
    })
    .clone()
}

/// A model whose next-token logits depend only on (last token, position): fast and
/// deterministic, for scheduler and block-manager tests. It never produces EOS.
pub struct FakeLm {
    config: ModelConfig,
}

impl Default for FakeLm {
    /// A fake with the default tokenizer's vocabulary.
    fn default() -> Self {
        Self {
            config: ModelConfig {
                arch: Arch::Llama,
                hidden_size: 8,
                intermediate_size: 8,
                num_layers: 1,
                num_heads: 1,
                num_kv_heads: 1,
                head_dim: 2,
                vocab_size: tokenizer().vocab_size(),
                max_position_embeddings: 4096,
                rope_theta: 10000.0,
                rms_norm_eps: 1e-5,
                rope_style: RopeStyle::Half,
                rope_scaling: None,
            },
        }
    }
}

impl CausalLm for FakeLm {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn forward(
        &self,
        batch: &[SeqInput<'_>],
        kv: &mut KvCache,
    ) -> corvid_model::Result<Vec<Vec<f32>>> {
        let bs = kv.layout.block_size;
        let mut out = Vec::new();
        for s in batch {
            assert!(
                s.block_table.len() * bs >= s.start_pos + s.tokens.len(),
                "block table too short"
            );
            for &b in s.block_table {
                assert!((b as usize) < kv.num_blocks);
            }
            if s.want_logits {
                let last = *s.tokens.last().unwrap() as usize;
                let pos = s.start_pos + s.tokens.len();
                let mut l = vec![0.0f32; self.config.vocab_size];
                // Avoid the low ids where special tokens (EOS) live.
                l[1000 + (last * 31 + pos * 7) % 20000] = 10.0;
                out.push(l);
            }
        }
        Ok(out)
    }
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

/// Starts an engine over `model`.
pub fn start(model: Arc<dyn CausalLm>, args: EngineArgs, rec: Arc<Recorder>) -> EngineHandle {
    EngineHandle::start_with(model, tokenizer(), args, Some(rec)).unwrap()
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
