//! The metrics are true: a known workload against a fresh server (its own test binary,
//! so no other test's requests are counted) and the counters, histograms and gauges
//! agree with what the client sent, received and measured. Also the `/metrics` formats
//! and the metric flags, end to end.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, config, sample, scrape, sse_events, start, start_loading};
use serde_json::{json, Value};

/// What the client saw of one request.
struct Seen {
    prompt_tokens: u64,
    completion_tokens: u64,
    seconds: f64,
}

/// Request `i` of the workload: completions and chats, half of each streamed, some
/// stopping at EOS, all with a fixed `max_tokens`.
async fn request(base: &str, i: usize) -> Seen {
    let chat = i % 2 == 1;
    let stream = i % 4 >= 2;
    let (path, mut body) = if chat {
        let content = format!("Name {} colours of the rainbow.", 1 + i % 5);
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": content}]}),
        )
    } else {
        let prompt = format!("Count from {i} to twenty:");
        ("/v1/completions", json!({"prompt": prompt}))
    };
    body["max_tokens"] = json!(12);
    body["temperature"] = json!(0);
    body["ignore_eos"] = json!([false, true, true][i % 3]);
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let start = Instant::now();
    let r = client()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let usage: Value = if stream {
        let events = sse_events(&text);
        assert_eq!(events.last().unwrap(), "[DONE]");
        let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
        last["usage"].clone()
    } else {
        serde_json::from_str::<Value>(&text).unwrap()["usage"].clone()
    };
    Seen {
        prompt_tokens: usage["prompt_tokens"].as_u64().unwrap(),
        completion_tokens: usage["completion_tokens"].as_u64().unwrap(),
        seconds,
    }
}

/// Sum of every sample of `name` (over all label sets).
fn total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_agree_with_the_client() {
    const REQUESTS: usize = 12;
    let mut c = config();
    // Two running sequences at most: the twelve concurrent requests must queue.
    c.engine.max_num_seqs = 2;
    let srv = start(c);
    let base = srv.base.clone();

    // Watch the gauges while the workload runs.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (base, done) = (base.clone(), Arc::clone(&done));
        async move {
            let (mut running, mut waiting, mut kv) = (0f64, 0f64, 0f64);
            while !done.load(Ordering::SeqCst) {
                let m = scrape(&base).await;
                running = running.max(sample(&m, "vllm_running_requests{").unwrap());
                waiting = waiting.max(sample(&m, "vllm_waiting_requests{").unwrap());
                kv = kv.max(sample(&m, "vllm_kv_cache_usage_ratio{").unwrap());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (running, waiting, kv)
        }
    });
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move { request(&base, i).await })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let (running, waiting, kv) = watcher.await.unwrap();
    assert!(
        running > 0.0 && running <= 2.0,
        "running peaked at {running}"
    );
    assert!(waiting > 0.0, "waiting never above 0");
    assert!(kv > 0.0, "KV usage never above 0");

    let n = REQUESTS as f64;
    let prompt: u64 = seen.iter().map(|s| s.prompt_tokens).sum();
    let completion: u64 = seen.iter().map(|s| s.completion_tokens).sum();
    let gaps: u64 = seen.iter().map(|s| s.completion_tokens - 1).sum();
    let client_seconds: f64 = seen.iter().map(|s| s.seconds).sum();

    // Idle again: the gauges return to 0 (bounded wait for the engine's last step).
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = scrape(&base).await;
        let idle = ["vllm_running_requests{", "vllm_waiting_requests{"]
            .iter()
            .chain(&["vllm_kv_cache_usage_ratio{", "vllm:num_requests_running{"])
            .chain(&["vllm:num_requests_waiting{", "vllm:kv_cache_usage_perc{"])
            .all(|p| sample(&m, p) == Some(0.0));
        if idle {
            break m;
        }
        assert!(Instant::now() < deadline, "gauges not back to 0:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    assert_eq!(
        total(&m, "vllm_preemptions_total"),
        0.0,
        "no preemption expected"
    );
    assert_eq!(total(&m, "vllm_request_throughput"), n);
    assert_eq!(total(&m, "vllm:request_success_total"), n);
    assert_eq!(total(&m, "vllm_request_finished_total"), n);
    for counter in ["vllm_prompt_tokens_total", "vllm:prompt_tokens_total"] {
        assert_eq!(total(&m, counter), prompt as f64, "{counter}");
    }
    for counter in [
        "vllm_generation_tokens_total",
        "vllm:generation_tokens_total",
    ] {
        assert_eq!(total(&m, counter), completion as f64, "{counter}");
    }
    for h in [
        "vllm_request_latency_seconds",
        "vllm:e2e_request_latency_seconds",
        "vllm_time_to_first_token_seconds",
        "vllm:time_to_first_token_seconds",
        "vllm_request_queue_time_seconds",
        "vllm:request_prompt_tokens",
        "vllm:request_generation_tokens",
        "vllm:request_params_max_tokens",
        "vllm:request_max_num_generation_tokens",
    ] {
        assert_eq!(total(&m, &format!("{h}_count")), n, "{h}_count");
    }
    assert_eq!(total(&m, "vllm:request_prompt_tokens_sum"), prompt as f64);
    assert_eq!(
        total(&m, "vllm:request_generation_tokens_sum"),
        completion as f64
    );
    for h in [
        "vllm_inter_token_latency_seconds",
        "vllm:inter_token_latency_seconds",
    ] {
        assert_eq!(total(&m, &format!("{h}_count")), gaps as f64, "{h}_count");
    }
    let http = |h: &str| {
        sample(
            &m,
            &format!("vllm_http_requests_total{{handler=\"{h}\",method=\"POST\",status=\"200\""),
        )
        .unwrap()
    };
    assert_eq!(http("/v1/completions") + http("/v1/chat/completions"), n);

    // The server's latency is the part of the client's between the request reaching the
    // engine and its last token: never more than the client measured, and at least 80 %
    // of it (the rest is HTTP, JSON, tokenizing and the loopback, a few ms per request
    // against hundreds of ms of queueing and generation).
    let server_seconds = total(&m, "vllm_request_latency_seconds_sum");
    assert!(
        server_seconds <= client_seconds && server_seconds >= 0.8 * client_seconds,
        "server {server_seconds:.3}s vs client {client_seconds:.3}s"
    );
    srv.stop().unwrap();
}

const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[tokio::test(flavor = "multi_thread")]
async fn openmetrics_when_asked_text_otherwise() {
    let mut c = config();
    c.metrics_port = Some(0);
    let srv = start(c);
    for base in [&srv.base, srv.metrics_base.as_ref().unwrap()] {
        let get = |accept: Option<&'static str>| {
            let mut r = client().get(format!("{base}/metrics"));
            if let Some(a) = accept {
                r = r.header("accept", a);
            }
            async move {
                let r = r.send().await.unwrap();
                assert_eq!(r.status(), 200);
                let ct = r.headers()["content-type"].to_str().unwrap().to_string();
                (ct, r.text().await.unwrap())
            }
        };
        let (ct, om) = get(Some(PROMETHEUS_ACCEPT)).await;
        assert_eq!(
            ct,
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("# TYPE vllm_request_throughput unknown\n"));
        assert!(om.contains("# TYPE vllm:prompt_tokens counter\n"));
        assert!(om.contains("\nvllm:prompt_tokens_total{engine=\"0\",model_name="));
        for accept in [None, Some("text/plain;version=0.0.4"), Some("*/*")] {
            let (ct, text) = get(accept).await;
            assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8", "{accept:?}");
            assert!(text.contains("# TYPE vllm_request_throughput counter\n"));
            assert!(!text.contains("# EOF"));
        }
    }
    srv.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn metric_flags() {
    // --disable-metrics: /metrics is 404, generation still works.
    let mut c = config();
    c.metrics = None;
    let srv = start_loading(c);
    let r = client()
        .get(format!("{}/metrics", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client()
        .post(format!("{}/v1/completions", srv.base))
        .json(&json!({"prompt": "Hi", "max_tokens": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    srv.stop().unwrap();

    // --disable-vllm-compat-metrics and --histogram-buckets.
    let mut c = config();
    let opts = c.metrics.as_mut().unwrap();
    opts.vllm_compat = false;
    opts.buckets = vec!["vllm_request_latency_seconds=0.5,60".parse().unwrap()];
    let srv = start_loading(c);
    let m = scrape(&srv.base).await;
    assert!(!m.contains("vllm:"));
    assert!(
        m.contains("vllm_request_latency_seconds_bucket{model_name=\"tiny-qwen2\",le=\"60\"} 0")
    );
    assert_eq!(m.matches("vllm_request_latency_seconds_bucket{").count(), 3);
    srv.stop().unwrap();
}

/// The built-in dashboard: on the metrics listener when there is one (not on the API
/// port), its files embedded, its JSON the history of the same values `/metrics` shows.
#[tokio::test(flavor = "multi_thread")]
async fn dashboard_serves_the_history_of_metrics() {
    let mut c = config();
    c.metrics_port = Some(0);
    let srv = start(c);
    let mbase = srv.metrics_base.clone().unwrap();
    let get = |url: String| async move { client().get(url).send().await.unwrap() };
    // the API port has no dashboard when a metrics port is set
    assert_eq!(get(format!("{}/dashboard", srv.base)).await.status(), 404);
    let page = get(format!("{mbase}/dashboard")).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'self'"));
    let html = page.text().await.unwrap();
    for asset in [
        "uPlot.iife.min.js",
        "uPlot.min.css",
        "promql.js",
        "dashboard.js",
        "dashboard.css",
    ] {
        assert!(
            html.contains(&format!("dashboard/assets/{asset}")),
            "{asset}"
        );
        let r = get(format!("{mbase}/dashboard/assets/{asset}")).await;
        assert_eq!(r.status(), 200, "{asset}");
        assert!(r.text().await.unwrap().len() > 500, "{asset}");
    }
    let lic = get(format!("{mbase}/dashboard/assets/uPlot-LICENSE.txt")).await;
    assert!(lic.text().await.unwrap().contains("The MIT License"));
    assert_eq!(
        get(format!("{mbase}/dashboard/assets/nope.js"))
            .await
            .status(),
        404
    );
    let r = client()
        .get(format!("{mbase}/dashboard/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "/dashboard/ redirects to the page");

    // some traffic, then a full answer whose last sample equals /metrics
    for i in 0..3 {
        let r = client()
            .post(format!("{}/v1/completions", srv.base))
            .json(&json!({"prompt": format!("Count {i}"), "max_tokens": 3}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let m = scrape(&mbase).await;
    let full: Value = get(format!("{mbase}/dashboard/api/series"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(full["model"], "tiny-qwen2");
    assert_eq!(full["loaded"], true);
    let s = &full["series"];
    let cols: Vec<String> = serde_json::from_value(s["columns"].clone()).unwrap();
    assert_eq!(cols.len(), 91);
    assert_eq!(s["capacity"], 900);
    assert_eq!(s["bytes"], 900 * (8 + 8 * 91));
    let t = s["t"].as_array().unwrap();
    assert!(t.len() >= 2, "{s}");
    let col = |k: &str| {
        let i = cols.iter().position(|c| c == k).unwrap();
        s["v"][i]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_f64()
            .unwrap()
    };
    assert_eq!(col("vllm_request_throughput"), 3.0);
    assert_eq!(
        col("vllm_request_throughput"),
        sample(&m, "vllm_request_throughput{").unwrap()
    );
    assert_eq!(
        col("vllm_generation_tokens_total"),
        sample(&m, "vllm_generation_tokens_total{").unwrap()
    );
    assert_eq!(
        col("vllm_kv_cache_blocks_capacity"),
        sample(&m, "vllm_kv_cache_blocks_capacity{").unwrap()
    );
    assert_eq!(col("vllm_request_latency_seconds_bucket{le=\"+Inf\"}"), 3.0);
    let info: Vec<(String, String)> = serde_json::from_value(s["info"].clone()).unwrap();
    assert!(info.iter().any(|(k, _)| k == "max_num_seqs"), "{info:?}");

    // a delta: only newer samples, no column names
    let next = s["next"].as_u64().unwrap();
    let boot = s["boot"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let d: Value = get(format!(
        "{mbase}/dashboard/api/series?since={next}&boot={boot}"
    ))
    .await
    .json()
    .await
    .unwrap();
    let d = &d["series"];
    assert!(d.get("columns").is_none());
    assert_eq!(d["first"].as_u64().unwrap(), next);
    assert!(!d["t"].as_array().unwrap().is_empty());
    assert_eq!(d["v"].as_array().unwrap().len(), 91);
    srv.stop().unwrap();

    // without a metrics port it is on the API port; --disable-metrics turns it off
    let srv = start_loading(config());
    assert_eq!(get(format!("{}/dashboard", srv.base)).await.status(), 200);
    srv.stop().unwrap();
    let mut c = config();
    c.metrics = None;
    let srv = start_loading(c);
    for p in [
        "/dashboard",
        "/dashboard/api/series",
        "/dashboard/assets/dashboard.js",
    ] {
        assert_eq!(get(format!("{}{p}", srv.base)).await.status(), 404, "{p}");
    }
    srv.stop().unwrap();
}
