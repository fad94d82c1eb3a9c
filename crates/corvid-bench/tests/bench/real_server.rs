//! Real-model tier: the load generator against a real `corvid serve` with the default
//! model: its request and token counts must agree with the server's own /metrics
//! counters. Skips, visibly, when the model is absent (fails under `CI=true`).

use corvid_bench::serve::{run_with, workload_with, RequestRate, ServeBenchArgs};
use corvid_bench::workload::{WorkloadArgs, WorkloadKind};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn corvid_bin() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CORVID_BIN").map(PathBuf::from),
        std::env::var_os("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("release/corvid")),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/corvid")),
    ];
    candidates.into_iter().flatten().find(|p| {
        p.exists()
            && Command::new(p)
                .args(["serve", "--help"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    })
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_agree_with_the_servers_metrics() {
    let bin = corvid_bin().expect("no release corvid binary with `serve`: run `cargo build --release -p corvid` (scripts/test.sh does)");
    let path = corvid_model::default_model::default_model_path();
    if corvid_model::default_model::installed_or_skip("counts_agree_with_the_servers_metrics", path)
        .is_none()
    {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Server(
        Command::new(&bin)
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--max-num-seqs", "8", "--kv-cache-memory", "256MiB"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn corvid serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let up = client
            .get(format!("{base}/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "corvid serve did not come up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let args = ServeBenchArgs {
        base_url: base,
        endpoint: "/v1/completions".into(),
        model: None,
        workload: WorkloadArgs {
            workload: WorkloadKind::Fixed,
            input_len: 32,
            output_len: 8,
            num_prompts: 6,
            system_prompt_len: 64,
            seed: 3,
            ..WorkloadArgs::default()
        },
        request_rate: RequestRate::Infinite,
        max_concurrency: Some(3),
        warmup: 1,
        request_timeout: 120.0,
        idle_timeout: 60.0,
        tokenizer: None,
        temperature: 0.0,
        server_default_sampling: false,
        result_json: None,
        label: Some("corvid".into()),
        scrape_metrics: true,
        no_progress: true,
    };
    let tok =
        corvid_model::load_tokenizer(&corvid_model::default_model::default_model_path()).unwrap();
    let (measured, warmup) = workload_with(&args, &tok);
    let res = run_with(&args, &measured, &warmup)
        .await
        .expect("bench run");
    let m = &res.metrics;
    assert_eq!((m.completed, m.failed), (6, 0), "{:?}", m.error_examples);
    assert_eq!(m.total_output_tokens, 48);
    assert_eq!(m.usage_missing, 0);
    let c = res.server_counters.expect("scraped");
    assert_eq!(c.requests, Some(6.0), "vllm_request_throughput delta");
    assert_eq!(
        c.generation_tokens,
        Some(48.0),
        "vllm_generation_tokens_total delta"
    );
    assert_eq!(
        c.prompt_tokens,
        Some(m.total_input_tokens as f64),
        "vllm_prompt_tokens_total delta"
    );
}
