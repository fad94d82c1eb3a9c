//! `corvid bench serve`: an async load generator for any OpenAI-compatible server
//! (corvid, llama.cpp's llama-server, vLLM). Requests arrive as a Poisson process at
//! `--request-rate` (or all at once), optionally capped at `--max-concurrency` in
//! flight, after an unmeasured warm-up. Every request is bounded by a total and an
//! idle timeout, so a stalled or dead server ends the run with counted errors.

use crate::client::{self, Api, RequestResult, Timeouts};
use crate::prompt::TokenCounter;
use crate::report::ServeMetrics;
use crate::scrape::metric_sum;
use crate::workload::{self, RequestSpec, WorkloadArgs};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Requests per second, or `inf` (all requests sent at once).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum RequestRate {
    /// Everything at time zero.
    Infinite,
    /// Poisson arrivals at this mean rate.
    PerSecond(f64),
}

impl FromStr for RequestRate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "inf" | "infinity" | "Inf" => Ok(Self::Infinite),
            v => match v.parse::<f64>() {
                Ok(r) if r.is_infinite() && r > 0.0 => Ok(Self::Infinite),
                Ok(r) if r > 0.0 => Ok(Self::PerSecond(r)),
                _ => Err(format!(
                    "invalid request rate `{s}` (a positive number or inf)"
                )),
            },
        }
    }
}

/// Flags of `corvid bench serve`.
#[derive(Clone, Debug, clap::Args, Serialize, Deserialize)]
pub struct ServeBenchArgs {
    /// Server root URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub base_url: String,
    /// API path: /v1/completions or /v1/chat/completions.
    #[arg(long, default_value = "/v1/completions")]
    pub endpoint: String,
    /// Model name sent in requests (default: the first id of GET /v1/models).
    #[arg(long)]
    pub model: Option<String>,
    /// Workload.
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Mean arrival rate in requests/s (Poisson), or `inf`.
    #[arg(long, default_value = "inf")]
    pub request_rate: RequestRate,
    /// Most requests in flight at once (default: unlimited).
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    /// Unmeasured requests sent first (same shape, different prompts).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Seconds one request may take in total.
    #[arg(long, default_value_t = 600.0)]
    pub request_timeout: f64,
    /// Seconds of silence between streamed chunks (after the first token) after which a
    /// request fails; waiting for the first token is bounded by --request-timeout only.
    #[arg(long, default_value_t = 120.0)]
    pub idle_timeout: f64,
    /// Tokenizer for building prompts: a GGUF or HF folder (default: the default model).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Sampling temperature sent with every request (0: greedy, the default, so runs are
    /// repeatable).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Send no temperature, so the server samples at its own default, as inference-perf
    /// and guidellm do (for comparing their numbers with this tool's).
    #[arg(long, conflicts_with = "temperature")]
    pub server_default_sampling: bool,
    /// Write the result as JSON here.
    #[arg(long)]
    pub result_json: Option<PathBuf>,
    /// Label stored in the JSON (e.g. `corvid`, `llama-server`).
    #[arg(long)]
    pub label: Option<String>,
    /// Read the server's /metrics before and after and report the deltas.
    #[arg(long)]
    pub scrape_metrics: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// Counter deltas read from the server's /metrics over the measured phase.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ServerCounters {
    /// `vllm_request_throughput` (finished requests).
    pub requests: Option<f64>,
    /// `vllm_generation_tokens_total`.
    pub generation_tokens: Option<f64>,
    /// `vllm_prompt_tokens_total`.
    pub prompt_tokens: Option<f64>,
}

/// Everything a serving run produces (the JSON file).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServeBenchResult {
    /// Free-form label of the system under test.
    pub label: Option<String>,
    /// When the run started (seconds since the Unix epoch).
    pub started_unix: u64,
    /// The arguments.
    pub args: ServeBenchArgs,
    /// The model name sent.
    pub model: String,
    /// Aggregates.
    pub metrics: ServeMetrics,
    /// Server-side counter deltas, with `--scrape-metrics`.
    pub server_counters: Option<ServerCounters>,
    /// Per-request results.
    pub requests: Vec<RequestResult>,
}

/// Mean-rate Poisson arrival offsets (seconds from start) for `n` requests.
pub fn arrival_offsets(rate: RequestRate, n: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xa771_7a15);
    let mut t = 0.0;
    (0..n)
        .map(|_| match rate {
            RequestRate::Infinite => 0.0,
            RequestRate::PerSecond(r) => {
                let at = t;
                let u: f64 = rng.gen::<f64>();
                t += -(1.0 - u).ln() / r;
                at
            }
        })
        .collect()
}

fn http_client(args: &ServeBenchArgs) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        // A fresh connection per request: servers that close idle keep-alive connections
        // (llama-server does) otherwise make a reused connection fail at send time.
        // Connecting to a local server costs well under a millisecond.
        .pool_max_idle_per_host(0)
        .build()
        .with_context(|| format!("building the HTTP client for {}", args.base_url))
}

async fn discover_model(client: &reqwest::Client, base: &str) -> Result<String> {
    let url = format!("{base}/v1/models");
    let v: serde_json::Value = client
        .get(&url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .json()
        .await
        .with_context(|| format!("GET {url}: not JSON"))?;
    v["data"][0]["id"]
        .as_str()
        .map(str::to_string)
        .context("GET /v1/models listed no model; pass --model")
}

/// Reads the counters the bench cross-checks from `GET {base}/metrics`.
pub async fn scrape_counters(client: &reqwest::Client, base: &str) -> Result<ServerCounters> {
    let text = client
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(ServerCounters {
        requests: metric_sum(&text, "vllm_request_throughput"),
        generation_tokens: metric_sum(&text, "vllm_generation_tokens_total"),
        prompt_tokens: metric_sum(&text, "vllm_prompt_tokens_total"),
    })
}

fn delta(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?)
}

/// Where and how requests are sent.
#[derive(Clone)]
pub struct Target {
    /// HTTP client (connection pool).
    pub client: reqwest::Client,
    /// Full endpoint URL.
    pub url: String,
    /// API flavour.
    pub api: Api,
    /// Model name sent.
    pub model: String,
    /// Temperature sent, or none for the server's default.
    pub temperature: Option<f64>,
    /// Per-request limits.
    pub timeouts: Timeouts,
}

/// Runs requests against `target` honouring arrival times and the concurrency cap;
/// returns per-request results (in input order) and the wall time.
pub async fn run_requests(
    target: &Target,
    specs: &[RequestSpec],
    offsets: &[f64],
    max_concurrency: Option<usize>,
    bar: &ProgressBar,
) -> (Vec<RequestResult>, f64) {
    let Target {
        client,
        url,
        api,
        model,
        temperature,
        timeouts,
    } = target;
    let (api, timeouts) = (*api, *timeouts);
    let sem = Arc::new(Semaphore::new(
        max_concurrency.unwrap_or(Semaphore::MAX_PERMITS).max(1),
    ));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(specs.len());
    for (spec, &at) in specs.iter().zip(offsets) {
        tokio::time::sleep_until((start + Duration::from_secs_f64(at)).into()).await;
        let (client, url, sem, bar) = (client.clone(), url.clone(), sem.clone(), bar.clone());
        let body = client::request_body(api, model, *temperature, spec);
        let prompt_len = spec.prompt_len();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.ok();
            let offset = start.elapsed().as_secs_f64();
            let mut r = client::send(&client, &url, api, &body, prompt_len, timeouts).await;
            r.start_offset = offset;
            bar.inc(1);
            r
        }));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await.unwrap_or_else(|e| RequestResult {
            error_kind: Some("panic".into()),
            error: Some(e.to_string()),
            ..Default::default()
        }));
    }
    (results, start.elapsed().as_secs_f64())
}

fn progress(n: usize, hidden: bool, msg: &'static str) -> ProgressBar {
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(n as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed} ({per_sec})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(msg);
    bar
}

/// Builds the workload with the tokenizer named by the flags.
pub fn build_workload(args: &ServeBenchArgs) -> Result<(Vec<RequestSpec>, Vec<RequestSpec>)> {
    let path = args
        .tokenizer
        .clone()
        .unwrap_or_else(corvid_model::default_model::default_model_path);
    let tok = corvid_model::load_tokenizer(&path)
        .with_context(|| format!("loading the tokenizer of {}", path.display()))?;
    Ok(workload_with(args, &tok))
}

/// Measured and warm-up requests for `args`, counted with `tok`.
pub fn workload_with(
    args: &ServeBenchArgs,
    tok: &dyn TokenCounter,
) -> (Vec<RequestSpec>, Vec<RequestSpec>) {
    let measured = workload::generate(&args.workload, tok);
    let warmup = workload::generate_n(
        &args.workload,
        args.warmup,
        args.workload.seed.wrapping_add(0x3a3a_3a3a),
        tok,
    );
    (measured, warmup)
}

/// Runs the serving benchmark with prebuilt requests (tests call this directly).
pub async fn run_with(
    args: &ServeBenchArgs,
    measured: &[RequestSpec],
    warmup: &[RequestSpec],
) -> Result<ServeBenchResult> {
    let base = args.base_url.trim_end_matches('/').to_string();
    let client = http_client(args)?;
    let model = match &args.model {
        Some(m) => m.clone(),
        None => discover_model(&client, &base).await?,
    };
    let url = format!("{base}{}", args.endpoint);
    let api = Api::from_endpoint(&args.endpoint);
    let timeouts = Timeouts {
        total: Duration::from_secs_f64(args.request_timeout.max(0.001)),
        idle: Duration::from_secs_f64(args.idle_timeout.max(0.001)),
    };
    let target = Target {
        client: client.clone(),
        url: url.clone(),
        api,
        model: model.clone(),
        temperature: (!args.server_default_sampling).then_some(args.temperature),
        timeouts,
    };
    if !warmup.is_empty() {
        let bar = progress(warmup.len(), args.no_progress, "warm-up");
        let conc = args
            .max_concurrency
            .unwrap_or(warmup.len())
            .min(warmup.len());
        let (res, _) =
            run_requests(&target, warmup, &vec![0.0; warmup.len()], Some(conc), &bar).await;
        bar.finish_and_clear();
        let failed = res.iter().filter(|r| !r.success).count();
        if failed > 0 {
            let example = res.iter().find_map(|r| r.error.clone()).unwrap_or_default();
            tracing::warn!(failed, %example, "warm-up requests failed");
        }
    }
    let before = if args.scrape_metrics {
        Some(scrape_counters(&client, &base).await?)
    } else {
        None
    };
    let offsets = arrival_offsets(args.request_rate, measured.len(), args.workload.seed);
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    tracing::info!(%url, %model, n = measured.len(), rate = ?args.request_rate, conc = ?args.max_concurrency, "benchmark starts");
    let bar = progress(measured.len(), args.no_progress, "requests");
    let (requests, duration) =
        run_requests(&target, measured, &offsets, args.max_concurrency, &bar).await;
    bar.finish_and_clear();
    let server_counters = match before {
        Some(b) => {
            // The server may count a request a moment after its stream ends.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let a = scrape_counters(&client, &base).await?;
            Some(ServerCounters {
                requests: delta(b.requests, a.requests),
                generation_tokens: delta(b.generation_tokens, a.generation_tokens),
                prompt_tokens: delta(b.prompt_tokens, a.prompt_tokens),
            })
        }
        None => None,
    };
    Ok(ServeBenchResult {
        label: args.label.clone(),
        started_unix,
        args: args.clone(),
        model,
        metrics: ServeMetrics::compute(&requests, duration),
        server_counters,
        requests,
    })
}

/// `corvid bench serve`.
pub fn run(args: ServeBenchArgs) -> Result<()> {
    let (measured, warmup) = build_workload(&args)?;
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    let result = rt.block_on(run_with(&args, &measured, &warmup))?;
    let title = format!(
        "Serving Benchmark Result{}",
        args.label
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default()
    );
    print!("{}", result.metrics.table(&title));
    if let Some(c) = &result.server_counters {
        println!(
            "server /metrics deltas: requests={:?} generation_tokens={:?} prompt_tokens={:?}",
            c.requests, c.generation_tokens, c.prompt_tokens
        );
    }
    if let Some(path) = &args.result_json {
        crate::write_json(path, &result)?;
    }
    Ok(())
}
