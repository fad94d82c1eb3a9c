//! Overload: a flood of ten times the server's capacity (`--max-num-seqs` running plus
//! `--max-waiting-requests` waiting). Every request beyond it gets 503 with
//! `Retry-After` at once (before any admitted request has finished), the waiting queue
//! never grows past its limit, the rejections are counted, and resident memory stays
//! flat from one flood to the next. Its own test binary, so the process's memory is the
//! flood's alone.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{client, config, sample, scrape, start_with};
use serde_json::json;

const RUNNING: usize = 2;
const WAITING: usize = 4;
const FLOOD: usize = 10 * (RUNNING + WAITING);
/// Slow enough steps that an admitted request (60 tokens) takes over a second, so a
/// refusal that waited for a slot would arrive after a completion.
const STEP: Duration = Duration::from_millis(20);

/// What one flood saw.
struct Flood {
    ok: usize,
    rejected: usize,
    /// Rejections received after some admitted request had already completed.
    late_rejections: usize,
    max_waiting: f64,
}

async fn flood(base: &str) -> Flood {
    let completed = Arc::new(AtomicUsize::new(0));
    let late = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // Watches both waiting gauges for as long as the flood runs.
    let watcher = {
        let (base, done) = (base.to_string(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut max: f64 = 0.0;
            while !done.load(Ordering::SeqCst) {
                let m = scrape(&base).await;
                for g in ["vllm:num_requests_waiting{", "vllm_waiting_requests{"] {
                    max = max.max(sample(&m, g).expect(g));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            max
        })
    };
    let mut tasks = Vec::new();
    for i in 0..FLOOD {
        let (base, completed, late) = (base.to_string(), completed.clone(), late.clone());
        tasks.push(tokio::spawn(async move {
            let r = client()
                .post(format!("{base}/v1/completions"))
                .json(&json!({"prompt": format!("Flood request {i}"), "max_tokens": 60, "ignore_eos": true}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            if status == 503 {
                if completed.load(Ordering::SeqCst) > 0 {
                    late.fetch_add(1, Ordering::SeqCst);
                }
                assert_eq!(r.headers()["retry-after"], "1");
            }
            let body: serde_json::Value = r.json().await.unwrap();
            match status {
                200 => {
                    assert_eq!(body["choices"][0]["finish_reason"], "length", "{body}");
                    completed.fetch_add(1, Ordering::SeqCst);
                }
                503 => assert_eq!(body["error"]["code"], "queue_full", "{body}"),
                other => panic!("unexpected {other}: {body}"),
            }
            status
        }));
    }
    let mut f = Flood {
        ok: 0,
        rejected: 0,
        late_rejections: 0,
        max_waiting: 0.0,
    };
    for t in tasks {
        match t.await.unwrap() {
            200 => f.ok += 1,
            _ => f.rejected += 1,
        }
    }
    done.store(true, Ordering::SeqCst);
    f.max_waiting = watcher.await.unwrap();
    f.late_rejections = late.load(Ordering::SeqCst);
    f
}

/// `vllm_request_rejected_total{reason="queue_full"}`.
fn queue_full_rejections(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("vllm_request_rejected_total{") && l.contains("reason=\"queue_full\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("rejection counter")
}

fn rss(metrics: &str) -> f64 {
    sample(metrics, "vllm_process_resident_memory_bytes{").expect("rss gauge")
}

/// The metrics once the KV gauge has come back to 0 (at most 2 s): the engine updates
/// its gauges at the end of the step that finished the last request, which can be a
/// moment after that request's response reached the client.
async fn settled(base: &str) -> String {
    for _ in 0..100 {
        let m = scrape(base).await;
        if sample(&m, "vllm_kv_cache_blocks_used{") == Some(0.0) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    scrape(base).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_ten_times_capacity_is_refused_at_once_with_a_bounded_queue_and_flat_memory() {
    let mut c = config();
    c.engine.max_num_seqs = RUNNING;
    c.engine.max_waiting_requests = WAITING;
    let srv = start_with(c, Some(STEP));
    let base = srv.base.clone();
    let mut rss_after = Vec::new();
    let mut rejected_total = 0;
    for round in 0..3 {
        let f = flood(&base).await;
        assert!(
            f.ok >= WAITING && f.ok < FLOOD,
            "round {round}: {} admitted of {FLOOD}",
            f.ok
        );
        assert_eq!(f.ok + f.rejected, FLOOD);
        assert_eq!(
            f.late_rejections, 0,
            "round {round}: refusals waited for a slot"
        );
        assert!(
            f.max_waiting <= WAITING as f64,
            "round {round}: waiting reached {} > {WAITING}",
            f.max_waiting
        );
        rejected_total += f.rejected;
        let m = settled(&base).await;
        assert_eq!(queue_full_rejections(&m), rejected_total as f64, "{m}");
        assert_eq!(sample(&m, "vllm_kv_cache_blocks_used{"), Some(0.0));
        rss_after.push(rss(&m));
        eprintln!(
            "flood {round}: {} admitted, {} refused, waiting peaked at {}, RSS {:.1} MiB",
            f.ok,
            f.rejected,
            f.max_waiting,
            rss(&m) / 1048576.0
        );
    }
    // The first flood warms allocator pools and connection buffers; later ones must not
    // add to them (a queue growing with refused requests would).
    let growth = rss_after[2] - rss_after[0];
    assert!(
        growth < 16.0 * 1024.0 * 1024.0,
        "resident memory grew {growth} bytes from flood 1 to flood 3: {rss_after:?}"
    );
    srv.stop().unwrap();
}
