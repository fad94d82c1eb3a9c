//! Real-model tier: `corvid serve`'s path with the installed default model (the server
//! loads it, serves it under its own name, and it generates text). Skips, visibly,
//! when the model is absent; fails under `CI=true`.

mod common;

use common::{get_json, post_json, start_loading, MAX_MODEL_LEN};
use corvid_engine::EngineArgs;
use corvid_model::default_model::{default_model_path, installed_or_skip, DEFAULT_MODEL_NAME};
use corvid_server::ServerConfig;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn default_model_is_served_under_its_name_and_completes() {
    let test = "default_model_is_served_under_its_name_and_completes";
    if installed_or_skip(test, default_model_path()).is_none() {
        return;
    }
    let config = ServerConfig {
        engine: EngineArgs {
            model: default_model_path(),
            served_model_name: None,
            ..common::engine_args()
        },
        ..common::config()
    };
    let srv = start_loading(config);
    let base = &srv.base;
    let m = get_json(&format!("{base}/v1/models")).await;
    assert_eq!(m["data"][0]["id"], DEFAULT_MODEL_NAME);
    assert_eq!(m["data"][0]["max_model_len"], MAX_MODEL_LEN);
    let body = json!({"model": DEFAULT_MODEL_NAME,
                      "messages": [{"role": "user", "content": "What is the capital of France?"}],
                      "max_tokens": 16, "temperature": 0});
    let v = post_json(&format!("{base}/v1/chat/completions"), &body).await;
    // Greedy SmolLM2-135M answers in French, not with a city: only check it is text.
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.split_whitespace().count() >= 3, "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 16, "{v}");
    srv.stop().unwrap();
}
