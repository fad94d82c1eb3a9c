//! Test support (feature `test-util`): engines that need no installed model, so the
//! engine's, the server's and the metrics' tests run anywhere. [`FakeLm`] is a model
//! whose logits are a fixed function of (last token, position); [`tiny_model`] is a
//! committed random-weight GGUF (`fixtures/tiny/`) with a real tokenizer and chat
//! template.

use crate::{EngineArgs, EngineError, EngineHandle, StatsSink};
use corvid_kernels::ops::RopeStyle;
use corvid_model::config::{Arch, ModelConfig};
use corvid_model::tokenizer::Tokenizer;
use corvid_model::{CausalLm, KvCache, Logits, SeqInput};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A committed tiny GGUF model: `llama`, `qwen2` (has a chat template) or `qwen3`.
/// Its context is 512 tokens and its vocabulary 320.
pub fn tiny_model(arch: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny")
        .join(format!("{arch}.gguf"))
}

/// The tokenizer of [`tiny_model`]`(arch)`.
pub fn tiny_tokenizer(arch: &str) -> Arc<Tokenizer> {
    Arc::new(corvid_model::load_tokenizer(&tiny_model(arch)).expect("committed tiny model"))
}

/// An engine over [`tiny_model`]`(arch)` (the real load, tokenizer and step code) whose
/// every step takes at least `step_time`: a tiny model finishes a request in
/// microseconds, too fast for tests that watch queues, latencies or a drain.
pub fn start_tiny(
    arch: &str,
    step_time: Duration,
    args: EngineArgs,
    sink: Option<Arc<dyn StatsSink>>,
) -> Result<EngineHandle, EngineError> {
    start_paced(arch, step_time, None, args, sink)
}

/// The fault hook: [`start_tiny`] whose model panics inside its forward pass on step
/// number `panic_at_step` (counting from 1), as a kernel bug or a failed assertion
/// would. Compiled only with the `test-util` feature, which release builds leave off.
pub fn start_tiny_panicking(
    arch: &str,
    step_time: Duration,
    panic_at_step: usize,
    args: EngineArgs,
    sink: Option<Arc<dyn StatsSink>>,
) -> Result<EngineHandle, EngineError> {
    start_paced(arch, step_time, Some(panic_at_step), args, sink)
}

fn start_paced(
    arch: &str,
    step_time: Duration,
    panic_at_step: Option<usize>,
    args: EngineArgs,
    sink: Option<Arc<dyn StatsSink>>,
) -> Result<EngineHandle, EngineError> {
    let path = tiny_model(arch);
    let model = corvid_model::load_model(&path, &Default::default())?;
    let paced = Paced {
        inner: Arc::new(model),
        step_time,
        panic_at_step,
        steps: AtomicUsize::new(0),
    };
    let args = EngineArgs {
        model: path.clone(),
        ..args
    };
    EngineHandle::start_with(Arc::new(paced), tiny_tokenizer(arch), args, sink)
}

/// A model whose forward pass takes at least `step_time` (see [`start_tiny`]) and, if
/// `panic_at_step` is set, panics on that step (see [`start_tiny_panicking`]).
struct Paced {
    inner: Arc<dyn CausalLm>,
    step_time: Duration,
    panic_at_step: Option<usize>,
    steps: AtomicUsize,
}

impl CausalLm for Paced {
    fn config(&self) -> &ModelConfig {
        self.inner.config()
    }

    fn forward(
        &self,
        batch: &[SeqInput<'_>],
        kv: &mut KvCache,
        logits: &mut Logits,
    ) -> corvid_model::Result<()> {
        let start = Instant::now();
        let step = self.steps.fetch_add(1, Ordering::Relaxed) + 1;
        if self.panic_at_step == Some(step) {
            panic!("injected fault: model step {step} panics");
        }
        let out = self.inner.forward(batch, kv, logits);
        std::thread::sleep(self.step_time.saturating_sub(start.elapsed()));
        out
    }
}

/// A model whose next-token logits depend only on (last token, position): fast and
/// deterministic, for scheduler and block-manager tests. It never produces the
/// tokenizer's EOS.
pub struct FakeLm {
    config: ModelConfig,
    /// Token ids it may produce (every id but EOS).
    outputs: Vec<u32>,
}

impl FakeLm {
    /// A fake with `tokenizer`'s vocabulary.
    pub fn new(tokenizer: &Tokenizer) -> Self {
        let vocab_size = tokenizer.vocab_size();
        let eos = tokenizer.eos_token_ids();
        Self {
            config: ModelConfig {
                arch: Arch::Llama,
                hidden_size: 8,
                intermediate_size: 8,
                num_layers: 1,
                num_heads: 1,
                num_kv_heads: 1,
                head_dim: 2,
                vocab_size,
                max_position_embeddings: 4096,
                rope_theta: 10000.0,
                rms_norm_eps: 1e-5,
                rope_dims: 2,
                rope_style: RopeStyle::Half,
                rope_scaling: None,
                sliding_window: None,
                final_logit_softcap: None,
            },
            outputs: (0..vocab_size as u32)
                .filter(|t| !eos.contains(t))
                .collect(),
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
        logits: &mut Logits,
    ) -> corvid_model::Result<()> {
        let bs = kv.layout.block_size;
        let mut picks = Vec::new();
        for s in batch {
            for table in s.block_tables {
                assert!(
                    table.len() * bs >= s.start_pos + s.tokens.len(),
                    "block table too short"
                );
                for &b in table {
                    assert!((b as usize) < kv.num_blocks);
                }
            }
            if s.want_logits {
                let last = *s.tokens.last().expect("a scheduled chunk has tokens") as usize;
                let pos = s.start_pos + s.tokens.len();
                picks.push(self.outputs[(last * 31 + pos * 7) % self.outputs.len()]);
            }
        }
        logits.reset(picks.len()).fill(0.0);
        for (row, pick) in logits.rows_mut().zip(picks) {
            row[pick as usize] = 10.0;
        }
        Ok(())
    }
}
