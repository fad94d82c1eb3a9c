//! The load generator against the misbehaving fake server: it never hangs, counts every
//! failure by class, and takes token counts from `usage`.

use super::fake_server;
use super::workload::WordTokenizer;
use corvid_bench::serve::{run_with, workload_with, RequestRate, ServeBenchArgs};
use corvid_bench::workload::{WorkloadArgs, WorkloadKind};
use std::time::{Duration, Instant};

fn args(base: String, endpoint: &str, n: usize, conc: Option<usize>) -> ServeBenchArgs {
    ServeBenchArgs {
        base_url: base,
        endpoint: endpoint.into(),
        model: Some("fake".into()),
        workload: WorkloadArgs {
            workload: WorkloadKind::Fixed,
            input_len: 16,
            output_len: 5,
            num_prompts: n,
            system_prompt_len: 32,
            seed: 1,
            ..WorkloadArgs::default()
        },
        request_rate: RequestRate::Infinite,
        max_concurrency: conc,
        warmup: 0,
        request_timeout: 3.0,
        idle_timeout: 1.0,
        tokenizer: None,
        temperature: 0.0,
        server_default_sampling: false,
        result_json: None,
        label: None,
        scrape_metrics: false,
        no_progress: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_every_failure_and_never_hangs() {
    let addr = fake_server::start(true).await;
    let a = args(format!("http://{addr}"), "/v1/completions", 10, Some(4));
    let (measured, warmup) = workload_with(&a, &WordTokenizer);
    let t0 = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(30), run_with(&a, &measured, &warmup))
        .await
        .expect("the load generator hung")
        .expect("run");
    let m = &res.metrics;
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t0.elapsed()
    );
    // 10 requests over a cycle of 5 behaviours: 2 of each.
    assert_eq!(m.completed, 2, "{:?}", m.errors);
    assert_eq!(m.failed, 8);
    assert_eq!(m.errors.get("http_500"), Some(&2));
    assert_eq!(m.errors.get("timeout"), Some(&2), "{:?}", m.error_examples);
    assert_eq!(
        m.errors.get("incomplete_stream"),
        Some(&4),
        "{:?}",
        m.error_examples
    );
    assert_eq!(m.total_output_tokens, 10);
    assert_eq!(m.total_input_tokens, 14);
    assert_eq!(m.ttft_ms.count, 2);
    assert_eq!(m.itl_ms.count, 8);
    assert_eq!(res.requests.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_endpoint_and_concurrency_cap() {
    let addr = fake_server::start(false).await;
    let a = args(
        format!("http://{addr}/"),
        "/v1/chat/completions",
        12,
        Some(3),
    );
    let (measured, warmup) = workload_with(&a, &WordTokenizer);
    let res = run_with(&a, &measured, &warmup).await.expect("run");
    let m = &res.metrics;
    assert_eq!((m.completed, m.failed), (12, 0), "{:?}", m.error_examples);
    assert_eq!(m.total_output_tokens, 60);
    assert_eq!(m.usage_missing, 0);
    assert!(m.output_throughput > 0.0 && m.request_throughput > 0.0);
    assert!(m.ttft_ms.p50 > 0.0 && m.e2el_ms.p99 >= m.e2el_ms.p50);
    // With at most 3 in flight, request k starts only after an earlier one ended.
    let mut starts: Vec<f64> = res.requests.iter().map(|r| r.start_offset).collect();
    starts.sort_by(f64::total_cmp);
    assert!(
        starts[3] > 0.005,
        "the 4th request started at {}",
        starts[3]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_fails_fast() {
    // Bind then drop a listener: the port refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = args(
        format!("http://127.0.0.1:{port}"),
        "/v1/completions",
        5,
        None,
    );
    let (measured, warmup) = workload_with(&a, &WordTokenizer);
    let res = tokio::time::timeout(Duration::from_secs(20), run_with(&a, &measured, &warmup))
        .await
        .expect("hung")
        .expect("run");
    assert_eq!(res.metrics.failed, 5);
    assert_eq!(
        res.metrics.errors.get("connect"),
        Some(&5),
        "{:?}",
        res.metrics.error_examples
    );
}
