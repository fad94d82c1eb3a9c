//! End-to-end tests, hermetic tier: the real server over the committed tiny model,
//! driven over HTTP.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{
    client, config, documented_metric_names, get_json, sample, scrape, sse_events, start,
    TestServer, MAX_MODEL_LEN, SERVED_NAME,
};
use serde_json::{json, Value};

/// One server shared by the tests that do not need special flags.
fn shared() -> &'static TestServer {
    static S: OnceLock<TestServer> = OnceLock::new();
    S.get_or_init(|| start(config()))
}

async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn assert_error(status: u16, body: &Value, want_status: u16, param: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    let e = &body["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(e["type"].is_string(), "{body}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "{body}"
    );
    if let Some(p) = param {
        assert_eq!(e["param"], p, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_version_and_models() {
    let base = &shared().base;
    let r = client().get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v = get_json(&format!("{base}/version")).await;
    assert!(v["version"].is_string());
    let m = get_json(&format!("{base}/v1/models")).await;
    assert_eq!(m["object"], "list");
    assert_eq!(m["data"][0]["id"], SERVED_NAME);
    assert_eq!(m["data"][0]["max_model_len"], MAX_MODEL_LEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn completion_with_usage_and_request_id() {
    let base = &shared().base;
    let r = client()
        .post(format!("{base}/v1/completions"))
        .header("X-Request-Id", "test-req-1")
        .json(&json!({"model": SERVED_NAME, "prompt": "The capital of France is", "max_tokens": 5, "temperature": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "test-req-1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["id"], "cmpl-test-req-1");
    assert!(v["choices"][0]["text"].is_string());
    let u = &v["usage"];
    let completion = u["completion_tokens"].as_u64().unwrap();
    assert!((1..=5).contains(&completion), "{v}");
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + completion
    );
    assert!(["stop", "length"].contains(&v["choices"][0]["finish_reason"].as_str().unwrap()));
    // A generated id when none is sent.
    let r = client()
        .post(format!("{base}/v1/completions"))
        .json(&json!({"prompt": "Hi", "max_tokens": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"].len(), 32);
}

#[tokio::test(flavor = "multi_thread")]
async fn completion_prompt_forms_echo_and_logprobs() {
    let base = &shared().base;
    let (s, tok) = post(base, "/tokenize", json!({"prompt": "Once upon a time"})).await;
    assert_eq!(s, 200);
    let ids: Vec<u64> = tok["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    assert_eq!(tok["count"], ids.len());
    let (s, v) = post(
        base,
        "/v1/completions",
        json!({"prompt": ids, "max_tokens": 4, "temperature": 0, "echo": true, "logprobs": 2, "ignore_eos": true}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let text = v["choices"][0]["text"].as_str().unwrap();
    assert!(text.contains("upon a time"), "{text}");
    let lp = &v["choices"][0]["logprobs"];
    assert_eq!(
        lp["tokens"].as_array().unwrap().len(),
        ids.len() + 4,
        "{lp}"
    );
    assert!(lp["token_logprobs"][0].is_null());
    let last = lp["token_logprobs"][ids.len() + 3].as_f64().unwrap();
    assert!(last <= 0.0);
    assert!(!lp["top_logprobs"][ids.len()]
        .as_object()
        .unwrap()
        .is_empty());
    // A list of one string, and `stop` as a string.
    let (s, v) = post(
        base,
        "/v1/completions",
        json!({"prompt": ["Hello"], "max_tokens": 3, "stop": "\n", "seed": 1}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // n = 2
    let (s, v) = post(
        base,
        "/v1/completions",
        json!({"prompt": "Hello", "max_tokens": 3, "n": 2, "temperature": 0.8}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["choices"].as_array().unwrap().len(), 2);
    assert_eq!(v["choices"][1]["index"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_completion_and_logprobs() {
    let base = &shared().base;
    let (s, v) = post(
        base,
        "/v1/chat/completions",
        json!({"model": SERVED_NAME, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}],
               "max_completion_tokens": 8, "temperature": 0, "logprobs": true, "top_logprobs": 3}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    let c = &v["choices"][0];
    assert_eq!(c["message"]["role"], "assistant");
    assert!(c["message"]["content"].is_string());
    let lp = c["logprobs"]["content"].as_array().unwrap();
    assert!(!lp.is_empty());
    assert_eq!(
        lp[0]["top_logprobs"].as_array().unwrap().len(),
        3,
        "{}",
        lp[0]
    );
    assert!(lp[0]["bytes"].is_array());
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 5);
}

async fn stream(base: &str, path: &str, body: Value) -> Vec<Value> {
    let r = client()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // Set once, by the middleware, on streamed responses too.
    assert_eq!(r.headers().get_all("x-request-id").iter().count(), 1);
    let text = r.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let events = sse_events(&text);
    assert_eq!(events.last().unwrap(), "[DONE]");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_stream_with_usage() {
    let base = &shared().base;
    let chunks = stream(
        base,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "Count to five"}], "max_tokens": 10, "temperature": 0,
               "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"].as_array().unwrap().len(), 0);
    assert_eq!(usage["usage"]["completion_tokens"], 10);
    let finish: Vec<_> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, vec!["length"]);
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!text.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn completion_stream() {
    let base = &shared().base;
    let chunks = stream(
        base,
        "/v1/completions",
        json!({"prompt": "One, two,", "max_tokens": 6, "ignore_eos": true, "stream": true}),
    )
    .await;
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "text_completion" && c.get("usage").is_none()));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokenize_detokenize_roundtrip() {
    let base = &shared().base;
    let (_, t) = post(
        base,
        "/tokenize",
        json!({"prompt": "hello world", "add_special_tokens": false, "return_token_strs": true}),
    )
    .await;
    assert_eq!(t["max_model_len"], MAX_MODEL_LEN);
    assert_eq!(
        t["token_strs"].as_array().unwrap().len(),
        t["count"].as_u64().unwrap() as usize
    );
    let (s, d) = post(base, "/detokenize", json!({"tokens": t["tokens"]})).await;
    assert_eq!(s, 200);
    assert_eq!(d["prompt"], "hello world");
    let (s, c) = post(
        base,
        "/tokenize",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(c["count"].as_u64().unwrap() > 2);
    let (s, e) = post(base, "/detokenize", json!({"tokens": [999999999]})).await;
    assert_error(s, &e, 400, Some("tokens"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_openai_errors() {
    let base = &shared().base;
    // Malformed JSON.
    let r = client()
        .post(format!("{base}/v1/completions"))
        .header("content-type", "application/json")
        .body("{\"prompt\": \"hi\",")
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    assert_error(s, &r.json().await.unwrap(), 400, None);
    // Wrong types.
    let (s, v) = post(
        base,
        "/v1/completions",
        json!({"prompt": "hi", "temperature": "hot"}),
    )
    .await;
    assert_error(s, &v, 400, Some("temperature"));
    let (s, v) = post(base, "/v1/chat/completions", json!({"messages": "hi"})).await;
    assert_error(s, &v, 400, Some("messages"));
    let (s, v) = post(base, "/v1/completions", json!({"max_tokens": 3})).await;
    assert_error(s, &v, 400, None);
    // Out of range.
    for (field, value) in [
        ("temperature", json!(-1)),
        ("top_p", json!(1.5)),
        ("n", json!(0)),
        ("logprobs", json!(50)),
        ("max_tokens", json!(0)),
    ] {
        let mut body = json!({"prompt": "hi"});
        body[field] = value;
        let (s, v) = post(base, "/v1/completions", body).await;
        assert_error(s, &v, 400, Some(field));
    }
    let (s, v) = post(base, "/v1/chat/completions", json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 30, "logprobs": true})).await;
    assert_error(s, &v, 400, Some("top_logprobs"));
    // A role OpenAI does not define names the message.
    let (s, v) = post(
        base,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "x"}, {"role": "robot", "content": "y"}]}),
    )
    .await;
    assert_error(s, &v, 400, Some("messages[1].role"));
    // Unknown model.
    let (s, v) = post(
        base,
        "/v1/completions",
        json!({"model": "gpt-9", "prompt": "hi"}),
    )
    .await;
    assert_error(s, &v, 404, Some("model"));
    assert_eq!(v["error"]["code"], "model_not_found");
    // Prompt longer than the context; prompt + max_tokens over the context.
    let long = "word ".repeat(MAX_MODEL_LEN + 50);
    let (s, v) = post(base, "/v1/completions", json!({"prompt": long})).await;
    assert_error(s, &v, 400, Some("prompt"));
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    let (s, v) = post(
        base,
        "/v1/completions",
        json!({"prompt": "hi", "max_tokens": MAX_MODEL_LEN}),
    )
    .await;
    assert_error(s, &v, 400, Some("max_tokens"));
    // Token id outside the vocabulary.
    let (s, v) = post(base, "/v1/completions", json!({"prompt": [1, 4000000]})).await;
    assert_error(s, &v, 400, Some("prompt"));
    // Unknown route.
    let r = client()
        .get(format!("{base}/v2/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_body_is_413() {
    let base = &shared().base;
    let big = "x".repeat(200 * 1024);
    let (s, v) = post(base, "/v1/completions", json!({"prompt": big})).await;
    assert_error(s, &v, 413, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_guards_v1_but_not_health_or_metrics() {
    let mut c = config();
    c.api_key = Some("sekrit".into());
    c.metrics_port = Some(0);
    let srv = start(c);
    let base = &srv.base;
    let url = format!("{base}/v1/models");
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert_eq!(
        client()
            .get(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client()
            .get(&url)
            .bearer_auth("sekrit")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = client()
        .post(format!("{base}/v1/completions"))
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        client()
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // The separate metrics listener serves the same registry.
    let m = scrape(srv.metrics_base.as_deref().unwrap()).await;
    assert!(
        m.contains("vllm_http_requests_total{handler=\"/v1/models\",method=\"GET\",status=\"200\""),
        "{m}"
    );
    srv.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn full_queue_is_503_with_retry_after() {
    let mut c = config();
    c.engine.max_num_seqs = 1;
    c.engine.max_waiting_requests = 1;
    let srv = start(c);
    let base = srv.base.clone();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let r = client()
                .post(format!("{base}/v1/completions"))
                .json(&json!({"prompt": "Tell me a story", "max_tokens": 48, "ignore_eos": true}))
                .send()
                .await
                .unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let s = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (s, retry, body)
        }));
    }
    let mut ok = 0;
    let mut full = 0;
    for t in tasks {
        let (s, retry, body) = t.await.unwrap();
        match s {
            200 => ok += 1,
            503 => {
                full += 1;
                assert_eq!(retry.as_deref(), Some("1"));
                assert_eq!(body["error"]["code"], "queue_full");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok >= 1 && full >= 1, "ok={ok} full={full}");
    srv.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_aborts_the_request() {
    let srv = start(config());
    let base = srv.base.clone();
    let mut r = client()
        .post(format!("{base}/v1/completions"))
        .json(&json!({"prompt": "Write a long essay", "max_tokens": 400, "ignore_eos": true, "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut got = 0;
    while got < 3 {
        if r.chunk().await.unwrap().is_some() {
            got += 1;
        }
    }
    drop(r);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = scrape(&base).await;
        let aborted = sample(&m, "vllm_request_aborted_total{").unwrap_or(0.0);
        let running = sample(&m, "vllm:num_requests_running{").unwrap_or(1.0);
        if aborted >= 1.0 && running == 0.0 {
            assert_eq!(
                sample(&m, "vllm_request_finished_total{finished_reason=\"abort\""),
                Some(1.0)
            );
            break;
        }
        assert!(Instant::now() < deadline, "request not aborted:\n{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    srv.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_expose_every_documented_name() {
    let base = &shared().base;
    let (s, _) = post(
        base,
        "/v1/completions",
        json!({"prompt": "Metrics please", "max_tokens": 4, "ignore_eos": true}),
    )
    .await;
    assert_eq!(s, 200);
    let r = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let m = r.text().await.unwrap();
    let names = documented_metric_names();
    assert!(names.len() > 50, "{names:?}");
    for name in names {
        let found = m.lines().filter(|l| !l.starts_with('#')).any(|l| {
            l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name}_bucket{{"))
        });
        assert!(found, "{name} missing from /metrics");
        assert!(m.contains(&format!("# HELP {name} ")), "{name} has no help");
    }
    let model = format!("model_name=\"{SERVED_NAME}\"");
    assert!(m
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .all(|l| l.contains(&model)));
    assert!(sample(&m, "vllm_request_throughput{").unwrap() >= 1.0);
    assert!(sample(&m, "vllm_generation_tokens_total{").unwrap() >= 4.0);
    assert!(sample(&m, "vllm_kv_cache_blocks_capacity{").unwrap() > 0.0);
    assert!(sample(&m, "vllm_process_resident_memory_bytes{").unwrap() > 1e6);
    assert!(m.contains("vllm_http_requests_total{handler=\"/v1/completions\",method=\"POST\""));
    assert!(m.contains("vllm_engine_info{block_size=\"16\""));
}
