//! SIGTERM drains the server: /health turns 503, new requests are refused, the
//! in-flight stream finishes, `run` returns Ok; and `--shutdown-timeout` bounds the wait.
//! Its own test binary, because it signals its own process.

mod common;

use std::time::{Duration, Instant};

use corvid_engine::testing::start_tiny;
use corvid_server::{shutdown_signal, Server};
use serde_json::json;

fn sigterm_self() {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Least time a step of the test engine takes: the streams below (60 and 450 tokens)
/// must still be running when the signal arrives.
const STEP_TIME: Duration = Duration::from_millis(10);

/// Starts a server whose shutdown is the real SIGTERM/SIGINT handler.
fn start(timeout: Duration) -> (String, std::thread::JoinHandle<anyhow::Result<()>>) {
    let mut c = common::config();
    c.shutdown_timeout = timeout;
    let args = c.engine.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let server = Server::bind(c).await?;
            let engine = start_tiny("qwen2", STEP_TIME, args, server.stats_sink())?;
            let signal = shutdown_signal();
            tx.send(server.local_addr()).unwrap();
            server.run_with_engine(engine, signal).await
        })
    });
    let base = format!("http://{}", rx.recv().unwrap());
    common::wait_healthy(&base);
    (base, t)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_then_exits_ok() {
    let client = reqwest::Client::new();

    // 1) In-flight requests finish; new ones and /health get 503.
    let (base, server) = start(Duration::from_secs(60));
    let mut r = client
        .post(format!("{base}/v1/completions"))
        .json(&json!({"prompt": "Tell me about birds", "max_tokens": 60, "ignore_eos": true, "stream": true}))
        .send()
        .await
        .unwrap();
    assert!(r.chunk().await.unwrap().is_some());
    sigterm_self();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let h = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(h.status(), 503);
    let n = client
        .post(format!("{base}/v1/completions"))
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(n.status(), 503);
    let mut body = String::new();
    while let Some(c) = r.chunk().await.unwrap() {
        body.push_str(&String::from_utf8_lossy(&c));
    }
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    assert!(body.contains("\"finish_reason\":\"length\""), "{body}");
    let res = tokio::task::spawn_blocking(move || server.join().unwrap())
        .await
        .unwrap();
    assert!(res.is_ok(), "{res:?}");

    // 2) The timeout bounds the drain.
    let (base, server) = start(Duration::from_millis(500));
    let mut r = client
        .post(format!("{base}/v1/completions"))
        .json(&json!({"prompt": "Write forever", "max_tokens": 450, "ignore_eos": true, "stream": true}))
        .send()
        .await
        .unwrap();
    assert!(r.chunk().await.unwrap().is_some());
    let t0 = Instant::now();
    sigterm_self();
    let res = tokio::task::spawn_blocking(move || server.join().unwrap())
        .await
        .unwrap();
    assert!(res.is_ok(), "{res:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}
