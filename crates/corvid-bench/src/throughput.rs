//! `corvid bench throughput`: the offline engine benchmark, driving [`EngineHandle`]
//! directly under the same workloads as `bench serve`.
//!
//! Modes:
//! * `throughput` — submit every request at once; output/total tokens/s, requests/s,
//!   wall time, peak batch, peak KV blocks and the KV-capacity comparison.
//! * `single-stream` — one request at a time (`--input-len`/`--output-len`, default
//!   128/128), prefill t/s and decode t/s separately (llama-bench's `pp`/`tg`).
//! * `prefix-ttft` — TTFT of requests sharing a `--system-prompt-len` system prompt,
//!   sent one at a time, with prefix caching on and then off.

use crate::kv_capacity::{kv_capacity, KvCapacity, KvPool};
use crate::sink::{Collected, CollectingSink};
use crate::stats::{std_dev, Summary};
use crate::workload::{self, RequestSpec, WorkloadArgs, WorkloadKind};
use anyhow::{Context, Result};
use corvid_engine::cli::EngineCliArgs;
use corvid_engine::{EngineArgs, EngineHandle, PromptInput, RequestStream, SamplingParams};
use corvid_model::kv_cache::max_blocks;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What `bench throughput` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// All requests at once: batched throughput.
    Throughput,
    /// One request at a time: prefill and decode speed.
    SingleStream,
    /// TTFT with a shared system prompt, prefix caching on vs off.
    PrefixTtft,
}

/// Flags of `corvid bench throughput`.
#[derive(Clone, Debug, clap::Args)]
pub struct ThroughputArgs {
    /// Engine flags.
    #[command(flatten)]
    pub engine: EngineCliArgs,
    /// Workload.
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// What to measure.
    #[arg(long, value_enum, default_value = "throughput")]
    pub mode: Mode,
    /// Repetitions (`single-stream`).
    #[arg(long, default_value_t = 3)]
    pub repetitions: usize,
    /// Unmeasured warm-up requests.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Sampling temperature of every request (0: greedy, the default, so runs repeat; API
    /// clients that send none get 1.0, which takes the engine's random-sampling path).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Write the result as JSON here.
    #[arg(long)]
    pub result_json: Option<PathBuf>,
    /// Also write the measured requests here (`throughput` mode), one JSON object a line:
    /// `prompt_token_ids` and `max_tokens`, so another client (bench/python_api.sh's
    /// Python run) can replay the same mix.
    #[arg(long)]
    pub write_workload: Option<PathBuf>,
}

/// Writes `specs` as JSON lines of `prompt_token_ids` and `max_tokens`.
fn write_workload(path: &std::path::Path, specs: &[RequestSpec]) -> Result<()> {
    let lines: Vec<String> = specs
        .iter()
        .map(|s| {
            serde_json::json!({"prompt_token_ids": s.token_ids(), "max_tokens": s.output_len})
                .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// Result of `throughput` mode.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ThroughputResult {
    /// Requests.
    pub num_requests: usize,
    /// Wall time from first submission to last token, seconds.
    pub elapsed_s: f64,
    /// Prompt tokens.
    pub total_input_tokens: usize,
    /// Generated tokens.
    pub total_output_tokens: usize,
    /// Requests per second.
    pub requests_per_s: f64,
    /// Generated tokens per second.
    pub output_tokens_per_s: f64,
    /// Prompt + generated tokens per second.
    pub total_tokens_per_s: f64,
    /// Most sequences running at once.
    pub peak_running: usize,
    /// Most KV blocks in use.
    pub peak_blocks_used: usize,
    /// Preemptions.
    pub preemptions: usize,
    /// Engine-side TTFT (arrival → first token), ms.
    pub ttft_ms: Summary,
    /// KV capacity at this pool, paged vs contiguous.
    pub kv_capacity: KvCapacity,
}

/// One single-stream repetition's speeds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SingleStreamResult {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub output_tokens: usize,
    /// Prefill tokens/s per repetition (prompt tokens / first-scheduled→first-token).
    pub prefill_tps: Vec<f64>,
    /// Decode tokens/s per repetition ((generated − 1) / first→last token).
    pub decode_tps: Vec<f64>,
    /// Mean prefill t/s.
    pub prefill_tps_mean: f64,
    /// Sample std of prefill t/s.
    pub prefill_tps_std: f64,
    /// Mean decode t/s.
    pub decode_tps_mean: f64,
    /// Sample std of decode t/s.
    pub decode_tps_std: f64,
}

/// TTFT with one prefix-caching setting.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TtftSide {
    /// Prefix caching on.
    pub enable_prefix_caching: bool,
    /// Engine-side TTFT, ms.
    pub ttft_ms: Summary,
    /// Client-side TTFT (submit → first output), ms.
    pub client_ttft_ms: Summary,
    /// Prompt tokens served from the cache.
    pub cached_tokens: usize,
}

/// Result of `prefix-ttft` mode.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PrefixTtftResult {
    /// Tokens of the shared system prompt.
    pub system_prompt_len: usize,
    /// Tokens of each user message.
    pub user_len: usize,
    /// Caching on.
    pub on: TtftSide,
    /// Caching off.
    pub off: TtftSide,
    /// Mean TTFT off / on.
    pub speedup_mean: f64,
    /// Median TTFT off / on.
    pub speedup_p50: f64,
}

/// The JSON file of a `bench throughput` run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThroughputReport {
    /// Mode run.
    pub mode: Mode,
    /// Model path.
    pub model: String,
    /// Engine flags in force (debug form).
    pub engine_args: String,
    /// Workload.
    pub workload: WorkloadArgs,
    /// `throughput` result.
    pub throughput: Option<ThroughputResult>,
    /// `single-stream` result.
    pub single_stream: Option<SingleStreamResult>,
    /// `prefix-ttft` result.
    pub prefix_ttft: Option<PrefixTtftResult>,
}

/// How long to wait for the engine's stats after the last output.
const SINK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn start(args: &EngineArgs) -> Result<(EngineHandle, Arc<CollectingSink>)> {
    let sink = Arc::new(CollectingSink::default());
    let handle = EngineHandle::start(args.clone(), Some(sink.clone()))
        .with_context(|| format!("starting the engine on {}", args.model.display()))?;
    Ok((handle, sink))
}

fn params(max_tokens: usize, temperature: f32) -> SamplingParams {
    SamplingParams {
        max_tokens: Some(max_tokens),
        ignore_eos: true,
        temperature,
        ..SamplingParams::default()
    }
}

fn submit(
    h: &EngineHandle,
    tag: &str,
    i: usize,
    spec: &RequestSpec,
    temperature: f32,
) -> Result<RequestStream> {
    h.add_request(
        format!("bench-{tag}-{i}"),
        PromptInput::Tokens(spec.token_ids()),
        params(spec.output_len, temperature),
    )
    .map_err(|e| anyhow::anyhow!("request {i}: {e}"))
}

/// Drains a stream; returns generated tokens and the instant of the first output.
fn drain(mut s: RequestStream) -> (usize, Option<Instant>) {
    let mut n = 0;
    let mut first = None;
    while let Some(o) = s.next_blocking() {
        if first.is_none() && !o.token_ids.is_empty() {
            first = Some(Instant::now());
        }
        n += o.token_ids.len();
    }
    (n, first)
}

fn run_all(
    h: &EngineHandle,
    tag: &str,
    specs: &[RequestSpec],
    temperature: f32,
) -> Result<(usize, f64)> {
    let t0 = Instant::now();
    let streams = specs
        .iter()
        .enumerate()
        .map(|(i, s)| submit(h, tag, i, s, temperature))
        .collect::<Result<Vec<_>>>()?;
    let out = streams.into_iter().map(|s| drain(s).0).sum();
    Ok((out, t0.elapsed().as_secs_f64()))
}

fn warm(
    h: &EngineHandle,
    sink: &CollectingSink,
    args: &ThroughputArgs,
    tok: &dyn crate::prompt::TokenCounter,
) -> Result<()> {
    if args.warmup == 0 {
        return Ok(());
    }
    let mut w = args.workload.clone();
    w.workload = WorkloadKind::Fixed;
    w.input_len = 32;
    w.output_len = 8;
    let specs = workload::generate_n(&w, args.warmup, args.workload.seed ^ 0x77, tok);
    run_all(h, "warmup", &specs, args.temperature)?;
    sink.wait_for_requests(specs.len(), SINK_WAIT);
    sink.take();
    Ok(())
}

fn throughput(args: &ThroughputArgs, ea: &EngineArgs) -> Result<ThroughputResult> {
    let (h, sink) = start(ea)?;
    let tok = h.tokenizer().clone();
    let specs = workload::generate(&args.workload, tok.as_ref());
    if let Some(path) = &args.write_workload {
        write_workload(path, &specs)?;
    }
    warm(&h, &sink, args, tok.as_ref())?;
    sink.take();
    let (out, elapsed) = run_all(&h, "run", &specs, args.temperature)?;
    sink.wait_for_requests(specs.len(), SINK_WAIT);
    let c: Collected = sink.take();
    let cfg = h.config().clone();
    h.shutdown();
    let input: usize = specs.iter().map(RequestSpec::prompt_len).sum();
    let lens: Vec<usize> = specs
        .iter()
        .map(|s| s.prompt_len() + s.output_len)
        .collect();
    let ttft: Vec<f64> = c.requests.iter().filter_map(|r| r.ttft_seconds).collect();
    Ok(ThroughputResult {
        num_requests: specs.len(),
        elapsed_s: elapsed,
        total_input_tokens: input,
        total_output_tokens: out,
        requests_per_s: specs.len() as f64 / elapsed,
        output_tokens_per_s: out as f64 / elapsed,
        total_tokens_per_s: (input + out) as f64 / elapsed,
        peak_running: c.peak_running,
        peak_blocks_used: c.peak_blocks_used,
        preemptions: c.preemptions,
        ttft_ms: Summary::from_seconds(&ttft),
        kv_capacity: kv_capacity(
            &KvPool {
                blocks: cfg.usable_kv_blocks(),
                block_size: cfg.block_size,
                bytes: cfg.kv_bytes,
                max_model_len: cfg.max_model_len,
                groups: cfg.kv_windows.len(),
                blocks_for: &|len| max_blocks(&cfg.kv_windows, len, cfg.block_size, 1),
            },
            &lens,
        ),
    })
}

fn single_stream(args: &ThroughputArgs, ea: &EngineArgs) -> Result<SingleStreamResult> {
    let (h, sink) = start(ea)?;
    let tok = h.tokenizer().clone();
    warm(&h, &sink, args, tok.as_ref())?;
    let mut w = args.workload.clone();
    w.workload = WorkloadKind::Fixed;
    let mut r = SingleStreamResult {
        prompt_tokens: w.input_len,
        output_tokens: w.output_len,
        ..Default::default()
    };
    for rep in 0..args.repetitions.max(1) {
        // A fresh prompt each time so the prefix cache never shortens the prefill.
        let spec =
            workload::generate_n(&w, 1, w.seed.wrapping_add(1000 + rep as u64), tok.as_ref());
        sink.take();
        run_all(&h, &format!("ss{rep}"), &spec, args.temperature)?;
        sink.wait_for_requests(1, SINK_WAIT);
        let c = sink.take();
        let st = c
            .requests
            .first()
            .context("the engine reported no finished request")?;
        r.prefill_tps
            .push(st.prompt_tokens as f64 / st.prefill_seconds.max(1e-9));
        r.decode_tps
            .push(st.generation_tokens.saturating_sub(1) as f64 / st.decode_seconds.max(1e-9));
    }
    h.shutdown();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    r.prefill_tps_mean = mean(&r.prefill_tps);
    r.prefill_tps_std = std_dev(&r.prefill_tps);
    r.decode_tps_mean = mean(&r.decode_tps);
    r.decode_tps_std = std_dev(&r.decode_tps);
    Ok(r)
}

fn ttft_side(args: &ThroughputArgs, ea: &EngineArgs, caching: bool) -> Result<TtftSide> {
    let mut ea = ea.clone();
    ea.enable_prefix_caching = caching;
    let (h, sink) = start(&ea)?;
    let tok = h.tokenizer().clone();
    let mut w = args.workload.clone();
    w.workload = WorkloadKind::SharedPrefix;
    // Prime: one request carrying the system prompt (fills the cache when it is on).
    let prime = workload::generate_n(&w, 1, w.seed ^ 0x9e37, tok.as_ref());
    run_all(&h, "prime", &prime, args.temperature)?;
    sink.wait_for_requests(1, SINK_WAIT);
    let specs = workload::generate(&w, tok.as_ref());
    sink.take();
    let mut client = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let t0 = Instant::now();
        let (_, first) = drain(submit(&h, "pttft", i, s, args.temperature)?);
        if let Some(f) = first {
            client.push(f.duration_since(t0).as_secs_f64());
        }
    }
    sink.wait_for_requests(specs.len(), SINK_WAIT);
    let c = sink.take();
    h.shutdown();
    let ttft: Vec<f64> = c.requests.iter().filter_map(|r| r.ttft_seconds).collect();
    Ok(TtftSide {
        enable_prefix_caching: caching,
        ttft_ms: Summary::from_seconds(&ttft),
        client_ttft_ms: Summary::from_seconds(&client),
        cached_tokens: c.requests.iter().map(|r| r.cached_tokens).sum(),
    })
}

fn prefix_ttft(args: &ThroughputArgs, ea: &EngineArgs) -> Result<PrefixTtftResult> {
    let on = ttft_side(args, ea, true)?;
    let off = ttft_side(args, ea, false)?;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    Ok(PrefixTtftResult {
        system_prompt_len: args.workload.system_prompt_len,
        user_len: args.workload.input_len,
        speedup_mean: ratio(off.ttft_ms.mean, on.ttft_ms.mean),
        speedup_p50: ratio(off.ttft_ms.p50, on.ttft_ms.p50),
        on,
        off,
    })
}

/// Runs `bench throughput` and returns its report (printing nothing).
pub fn measure(args: &ThroughputArgs) -> Result<ThroughputReport> {
    let ea = args.engine.to_engine_args();
    tracing::info!(mode = ?args.mode, workload = ?args.workload.workload, n = args.workload.num_prompts, "offline benchmark starts");
    let mut rep = ThroughputReport {
        mode: args.mode,
        model: ea.model.display().to_string(),
        engine_args: format!("{ea:?}"),
        workload: args.workload.clone(),
        throughput: None,
        single_stream: None,
        prefix_ttft: None,
    };
    match args.mode {
        Mode::Throughput => rep.throughput = Some(throughput(args, &ea)?),
        Mode::SingleStream => rep.single_stream = Some(single_stream(args, &ea)?),
        Mode::PrefixTtft => rep.prefix_ttft = Some(prefix_ttft(args, &ea)?),
    }
    Ok(rep)
}

/// Human-readable lines for a report.
pub fn render(rep: &ThroughputReport) -> String {
    let mut s = String::new();
    if let Some(t) = &rep.throughput {
        let k = &t.kv_capacity;
        s += &format!(
            "Throughput: {:.2} requests/s, {:.2} output tokens/s, {:.2} total tokens/s\n\
             Requests: {}  input tokens: {}  output tokens: {}  wall time: {:.2} s\n\
             Peak running sequences: {}  peak KV blocks used: {}/{}  preemptions: {}\n\
             TTFT (engine) mean {:.1} ms  p50 {:.1}  p99 {:.1}\n\
             KV capacity ({} blocks x {} tokens, {} MiB): contiguous max-len ({}) reservations fit {} seqs; \
             paged at actual lengths (mean {:.1} blocks) fits {}{} seqs ({:.1}x)\n",
            t.requests_per_s, t.output_tokens_per_s, t.total_tokens_per_s,
            t.num_requests, t.total_input_tokens, t.total_output_tokens, t.elapsed_s,
            t.peak_running, t.peak_blocks_used, k.blocks_total, t.preemptions,
            t.ttft_ms.mean, t.ttft_ms.p50, t.ttft_ms.p99,
            k.blocks_total, k.block_size, k.kv_bytes >> 20, k.max_model_len, k.contiguous_max_seqs,
            k.mean_blocks_per_request, if k.paged_all_fit { "~" } else { "" }, k.paged_max_seqs, k.ratio,
        );
    }
    if let Some(r) = &rep.single_stream {
        s += &format!(
            "Single stream pp{}: {:.2} ± {:.2} t/s   tg{}: {:.2} ± {:.2} t/s   ({} reps)\n",
            r.prompt_tokens,
            r.prefill_tps_mean,
            r.prefill_tps_std,
            r.output_tokens,
            r.decode_tps_mean,
            r.decode_tps_std,
            r.prefill_tps.len(),
        );
    }
    if let Some(p) = &rep.prefix_ttft {
        s += &format!(
            "Prefix TTFT ({}-token system prompt + {}-token user message, sequential):\n\
             caching on : mean {:.1} ms  p50 {:.1} ms  (client mean {:.1} ms, {} cached tokens)\n\
             caching off: mean {:.1} ms  p50 {:.1} ms  (client mean {:.1} ms)\n\
             speedup: {:.2}x mean, {:.2}x p50\n",
            p.system_prompt_len,
            p.user_len,
            p.on.ttft_ms.mean,
            p.on.ttft_ms.p50,
            p.on.client_ttft_ms.mean,
            p.on.cached_tokens,
            p.off.ttft_ms.mean,
            p.off.ttft_ms.p50,
            p.off.client_ttft_ms.mean,
            p.speedup_mean,
            p.speedup_p50,
        );
    }
    s
}

/// `corvid bench throughput`.
pub fn run(args: ThroughputArgs) -> Result<()> {
    let rep = measure(&args)?;
    print!("{}", render(&rep));
    if let Some(path) = &args.result_json {
        crate::write_json(path, &rep)?;
    }
    Ok(())
}
