//! [`Engine`]: the running corvid engine behind one `corvid.LLM`: loads the model, turns
//! prompts into requests, waits for them with the GIL released, renders chat templates,
//! and answers for the KV pool. Python-side input shapes and output classes live in
//! `python/corvid/`.

use crate::collect::{collect, Collected};
use crate::errors::{bad_argument, engine_error};
use crate::sampling;
use corvid_engine::{
    CompletionOutput, Dtype, EngineArgs, EngineError, EngineHandle, InvalidParam, KvCacheDtype,
    KvCacheMemory, LoadQuantization, PromptInput, RequestStream, SamplingParams, TokenLogprob,
};
use corvid_model::default_model::{default_model_path, DEFAULT_MODEL_NAME};
use corvid_model::tokenizer::{ChatMessage, Tokenizer};
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One prompt as Python hands it over: text (tokenized here) or token ids.
type PromptIn = (Option<String>, Option<Vec<i64>>);

/// A logprob entry: token id, logprob, rank (1 = most likely; unknown for a sampled
/// token outside the top alternatives), decoded text.
type LogprobOut = (u32, f32, Option<usize>, String);

/// One sample: index, text, token ids, finish reason, cumulative logprob, logprobs.
type SampleOut = (
    usize,
    String,
    Vec<u32>,
    Option<&'static str>,
    Option<f64>,
    Option<Vec<Vec<LogprobOut>>>,
);

/// One request: id, prompt text, prompt token ids, prompt tokens served from the prefix
/// cache, whether every sample finished, samples.
type RequestOut = (
    String,
    Option<String>,
    Vec<u32>,
    usize,
    bool,
    Vec<SampleOut>,
);

/// The engine of one `corvid.LLM`.
#[pyclass(module = "corvid._corvid", frozen)]
pub struct Engine {
    handle: EngineHandle,
    model: PathBuf,
    dtype: Dtype,
    /// Seeds of requests that bring none (vLLM's `LLM(seed=...)`): the same script
    /// samples the same text run after run.
    seeds: Mutex<StdRng>,
    next_request: AtomicU64,
    /// Bumped by [`Engine::abort`]: a `generate` that saw another value stops.
    abort_epoch: AtomicU64,
}

/// The engine's defaults for `corvid.LLM`'s keyword arguments, from [`EngineArgs`].
#[pyfunction]
pub fn engine_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let a = EngineArgs::default();
    let d = PyDict::new(py);
    d.set_item("max_num_seqs", a.max_num_seqs)?;
    d.set_item("max_num_batched_tokens", a.max_num_batched_tokens)?;
    d.set_item("block_size", a.block_size)?;
    d.set_item("kv_cache_memory", memory_text(a.kv_cache_memory))?;
    d.set_item("enable_prefix_caching", a.enable_prefix_caching)?;
    Ok(d)
}

/// `1GiB`, `512MiB`, a byte count or a fraction, as `KvCacheMemory` parses it back.
fn memory_text(m: KvCacheMemory) -> String {
    match m {
        KvCacheMemory::Fraction(f) => f.to_string(),
        KvCacheMemory::Bytes(b) if b % (1 << 30) == 0 => format!("{}GiB", b >> 30),
        KvCacheMemory::Bytes(b) if b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        KvCacheMemory::Bytes(b) => b.to_string(),
    }
}

/// The model path `model` names: `default` (or the default model's name) is the installed
/// default model; a hub id is refused, since nothing is downloaded.
fn resolve_model(model: &str) -> PyResult<PathBuf> {
    if ["default", "", DEFAULT_MODEL_NAME].contains(&model) {
        let path = default_model_path();
        if !path.exists() {
            return Err(PyFileNotFoundError::new_err(format!(
                "the default model is not installed at {} (scripts/setup.sh installs it)",
                path.display()
            )));
        }
        return Ok(path);
    }
    let path = PathBuf::from(model);
    if path.exists() {
        return Ok(path);
    }
    if looks_like_hub_id(model) {
        return Err(PyValueError::new_err(format!(
            "model: `{model}` is no file or folder here and looks like a Hugging Face hub id; \
             corvid cannot fetch models from a hub: pass a local path: a .gguf file or a Hugging Face model folder \
             (config.json, tokenizer.json, *.safetensors), or \"default\" for the installed \
             {DEFAULT_MODEL_NAME}"
        )));
    }
    Err(PyFileNotFoundError::new_err(format!(
        "model: no such file or folder: {model}"
    )))
}

/// `org/name`: two path-safe parts, not a relative or absolute path.
fn looks_like_hub_id(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    matches!(s.split_once('/'), Some((org, name)) if part(org) && part(name))
}

fn parse<T: std::str::FromStr<Err = String>>(arg: &str, value: &str) -> PyResult<T> {
    value.parse().map_err(|e| bad_argument(arg, e))
}

fn load(args: EngineArgs, tokenizer: Option<&Path>) -> Result<EngineHandle, EngineError> {
    let model = corvid_model::load_model(&args.model, &args.load_options())?;
    let tok = corvid_model::load_tokenizer(tokenizer.unwrap_or(&args.model))?;
    EngineHandle::start_with(Arc::new(model), Arc::new(tok), args, None)
}

/// Logs through `tracing` to stderr, at `RUST_LOG`'s level (warnings by default).
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

#[pymethods]
impl Engine {
    /// Checks the arguments (dtype first, then the rest, then the model path), loads the
    /// model with the GIL released, and starts the engine thread.
    #[new]
    #[pyo3(signature = (*, model, tokenizer, dtype, quantization, max_model_len, max_num_seqs,
        max_num_batched_tokens, block_size, kv_cache_memory, kv_cache_dtype,
        enable_prefix_caching, seed, tensor_parallel_size))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: &str,
        tokenizer: Option<&str>,
        dtype: &str,
        quantization: Option<&str>,
        max_model_len: Option<usize>,
        max_num_seqs: usize,
        max_num_batched_tokens: usize,
        block_size: usize,
        kv_cache_memory: &str,
        kv_cache_dtype: &str,
        enable_prefix_caching: bool,
        seed: Option<u64>,
        tensor_parallel_size: usize,
    ) -> PyResult<Self> {
        init_logging();
        let dtype: Dtype = parse("dtype", dtype)?;
        let kv: KvCacheDtype = parse("kv_cache_dtype", kv_cache_dtype)?;
        let quantization = quantization
            .map(|q| parse::<LoadQuantization>("quantization", q))
            .transpose()?;
        let args = EngineArgs {
            model: resolve_model(model)?,
            max_model_len,
            max_num_seqs,
            max_num_batched_tokens,
            block_size,
            kv_cache_memory: parse("kv_cache_memory", kv_cache_memory)?,
            kv_cache_dtype: dtype.kv_cache_dtype(kv),
            enable_prefix_caching,
            quantization,
            // Offline, the prompts handed to generate are the queue: never refuse them.
            max_waiting_requests: usize::MAX / 2,
            tensor_parallel_size,
            ..EngineArgs::default()
        };
        let tokenizer = tokenizer.map(resolve_model).transpose()?;
        let model = args.model.clone();
        let handle = py
            .detach(|| load(args, tokenizer.as_deref()))
            .map_err(engine_error)?;
        Ok(Self {
            handle,
            model,
            dtype,
            seeds: Mutex::new(seed.map_or_else(StdRng::from_entropy, StdRng::seed_from_u64)),
            next_request: AtomicU64::new(0),
            abort_epoch: AtomicU64::new(0),
        })
    }

    /// What a 16-bit `dtype` means on CPU, for the caller to warn with (`None` otherwise).
    #[getter]
    fn dtype_note(&self) -> Option<&'static str> {
        self.dtype.note()
    }

    /// What the engine runs with: model, context length, KV pool, batch limits, dtypes.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.handle.config();
        let d = PyDict::new(py);
        d.set_item("model", self.model.display().to_string())?;
        d.set_item("served_model_name", &c.served_model_name)?;
        d.set_item("max_model_len", c.max_model_len)?;
        d.set_item("dtype", "float32")?;
        d.set_item("kv_cache_dtype", c.kv_cache_dtype.name())?;
        d.set_item("num_kv_blocks", c.num_blocks)?;
        d.set_item("block_size", c.block_size)?;
        d.set_item("kv_cache_bytes", c.kv_bytes)?;
        d.set_item("max_num_seqs", c.max_num_seqs)?;
        d.set_item("max_num_batched_tokens", c.max_num_batched_tokens)?;
        d.set_item("enable_prefix_caching", c.enable_prefix_caching)?;
        d.set_item("vocab_size", c.vocab_size)?;
        d.set_item("tensor_parallel_size", c.tensor_parallel_size)?;
        Ok(d)
    }

    /// The engine's state once it has applied every earlier command (so blocks freed by
    /// a finished or aborted `generate` show): sequences, unfinished requests, KV blocks.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = py
            .detach(|| self.handle.snapshot_now())
            .map_err(engine_error)?;
        let d = PyDict::new(py);
        d.set_item("running", s.running)?;
        d.set_item("waiting", s.waiting)?;
        d.set_item("unfinished_requests", self.handle.num_unfinished())?;
        d.set_item("kv_blocks_used", s.kv_blocks_used)?;
        d.set_item("kv_blocks_free", s.kv_blocks_total - s.kv_blocks_used)?;
        d.set_item("kv_blocks_total", s.kv_blocks_total)?;
        Ok(d)
    }

    /// Stops every `generate` running now (from any thread): their requests are aborted,
    /// their KV blocks freed, and each returns what it generated so far as aborted.
    fn abort(&self) {
        self.abort_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Renders each conversation (a list of `(role, content)`) with the model's chat
    /// template.
    fn render_chat(
        &self,
        conversations: Vec<Vec<(String, String)>>,
        add_generation_prompt: bool,
    ) -> PyResult<Vec<String>> {
        let template = self.handle.tokenizer().chat_template().ok_or_else(|| {
            PyValueError::new_err("this model has no chat template; use generate()")
        })?;
        conversations
            .into_iter()
            .map(|conv| {
                let msgs: Vec<ChatMessage> = conv
                    .into_iter()
                    .map(|(role, content)| ChatMessage { role, content })
                    .collect();
                template
                    .render(&msgs, add_generation_prompt)
                    .map_err(|e| bad_argument("messages", e))
            })
            .collect()
    }

    /// Generates for every prompt, all batched together, with the GIL released. Returns
    /// the requests' outputs in input order and whether `abort` stopped them. Signals are
    /// checked while waiting: Ctrl-C aborts the requests, waits for the engine to free
    /// their KV blocks, and raises `KeyboardInterrupt`. `progress(done, generated_tokens)`
    /// is called as prompts finish.
    #[pyo3(signature = (prompts, params, add_special_tokens, progress=None))]
    fn generate(
        &self,
        py: Python<'_>,
        prompts: Vec<PromptIn>,
        params: Vec<Bound<'_, PyAny>>,
        add_special_tokens: bool,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<(Vec<RequestOut>, bool)> {
        if params.len() != prompts.len() {
            return Err(PyValueError::new_err(format!(
                "sampling_params: got {} for {} prompts (give one, or one per prompt)",
                params.len(),
                prompts.len()
            )));
        }
        let epoch = self.abort_epoch.load(Ordering::SeqCst);
        let mut params = params
            .iter()
            .map(sampling::from_py)
            .collect::<PyResult<Vec<_>>>()?;
        self.seed_unseeded(&mut params);
        let want_logprobs: Vec<bool> = params.iter().map(|p| p.logprobs.is_some()).collect();
        let texts: Vec<Option<String>> = prompts.iter().map(|(t, _)| t.clone()).collect();
        let samples: Vec<usize> = params.iter().map(|p| p.n).collect();
        let streams = py.detach(|| self.submit(prompts, params, add_special_tokens))?;
        let ids: Vec<String> = streams.iter().map(|s| s.request_id().to_string()).collect();
        let streams = streams.into_iter().zip(samples).collect();
        let Collected { requests, aborted } = collect(
            py,
            &self.handle,
            streams,
            || self.abort_epoch.load(Ordering::SeqCst) != epoch,
            progress.as_ref(),
        )?;
        let tok = self.handle.tokenizer();
        let outs = requests
            .into_iter()
            .zip(ids)
            .zip(texts)
            .zip(want_logprobs)
            .map(|(((r, id), text), logprobs)| {
                let finished = r.samples.iter().all(|s| s.finish_reason.is_some());
                let samples = r
                    .samples
                    .into_iter()
                    .map(|s| sample_out(s, logprobs, tok))
                    .collect();
                (
                    id,
                    text,
                    r.prompt_token_ids,
                    r.cached_tokens,
                    finished,
                    samples,
                )
            })
            .collect();
        Ok((outs, aborted))
    }
}

impl Engine {
    /// Gives each unseeded request the next seed of the LLM's stream.
    fn seed_unseeded(&self, params: &mut [SamplingParams]) {
        let mut rng = self.seeds.lock().expect("seed lock");
        for p in params.iter_mut().filter(|p| p.seed.is_none()) {
            p.seed = Some(rng.next_u64());
        }
    }

    /// Tokenizes and checks every prompt before queuing any (a bad one refuses the whole
    /// call and leaves the engine untouched), then queues them all.
    fn submit(
        &self,
        prompts: Vec<PromptIn>,
        params: Vec<SamplingParams>,
        add_special_tokens: bool,
    ) -> PyResult<Vec<RequestStream>> {
        let many = prompts.len() > 1;
        let mut inputs = Vec::with_capacity(prompts.len());
        for (i, p) in prompts.into_iter().enumerate() {
            let ids = self
                .prompt_ids(p, add_special_tokens)
                .and_then(|ids| self.handle.check_prompt(&ids).map(|()| ids))
                .map_err(|e| prompt_error(many.then_some(i), e))?;
            inputs.push(ids);
        }
        let mut streams = Vec::with_capacity(inputs.len());
        for (ids, p) in inputs.into_iter().zip(params) {
            let id = self
                .next_request
                .fetch_add(1, Ordering::Relaxed)
                .to_string();
            // On failure the streams queued so far drop, which aborts their requests.
            let s = self
                .handle
                .add_request(id, PromptInput::Tokens(ids), p)
                .map_err(engine_error)?;
            streams.push(s);
        }
        Ok(streams)
    }

    fn prompt_ids(
        &self,
        (text, ids): PromptIn,
        add_special_tokens: bool,
    ) -> Result<Vec<u32>, EngineError> {
        let bad = |problem: String| EngineError::from(InvalidParam::new("prompt", problem));
        match (text, ids) {
            (_, Some(ids)) => ids
                .into_iter()
                .map(|t| {
                    u32::try_from(t)
                        .map_err(|_| bad(format!("holds {t}, which is not a token id.")))
                })
                .collect(),
            (Some(t), None) => self
                .handle
                .tokenizer()
                .encode(&t, add_special_tokens, true)
                .map_err(|e| bad(format!("cannot be tokenized: {e}"))),
            (None, None) => Err(bad("must be text or token ids.".into())),
        }
    }
}

/// A refused prompt's error, naming which prompt of several it was.
fn prompt_error(index: Option<usize>, e: EngineError) -> PyErr {
    match (index, &e) {
        (Some(i), EngineError::InvalidRequest(_) | EngineError::PromptTooLong { .. }) => {
            PyValueError::new_err(format!("prompts[{i}]: {e}"))
        }
        _ => engine_error(e),
    }
}

fn sample_out(s: CompletionOutput, with_logprobs: bool, tok: &Tokenizer) -> SampleOut {
    let cumulative = with_logprobs.then(|| s.logprobs.iter().map(|l| f64::from(l.logprob)).sum());
    let logprobs = with_logprobs.then(|| {
        s.logprobs
            .iter()
            .map(|l| position_logprobs(l, tok))
            .collect()
    });
    (
        s.index,
        s.text,
        s.token_ids,
        s.finish_reason.map(|f| f.as_str()),
        cumulative,
        logprobs,
    )
}

/// vLLM's logprobs of one position: the top alternatives by rank, then the sampled token
/// if it is not among them.
fn position_logprobs(l: &TokenLogprob, tok: &Tokenizer) -> Vec<LogprobOut> {
    let text = |id: u32| tok.decode(&[id], false).unwrap_or_default();
    let mut out: Vec<LogprobOut> = l
        .top
        .iter()
        .enumerate()
        .map(|(r, &(id, lp))| (id, lp, Some(r + 1), text(id)))
        .collect();
    if !l.top.iter().any(|&(id, _)| id == l.token_id) {
        out.push((l.token_id, l.logprob, None, text(l.token_id)));
    }
    out
}
