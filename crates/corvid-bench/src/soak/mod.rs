//! `corvid bench soak`: thousands of mixed requests (see [`mix`]) at a fixed concurrency
//! against a running server, then the checks of issue #17 on what the server says about
//! itself afterwards (see [`verdict`]): nothing failed, nothing is left running or held,
//! memory came back, and `/metrics` accounts for every request. Exits non-zero when a
//! check fails, so the same command is a test (`scripts/test.sh`) and a benchmark
//! (`bench/soak.sh`).

pub mod exchange;
pub mod mix;
pub mod verdict;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use verdict::{ServerState, Tally};

/// Flags of `corvid bench soak`.
#[derive(Clone, Debug, clap::Args)]
pub struct SoakArgs {
    /// The server, e.g. http://127.0.0.1:8000 (its /metrics must be on this port).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Requests in all, warm-up included.
    #[arg(long, default_value_t = 10_000)]
    pub requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// The first requests, after which resident memory is taken as the baseline.
    #[arg(long, default_value_t = 1_000)]
    pub warmup: u64,
    /// Largest `max_tokens` of a valid request (cancelled ones ask for twice as many).
    #[arg(long, default_value_t = 16)]
    pub max_tokens: u32,
    /// Seed of the request mix (same seed, same requests).
    #[arg(long, default_value_t = 17)]
    pub seed: u64,
    /// Allowed growth of resident memory from the end of warm-up to the end, in MiB.
    #[arg(long, default_value_t = 64.0)]
    pub rss_bound_mib: f64,
    /// Also write the summary as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Runs the soak; errs when the server cannot be reached or a check fails.
pub fn run(args: SoakArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(soak(args))
}

/// One sample of the server's resident memory.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct RssSample {
    /// Seconds since the soak started.
    pub secs: f64,
    /// Requests finished by then.
    pub done: u64,
    /// Resident bytes.
    pub bytes: f64,
}

async fn soak(args: SoakArgs) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/').to_string();
    // Idle connections are dropped well before the server's keep-alive timeout (5 s by
    // default), so a reused connection is rarely one the server is closing.
    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(1))
        .build()?;
    let (model, max_model_len) = model_info(&client, &base).await?;
    let before = ServerState::scrape(&client, &base).await?;
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let rss = Arc::new(Mutex::new(Vec::<RssSample>::new()));
    let sampler = tokio::spawn(sample_rss(
        client.clone(),
        base.clone(),
        Arc::clone(&done),
        Arc::clone(&rss),
        started,
    ));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, base, model) = (client.clone(), base.clone(), model.clone());
        let (next, done, tally) = (Arc::clone(&next), Arc::clone(&done), Arc::clone(&tally));
        let args = args.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.requests {
                    break;
                }
                let p = mix::plan(args.seed, i, &model, max_model_len, args.max_tokens);
                let (outcome, resent) = exchange::send(&client, &base, &p).await;
                tally
                    .lock()
                    .expect("tally lock")
                    .record(&p, &outcome, resent);
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d % 1000 == 0 {
                    eprintln!("{d} requests in {:.0} s", started.elapsed().as_secs_f64());
                }
            }
        }));
    }
    for w in workers {
        w.await.context("a soak worker panicked")?;
    }
    let run_secs = started.elapsed().as_secs_f64();
    let after = ServerState::settle(&client, &base).await?;
    sampler.abort();
    let rss = rss.lock().expect("rss lock").clone();
    let tally = Arc::try_unwrap(tally)
        .map_err(|_| anyhow::anyhow!("workers still hold the tally"))?
        .into_inner()
        .expect("tally lock");
    let v = verdict::Verdict::new(&args, tally, &before, &after, &rss, run_secs);
    v.print();
    if let Some(path) = &args.json {
        crate::write_json(path, &v)?;
    }
    if v.passed() {
        Ok(())
    } else {
        anyhow::bail!("the soak failed {} check(s)", v.failed_checks())
    }
}

/// The served model's id and context length, from `/v1/models`.
async fn model_info(client: &reqwest::Client, base: &str) -> anyhow::Result<(String, usize)> {
    let v: serde_json::Value = client
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?
        .json()
        .await?;
    let m = &v["data"][0];
    let id = m["id"].as_str().context("/v1/models lists no model")?;
    let len = m["max_model_len"]
        .as_u64()
        .context("/v1/models has no max_model_len")?;
    Ok((id.to_string(), len as usize))
}

/// Every half second, the server's resident memory (its own `/proc` reading, exported
/// as `vllm_process_resident_memory_bytes`).
async fn sample_rss(
    client: reqwest::Client,
    base: String,
    done: Arc<AtomicU64>,
    out: Arc<Mutex<Vec<RssSample>>>,
    started: Instant,
) {
    loop {
        if let Ok(s) = ServerState::scrape(&client, &base).await {
            out.lock().expect("rss lock").push(RssSample {
                secs: started.elapsed().as_secs_f64(),
                done: done.load(Ordering::Relaxed),
                bytes: s.rss_bytes,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
