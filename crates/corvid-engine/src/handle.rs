//! The engine's public face: [`EngineHandle`] loads the model, starts the engine thread
//! and queues requests on it. Cheap to clone; every clone talks to the same engine.

use crate::admission::{check_prompt, check_token_ids, new_sequences};
use crate::config::EngineConfig;
use crate::engine_core::{EngineCore, Shared};
use crate::engine_loop::{self, Command};
use crate::error::{EngineError, InvalidParam};
use crate::params::{EngineArgs, SamplingParams};
use crate::stats::{EngineSnapshot, StatsSink};
use crate::stream::RequestStream;
use corvid_model::tokenizer::Tokenizer;
use corvid_model::CausalLm;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::unbounded_channel;

/// A prompt as text (tokenized by the engine) or as token ids (callers that tokenized
/// already, like the server, which needs the ids to validate and echo).
#[derive(Clone, Debug)]
pub enum PromptInput {
    /// Text, tokenized with special tokens added and parsed.
    Text(String),
    /// Token ids, used as given (checked against the vocabulary).
    Tokens(Vec<u32>),
}

struct Inner {
    tx: Mutex<Sender<Command>>,
    shared: Arc<Shared>,
    tokenizer: Arc<Tokenizer>,
    config: EngineConfig,
    next_key: AtomicU64,
    accepting: AtomicBool,
}

/// Cheap, cloneable handle to a running engine: every caller (HTTP handlers, the
/// offline API, a dropped stream aborting its request) talks to the engine thread
/// through one.
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<Inner>,
}

impl EngineHandle {
    /// Loads the model (blocking) and starts the engine thread.
    pub fn start(args: EngineArgs, sink: Option<Arc<dyn StatsSink>>) -> Result<Self, EngineError> {
        let model = corvid_model::load_model(&args.model, &args.load_options())?;
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
        let config = args.resolve(model.config())?;
        tracing::info!(
            num_blocks = config.num_blocks,
            block_size = config.block_size,
            kv_cache_dtype = config.kv_cache_dtype.name(),
            kv_mib = config.kv_bytes >> 20,
            max_model_len = config.max_model_len,
            max_num_seqs = config.max_num_seqs,
            "KV cache ready"
        );
        let shared = Arc::new(Shared::default());
        let eos = tokenizer.eos_token_ids().to_vec();
        let core = EngineCore::new(model, &config, eos, sink, Arc::clone(&shared));
        let (tx, rx) = channel();
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("corvid-engine".into())
            .spawn(move || engine_loop::run_guarded(core, rx, &thread_shared))
            .map_err(|e| EngineError::InvalidConfig(format!("cannot start engine thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                tx: Mutex::new(tx),
                shared,
                tokenizer,
                config,
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
        if self.is_dead() {
            return Err(EngineError::Dead);
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
        let n = params.n;
        self.reserve_waiting(n)?;
        let (tx, rx) = unbounded_channel();
        let first_key = inner.next_key.fetch_add(n as u64, Ordering::Relaxed);
        let seqs = new_sequences(
            &request_id,
            &ids,
            params,
            &inner.config,
            &inner.tokenizer,
            first_key,
            &tx,
        );
        inner.shared.unfinished.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.send(Command::Add(seqs)) {
            inner.shared.unfinished.fetch_sub(1, Ordering::Relaxed);
            inner.shared.pending.fetch_sub(n, Ordering::Relaxed);
            return Err(e);
        }
        Ok(RequestStream::new(rx, request_id, n, self.clone(), ids))
    }

    /// Reserves `n` places in the waiting queue, or refuses with [`EngineError::QueueFull`]
    /// when the queue (what the scheduler holds plus what is on its way there) is full.
    /// The compare-and-swap makes concurrent callers take places one at a time, so the
    /// limit holds under any burst.
    fn reserve_waiting(&self, n: usize) -> Result<(), EngineError> {
        let shared = &self.inner.shared;
        let limit = self.inner.config.max_waiting_requests;
        shared
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                let queued = shared.waiting.load(Ordering::Acquire) + pending;
                (queued + n <= limit).then_some(pending + n)
            })
            .map(drop)
            .map_err(|_| EngineError::QueueFull)
    }

    /// Checks prompt token ids (not empty, in the vocabulary, fitting the context and
    /// the KV pool). [`EngineHandle::add_request`] runs it; the server runs it too, to
    /// refuse a request before it sets anything up.
    pub fn check_prompt(&self, ids: &[u32]) -> Result<(), EngineError> {
        check_prompt(&self.inner.config, ids)
    }

    /// Checks that every id is in the model's vocabulary (field `prompt`).
    pub fn check_token_ids(&self, ids: &[u32]) -> Result<(), InvalidParam> {
        check_token_ids(self.inner.config.vocab_size, ids)
    }

    /// Aborts a request, freeing its KV blocks (no-op if it already finished).
    pub fn abort(&self, request_id: &str) {
        let _ = self.send(Command::Abort(request_id.to_string()));
    }

    /// The model's tokenizer (callers render chat templates and decode logprob tokens).
    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.inner.tokenizer
    }

    /// What this engine runs with: limits, KV pool, served name.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The engine's state as of its last step (for gauges and idle checks).
    pub fn snapshot(&self) -> EngineSnapshot {
        self.inner
            .shared
            .snapshot
            .lock()
            .expect("snapshot lock")
            .clone()
    }

    /// The engine's state once it has applied every command sent before this call (an
    /// abort's freed KV blocks show, unlike in [`EngineHandle::snapshot`], which is only
    /// as fresh as the last step). Waits for the step in progress, if any.
    pub fn snapshot_now(&self) -> Result<EngineSnapshot, EngineError> {
        let (tx, rx) = channel();
        self.send(Command::Snapshot(tx))?;
        rx.recv().map_err(|_| EngineError::Shutdown)
    }

    /// Requests added and not yet finished (a graceful drain waits for 0).
    pub fn num_unfinished(&self) -> usize {
        self.inner.shared.unfinished.load(Ordering::Relaxed)
    }

    /// True once the engine thread has died (a panic inside a step): every request it
    /// held has ended with [`crate::FinishReason::Error`] and no new one is accepted.
    pub fn is_dead(&self) -> bool {
        *self.inner.shared.dead.borrow()
    }

    /// Completes when the engine thread dies (never, for a healthy engine), so a server
    /// can report unhealthy and exit for its orchestrator to restart it.
    pub async fn died(&self) {
        let mut rx = self.inner.shared.dead.subscribe();
        let _ = rx.wait_for(|dead| *dead).await;
    }

    /// Stops accepting requests; the engine thread exits once in-flight work is done.
    pub fn shutdown(&self) {
        self.inner.accepting.store(false, Ordering::Relaxed);
        let _ = self.send(Command::Shutdown);
    }
}
