//! The engine's public face: [`EngineHandle`] starts the engine thread and turns
//! requests into sequences; [`RequestStream`] delivers a request's outputs and aborts
//! the request when dropped (a client that disconnects frees its KV blocks).

use crate::core::{CoreConfig, EngineCore, Shared};
use crate::error::{EngineError, InvalidParam};
use crate::output::{RequestOutput, TextTracker};
use crate::params::{EngineArgs, SamplingParams};
use crate::scheduler::SchedulerConfig;
use crate::sequence::Sequence;
use crate::stats::{EngineSnapshot, StatsSink};
use corvid_model::tokenizer::Tokenizer;
use corvid_model::{CausalLm, KvCache, LoadOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// A prompt as text (tokenized by the engine) or as token ids.
#[derive(Clone, Debug)]
pub enum PromptInput {
    /// Text.
    Text(String),
    /// Token ids.
    Tokens(Vec<u32>),
}

enum Command {
    Add(Vec<Sequence>),
    Abort(String),
    Shutdown,
}

struct Inner {
    tx: Mutex<Sender<Command>>,
    shared: Arc<Shared>,
    tokenizer: Arc<Tokenizer>,
    model_name: String,
    max_model_len: usize,
    max_prompt_blocks: usize,
    block_size: usize,
    vocab_size: usize,
    max_waiting: usize,
    next_key: AtomicU64,
    accepting: AtomicBool,
}

/// Cheap, cloneable handle to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<Inner>,
}

/// The stream of outputs of one request.
pub struct RequestStream {
    rx: UnboundedReceiver<RequestOutput>,
    request_id: String,
    remaining: usize,
    handle: EngineHandle,
    /// Prompt token ids as the engine saw them.
    pub prompt_token_ids: Vec<u32>,
}

impl RequestStream {
    /// The next output, `None` once every sample has finished.
    pub async fn next(&mut self) -> Option<RequestOutput> {
        if self.remaining == 0 {
            return None;
        }
        let out = self.rx.recv().await?;
        if out.finish_reason.is_some() {
            self.remaining -= 1;
        }
        Some(out)
    }

    /// Blocking version of [`RequestStream::next`] for non-async callers.
    pub fn next_blocking(&mut self) -> Option<RequestOutput> {
        if self.remaining == 0 {
            return None;
        }
        let out = self.rx.blocking_recv()?;
        if out.finish_reason.is_some() {
            self.remaining -= 1;
        }
        Some(out)
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }
}

impl Drop for RequestStream {
    fn drop(&mut self) {
        if self.remaining > 0 {
            self.handle.abort(&self.request_id);
        }
    }
}

fn model_display_name(args: &EngineArgs) -> String {
    args.served_model_name.clone().unwrap_or_else(|| {
        if args.model == corvid_model::default_model::default_model_path() {
            corvid_model::default_model::DEFAULT_MODEL_NAME.to_string()
        } else {
            args.model
                .file_stem()
                .map_or_else(|| "model".to_string(), |s| s.to_string_lossy().into_owned())
        }
    })
}

impl EngineHandle {
    /// Loads the model (blocking) and starts the engine thread.
    pub fn start(args: EngineArgs, sink: Option<Arc<dyn StatsSink>>) -> Result<Self, EngineError> {
        let model = corvid_model::load_model(
            &args.model,
            &LoadOptions {
                quantization: args.quantization,
            },
        )?;
        let tokenizer = Arc::new(corvid_model::load_tokenizer(&args.model)?);
        Self::start_with(Arc::new(model), tokenizer, args, sink)
    }

    /// Starts the engine thread over an already-loaded model (tests use fakes).
    pub fn start_with(
        model: Arc<dyn CausalLm>,
        tokenizer: Arc<Tokenizer>,
        args: EngineArgs,
        sink: Option<Arc<dyn StatsSink>>,
    ) -> Result<Self, EngineError> {
        let cfg = model.config().clone();
        let bad = EngineError::InvalidConfig;
        if args.block_size == 0 || args.block_size > 256 {
            return Err(bad("block_size must be between 1 and 256".into()));
        }
        let per_block =
            KvCache::bytes_per_block(&cfg, args.block_size, args.kv_cache_dtype.resolve());
        let mut max_model_len = args
            .max_model_len
            .unwrap_or(cfg.max_position_embeddings)
            .min(cfg.max_position_embeddings);
        let (max_num_seqs, prefix_caching, batched_tokens) = if args.no_batching {
            (1, false, max_model_len)
        } else {
            (
                args.max_num_seqs.max(1),
                args.enable_prefix_caching,
                args.max_num_batched_tokens.max(1),
            )
        };
        let budget_blocks = (args.kv_cache_memory.bytes() as usize / per_block).max(1);
        // Never reserve more than every batch slot could use at full length.
        let useful = max_num_seqs * max_model_len.div_ceil(args.block_size);
        let num_blocks = budget_blocks.min(useful.max(1));
        max_model_len = max_model_len.min(num_blocks * args.block_size);
        if max_model_len < 2 {
            return Err(bad(format!(
                "the KV cache budget holds only {num_blocks} blocks; raise --kv-cache-memory"
            )));
        }
        tracing::info!(
            num_blocks,
            block_size = args.block_size,
            kv_cache_dtype = args.kv_cache_dtype.name(),
            kv_mib = (num_blocks * per_block) >> 20,
            max_model_len,
            max_num_seqs,
            "KV cache ready"
        );
        let shared = Arc::new(Shared {
            snapshot: Mutex::new(EngineSnapshot::default()),
            unfinished: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
        });
        let base = EngineSnapshot {
            kv_blocks_total: num_blocks,
            kv_bytes: num_blocks * per_block,
            block_size: args.block_size,
            kv_cache_dtype: args.kv_cache_dtype.name(),
            max_num_seqs,
            max_num_batched_tokens: batched_tokens,
            enable_prefix_caching: prefix_caching,
            max_model_len,
            ..Default::default()
        };
        *shared.snapshot.lock().expect("snapshot lock") = base.clone();
        let core_config = CoreConfig {
            num_blocks,
            scheduler: SchedulerConfig {
                max_num_seqs,
                max_num_batched_tokens: batched_tokens,
            },
            block_size: args.block_size,
            kv_dtype: args.kv_cache_dtype.resolve(),
            prefix_caching,
            eos: tokenizer.eos_token_ids().to_vec(),
        };
        let mut core = EngineCore::new(model, core_config, sink, Arc::clone(&shared), base);
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("corvid-engine".into())
            .spawn(move || run_loop(&mut core, rx))
            .map_err(|e| bad(format!("cannot start engine thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                tx: Mutex::new(tx),
                shared,
                model_name: model_display_name(&args),
                max_model_len,
                max_prompt_blocks: num_blocks,
                block_size: args.block_size,
                vocab_size: cfg.vocab_size,
                tokenizer,
                max_waiting: args.max_waiting_requests,
                next_key: AtomicU64::new(1),
                accepting: AtomicBool::new(true),
            }),
        })
    }

    fn send(&self, c: Command) -> Result<(), EngineError> {
        self.inner
            .tx
            .lock()
            .expect("command lock")
            .send(c)
            .map_err(|_| EngineError::Shutdown)
    }

    /// Validates and queues a request; its outputs arrive on the returned stream.
    pub fn add_request(
        &self,
        request_id: String,
        prompt: PromptInput,
        params: SamplingParams,
    ) -> Result<RequestStream, EngineError> {
        let inner = &self.inner;
        if !inner.accepting.load(Ordering::Relaxed) {
            return Err(EngineError::Shutdown);
        }
        params.validate()?;
        let ids = match prompt {
            PromptInput::Text(t) => inner
                .tokenizer
                .encode(&t, true, true)
                .map_err(|e| InvalidParam::new("prompt", format!("cannot be tokenized: {e}")))?,
            PromptInput::Tokens(ids) => ids,
        };
        self.check_prompt(&ids)?;
        if inner.shared.waiting.load(Ordering::Relaxed) + params.n > inner.max_waiting {
            return Err(EngineError::QueueFull);
        }
        let max_tokens = params
            .max_tokens
            .unwrap_or(usize::MAX)
            .min(inner.max_model_len - ids.len());
        let params = Arc::new(params);
        let (tx, rx) = unbounded_channel();
        let arrival = Instant::now();
        let seqs: Vec<Sequence> = (0..params.n)
            .map(|index| {
                let rng = match params.seed {
                    Some(s) => StdRng::seed_from_u64(s.wrapping_add(index as u64)),
                    None => StdRng::from_entropy(),
                };
                let text = TextTracker::new(
                    Arc::clone(&inner.tokenizer),
                    params.skip_special_tokens,
                    params.stop.clone(),
                );
                let key = inner.next_key.fetch_add(1, Ordering::Relaxed);
                Sequence::new(
                    key,
                    request_id.clone(),
                    index,
                    ids.clone(),
                    max_tokens,
                    Arc::clone(&params),
                    rng,
                    text,
                    tx.clone(),
                    arrival,
                )
            })
            .collect();
        inner.shared.unfinished.fetch_add(1, Ordering::Relaxed);
        inner
            .shared
            .waiting
            .fetch_add(seqs.len(), Ordering::Relaxed);
        if let Err(e) = self.send(Command::Add(seqs)) {
            inner.shared.unfinished.fetch_sub(1, Ordering::Relaxed);
            return Err(e);
        }
        Ok(RequestStream {
            rx,
            request_id,
            remaining: params.n,
            handle: self.clone(),
            prompt_token_ids: ids,
        })
    }

    /// Checks prompt token ids: not empty, in the vocabulary, short enough to leave room
    /// for output in the context and the KV pool. [`EngineHandle::add_request`] runs it;
    /// the server runs it too, to refuse a request before it sets anything up.
    pub fn check_prompt(&self, ids: &[u32]) -> Result<(), EngineError> {
        let inner = &self.inner;
        if ids.is_empty() {
            return Err(InvalidParam::new("prompt", "must not be empty.").into());
        }
        self.check_token_ids(ids)?;
        let fits_pool = (ids.len() + 1).div_ceil(inner.block_size) <= inner.max_prompt_blocks;
        if ids.len() >= inner.max_model_len || !fits_pool {
            return Err(EngineError::PromptTooLong {
                prompt_tokens: ids.len(),
                max_model_len: inner.max_model_len,
            });
        }
        Ok(())
    }

    /// Checks that every id is in the model's vocabulary (field `prompt`).
    pub fn check_token_ids(&self, ids: &[u32]) -> Result<(), InvalidParam> {
        let vocab = self.inner.vocab_size;
        match ids.iter().find(|&&t| t as usize >= vocab) {
            Some(t) => Err(InvalidParam::new(
                "prompt",
                format!("holds token id {t}, out of the vocabulary (size {vocab})."),
            )),
            None => Ok(()),
        }
    }

    /// Aborts a request (no-op if it already finished).
    pub fn abort(&self, request_id: &str) {
        let _ = self.send(Command::Abort(request_id.to_string()));
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.inner.tokenizer
    }

    /// Name the model is served under.
    pub fn model_name(&self) -> &str {
        &self.inner.model_name
    }

    /// Longest prompt + output.
    pub fn max_model_len(&self) -> usize {
        self.inner.max_model_len
    }

    /// Current engine state.
    pub fn snapshot(&self) -> EngineSnapshot {
        self.inner
            .shared
            .snapshot
            .lock()
            .expect("snapshot lock")
            .clone()
    }

    /// Requests added and not yet finished.
    pub fn num_unfinished(&self) -> usize {
        self.inner.shared.unfinished.load(Ordering::Relaxed)
    }

    /// Stops accepting requests; the engine thread exits once in-flight work is done.
    pub fn shutdown(&self) {
        self.inner.accepting.store(false, Ordering::Relaxed);
        let _ = self.send(Command::Shutdown);
    }
}

/// Applies a command; returns true for shutdown.
fn apply(c: Command, core: &mut EngineCore) -> bool {
    match c {
        Command::Add(seqs) => core.add(seqs),
        Command::Abort(id) => core.abort(&id),
        Command::Shutdown => return true,
    }
    false
}

fn run_loop(core: &mut EngineCore, rx: Receiver<Command>) {
    let mut shutting_down = false;
    loop {
        if core.is_idle() {
            if shutting_down {
                break;
            }
            match rx.recv() {
                Ok(c) => shutting_down |= apply(c, core),
                Err(_) => break,
            }
        }
        while let Ok(c) = rx.try_recv() {
            shutting_down |= apply(c, core);
        }
        if !core.is_idle() && !core.step() {
            // Nothing could be scheduled (every waiting prompt needs blocks still held);
            // wait for a command instead of spinning.
            if let Ok(c) = rx.recv_timeout(std::time::Duration::from_millis(5)) {
                shutting_down |= apply(c, core);
            }
        }
    }
    tracing::info!("engine loop stopped");
}
