//! Test helpers: a real corvid server on an ephemeral port, on its own thread and
//! runtime (so one server can outlive each test's runtime). The hermetic tier serves the
//! committed tiny qwen2 GGUF (`corvid_engine::testing`); the real-model tier
//! (`real_model.rs`) serves the installed default model.

#![allow(dead_code)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use corvid_engine::testing::{start_tiny, tiny_model};
use corvid_engine::{EngineArgs, EngineError, EngineHandle, KvCacheMemory, StatsSink};
use corvid_server::{Server, ServerConfig};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Context length the test servers use (small, so "prompt too long" is cheap; the tiny
/// model's whole context).
pub const MAX_MODEL_LEN: usize = 512;

/// The name the hermetic test servers serve the tiny model under.
pub const SERVED_NAME: &str = "tiny-qwen2";

/// A running test server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `http://127.0.0.1:PORT` of the metrics listener, if any.
    pub metrics_base: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

/// The engine arguments of the hermetic test servers (the tiny qwen2, which has a chat
/// template).
pub fn engine_args() -> EngineArgs {
    EngineArgs {
        model: tiny_model("qwen2"),
        served_model_name: Some(SERVED_NAME.into()),
        max_model_len: Some(MAX_MODEL_LEN),
        max_num_seqs: 8,
        max_num_batched_tokens: 512,
        kv_cache_memory: KvCacheMemory::Bytes(64 << 20),
        ..EngineArgs::default()
    }
}

/// A config on 127.0.0.1, any free port.
pub fn config() -> ServerConfig {
    let mut c = ServerConfig::new(engine_args());
    c.host = "127.0.0.1".into();
    c.port = 0;
    c.max_body_bytes = 64 * 1024;
    c.shutdown_timeout = Duration::from_secs(5);
    c
}

/// Least time a hermetic test engine's step takes: enough that requests spend visible
/// time queued and generating, as on a real model, without slowing the tests much.
pub const STEP_TIME: Duration = Duration::from_millis(2);

/// Starts a server with `config` over a test engine (the tiny model, [`STEP_TIME`] a
/// step, through [`Server::run_with_engine`]) and waits until /health is 200.
pub fn start(config: ServerConfig) -> TestServer {
    start_with(config, Some(STEP_TIME))
}

/// Starts a server with `config` that loads its model itself ([`Server::run`]), as
/// `corvid serve` does, and waits until /health is 200.
pub fn start_loading(config: ServerConfig) -> TestServer {
    start_with(config, None)
}

/// Starts a server over a test engine whose steps take `step_time` (`None`: the server
/// loads `config.engine.model` itself).
pub fn start_with(config: ServerConfig, step_time: Option<Duration>) -> TestServer {
    match step_time {
        Some(step) => start_over(config, move |args, sink| {
            start_tiny("qwen2", step, args, sink)
        }),
        None => start_server(config, None),
    }
}

/// How a test builds its engine from the config's engine arguments and the server's
/// statistics sink.
pub type EngineFactory = Box<
    dyn FnOnce(EngineArgs, Option<Arc<dyn StatsSink>>) -> Result<EngineHandle, EngineError> + Send,
>;

/// Starts a server over the engine `make` builds and waits until /health is 200.
pub fn start_over(
    config: ServerConfig,
    make: impl FnOnce(EngineArgs, Option<Arc<dyn StatsSink>>) -> Result<EngineHandle, EngineError>
        + Send
        + 'static,
) -> TestServer {
    start_server(config, Some(Box::new(make)))
}

/// Starts a server over `make`'s engine, or one that loads its model itself (`None`).
fn start_server(config: ServerConfig, make: Option<EngineFactory>) -> TestServer {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let config_engine = config.engine.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let server = Server::bind(config).await?;
            addr_tx
                .send((server.local_addr(), server.metrics_addr()))
                .unwrap();
            let stop = async move {
                let _ = stop_rx.await;
            };
            match make {
                Some(make) => {
                    let engine = make(config_engine, server.stats_sink())?;
                    server.run_with_engine(engine, stop).await
                }
                None => server.run(stop).await,
            }
        })
    });
    let (addr, maddr) = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server bound");
    let s = TestServer {
        base: format!("http://{addr}"),
        metrics_base: maddr.map(|a| format!("http://{a}")),
        stop: Some(stop_tx),
        thread: Some(thread),
    };
    wait_healthy(&s.base);
    s
}

/// Polls /health until 200 (60 s at most). Runs on its own thread, so it may be
/// called from async tests too.
pub fn wait_healthy(base: &str) {
    let url = format!("{base}/health");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        rt.block_on(async {
            loop {
                if let Ok(r) = reqwest::get(&url).await {
                    if r.status() == 200 {
                        return;
                    }
                }
                assert!(Instant::now() < deadline, "{url} never became healthy");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    })
    .join()
    .expect("health poller");
}

impl TestServer {
    /// Waits up to `limit` for `run` to return on its own (no shutdown signal); `None`
    /// if it is still running.
    pub fn wait_exit(mut self, limit: Duration) -> Option<anyhow::Result<()>> {
        let deadline = Instant::now() + limit;
        let thread = self.thread.take().unwrap();
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(thread.join().expect("server thread"))
    }

    /// Signals shutdown and waits for `run` to return.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().expect("server thread")
    }
}

/// An HTTP client with a generous timeout (generation on a shared CPU is slow).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Sends `req`; any transport failure fails the test.
async fn send(req: reqwest::RequestBuilder) -> reqwest::Response {
    req.send().await.unwrap()
}

/// `GET {url}`'s body as JSON.
pub async fn get_json(url: &str) -> serde_json::Value {
    send(client().get(url)).await.json().await.unwrap()
}

/// `POST {url}` with a JSON body; the response body as JSON.
pub async fn post_json(url: &str, body: &serde_json::Value) -> serde_json::Value {
    send(client().post(url).json(body))
        .await
        .json()
        .await
        .unwrap()
}

/// `GET {base}/metrics` in the default (text) format.
pub async fn scrape(base: &str) -> String {
    let req = client().get(format!("{base}/metrics"));
    send(req).await.text().await.unwrap()
}

/// The value of the first sample line starting with `prefix`.
pub fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Splits an SSE body into its `data:` payloads.
pub fn sse_events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|e| e.trim().strip_prefix("data: ").map(str::to_string))
        .collect()
}

/// Names documented in docs/metrics.md.
pub fn documented_metric_names() -> Vec<String> {
    let doc = include_str!("../../../../docs/metrics.md");
    let mut names: Vec<String> = doc
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|p| p.split('{').next().unwrap().to_string())
        .filter(|n| {
            (n.starts_with("vllm_") || n.starts_with("vllm:"))
                && !n.contains('[')
                && !n.contains('(')
        })
        .collect();
    names.sort();
    names.dedup();
    names
}
