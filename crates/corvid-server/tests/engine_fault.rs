//! Engine faults: the model panics inside a step (the test-only fault hook,
//! `corvid_engine::testing::start_tiny_panicking`) while streamed and non-streamed
//! requests run and more wait. Every one of them ends with an error — the streams with
//! an OpenAI error event, the others with a 500 —, new requests and /health get 503, and
//! the server returns an error (the process exits non-zero) within seconds.

mod common;

use std::time::Duration;

use common::{client, config, sse_events, start_over};
use corvid_engine::testing::start_tiny_panicking;
use serde_json::{json, Value};

/// The step that panics (about a second in): every request has been sent by then and
/// none has finished (each wants 200 tokens, two run at a time).
const PANIC_AT_STEP: usize = 50;

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_in_a_model_step_fails_every_request_and_the_server_exits_with_an_error() {
    let mut c = config();
    c.engine.max_num_seqs = 2;
    let srv = start_over(c, |args, sink| {
        start_tiny_panicking(
            "qwen2",
            Duration::from_millis(20),
            PANIC_AT_STEP,
            args,
            sink,
        )
    });
    let base = srv.base.clone();
    // Two streamed and two non-streamed requests (two run, two wait), each long enough
    // to be in flight when the step panics.
    let mut tasks = Vec::new();
    for stream in [true, false, true, false] {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let r = client()
                .post(format!("{base}/v1/chat/completions"))
                .json(&json!({"messages": [{"role": "user", "content": "Go on"}], "max_tokens": 200, "ignore_eos": true, "stream": stream}))
                .send()
                .await
                .unwrap();
            (stream, r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    for t in tasks {
        let (stream, status, body) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a request hung after the engine died")
            .unwrap();
        if stream {
            assert_eq!(status, 200, "{body}");
            let events = sse_events(&body);
            assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
            let err: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
            assert_eq!(err["error"]["code"], "engine_error", "{body}");
        } else {
            assert_eq!(status, 500, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"]["code"], "engine_error", "{body}");
        }
    }
    // Until the listeners close, /health and new requests are 503.
    if let Ok(r) = client().get(format!("{base}/health")).send().await {
        assert_eq!(r.status(), 503);
    }
    if let Ok(r) = client()
        .post(format!("{base}/v1/completions"))
        .json(&json!({"prompt": "Hello", "max_tokens": 2}))
        .send()
        .await
    {
        assert_eq!(r.status(), 503);
    }
    let exit = srv
        .wait_exit(Duration::from_secs(10))
        .expect("the server kept running after its engine died");
    let err = exit.expect_err("the server must exit with an error");
    assert!(err.to_string().contains("engine failed"), "{err:#}");
}
