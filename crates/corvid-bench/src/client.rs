//! One streaming OpenAI-compatible request, timed from the client: time to first token,
//! gaps between streamed chunks, end-to-end latency; token counts from the server's
//! `usage` (falling back to counting content chunks when a server sends none).

use crate::sse::SseParser;
use crate::workload::RequestSpec;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Which OpenAI API the load generator calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `/v1/completions` (a `prompt`).
    Completions,
    /// `/v1/chat/completions` (`messages`).
    Chat,
}

impl Api {
    /// The API an endpoint path speaks.
    pub fn from_endpoint(endpoint: &str) -> Self {
        if endpoint.contains("chat") {
            Self::Chat
        } else {
            Self::Completions
        }
    }
}

/// Limits of one request.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Whole request, connect to last byte.
    pub total: Duration,
    /// Longest silence between two chunks once the first token has arrived.
    pub idle: Duration,
}

/// What happened to one request.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RequestResult {
    /// The stream completed (`[DONE]` or a finish reason) without error.
    pub success: bool,
    /// Error class (`http_503`, `timeout`, `connect`, `incomplete_stream`, ...).
    pub error_kind: Option<String>,
    /// Error detail.
    pub error: Option<String>,
    /// Prompt tokens (server's `usage`, else the workload's count).
    pub prompt_tokens: usize,
    /// Generated tokens (server's `usage`, else content chunks seen).
    pub output_tokens: usize,
    /// True when the server reported `usage`.
    pub usage_reported: bool,
    /// Seconds from send to the first content chunk.
    pub ttft: Option<f64>,
    /// Seconds between consecutive content chunks.
    pub itl: Vec<f64>,
    /// Seconds from send to the end of the stream.
    pub latency: f64,
    /// Seconds from the benchmark's start to this request's send.
    pub start_offset: f64,
}

/// The JSON body of a streaming request for `spec`, at `temperature` (none: the server's
/// default).
pub fn request_body(api: Api, model: &str, temperature: Option<f64>, spec: &RequestSpec) -> Value {
    let mut body = json!({
        "model": model,
        "max_tokens": spec.output_len,
        "ignore_eos": true,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(t) = temperature {
        body["temperature"] = json!(t);
    }
    match api {
        Api::Completions => body["prompt"] = json!(spec.completion_text()),
        Api::Chat => {
            let mut messages = Vec::new();
            if let Some(s) = &spec.system {
                messages.push(json!({"role": "system", "content": s.text}));
            }
            messages.push(json!({"role": "user", "content": spec.user.text}));
            body["messages"] = json!(messages);
        }
    }
    body
}

fn chunk_text(api: Api, v: &Value) -> Option<&str> {
    let choice = v.get("choices")?.get(0)?;
    match api {
        Api::Completions => choice.get("text")?.as_str(),
        Api::Chat => choice.get("delta")?.get("content")?.as_str(),
    }
}

/// Sends one request and follows its stream; never panics, never outlives `timeouts`.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    api: Api,
    body: &Value,
    prompt_len: usize,
    timeouts: Timeouts,
) -> RequestResult {
    let start = Instant::now();
    let mut r = RequestResult {
        prompt_tokens: prompt_len,
        ..Default::default()
    };
    let outcome = tokio::time::timeout(
        timeouts.total,
        follow(client, url, api, body, timeouts.idle, start, &mut r),
    )
    .await;
    r.latency = start.elapsed().as_secs_f64();
    let err = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some((
            "timeout",
            format!("no complete response in {:?}", timeouts.total),
        )),
    };
    if let Some((kind, msg)) = err {
        r.success = false;
        r.error_kind = Some(kind.to_string());
        r.error = Some(msg);
    } else {
        r.success = true;
    }
    r
}

type Failure = (&'static str, String);

fn classify(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "incomplete_stream"
    } else {
        "transport"
    }
}

async fn follow(
    client: &reqwest::Client,
    url: &str,
    api: Api,
    body: &Value,
    idle: Duration,
    start: Instant,
    r: &mut RequestResult,
) -> Result<(), Failure> {
    // Headers and the first token may wait behind a queue: only the total timeout
    // bounds them. Once tokens flow, a gap longer than `idle` is a stall.
    let resp = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| (classify(&e), error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        let text = tokio::time::timeout(idle, resp.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let kind: &'static str = match status.as_u16() {
            400 => "http_400",
            404 => "http_404",
            413 => "http_413",
            429 => "http_429",
            500 => "http_500",
            503 => "http_503",
            _ => "http_other",
        };
        return Err((kind, format!("HTTP {status}: {}", truncate(&text, 300))));
    }
    let mut stream = resp.bytes_stream();
    let mut parser = SseParser::new();
    let mut last: Option<Instant> = None;
    let mut chunks = 0usize;
    let mut finished = false;
    loop {
        let next = if last.is_some() {
            tokio::time::timeout(idle, stream.next())
                .await
                .map_err(|_| ("timeout", format!("stream stalled for {idle:?}")))?
        } else {
            stream.next().await
        };
        let bytes = match next {
            None => break,
            Some(Ok(b)) => b,
            Some(Err(e)) => return Err(("incomplete_stream", error_chain(&e))),
        };
        for data in parser.push(&bytes).map_err(|e| ("bad_stream", e))? {
            if data.trim() == "[DONE]" {
                finished = true;
                continue;
            }
            let v: Value = serde_json::from_str(&data)
                .map_err(|e| ("bad_stream", format!("invalid JSON chunk: {e}")))?;
            if let Some(err) = v.get("error") {
                return Err(("stream_error", truncate(&err.to_string(), 300)));
            }
            if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                if let Some(c) = u.get("completion_tokens").and_then(Value::as_u64) {
                    r.output_tokens = c as usize;
                    r.usage_reported = true;
                }
                if let Some(p) = u.get("prompt_tokens").and_then(Value::as_u64) {
                    r.prompt_tokens = p as usize;
                }
            }
            let fin = v
                .get("choices")
                .and_then(|c| c.get(0))
                .and_then(|c| c.get("finish_reason"))
                .is_some_and(|f| !f.is_null());
            if chunk_text(api, &v).is_some_and(|t| !t.is_empty()) {
                let now = Instant::now();
                match last {
                    None => r.ttft = Some(now.duration_since(start).as_secs_f64()),
                    Some(prev) => r.itl.push(now.duration_since(prev).as_secs_f64()),
                }
                last = Some(now);
                chunks += 1;
            }
            finished |= fin;
        }
    }
    if !r.usage_reported {
        r.output_tokens = chunks;
    }
    if !finished && chunks == 0 {
        return Err(("incomplete_stream", "stream ended before any token".into()));
    }
    if !finished {
        return Err(("incomplete_stream", "stream ended without [DONE]".into()));
    }
    Ok(())
}

/// An error with its causes (`a: b: c`), since reqwest's own message hides them.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// `s` cut to `n` characters (with `…` when cut), for error messages.
pub(crate) fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::Prompt;

    /// Greedy by default; with no temperature the field is left out, so the server's own
    /// default applies (what inference-perf and guidellm send).
    #[test]
    fn the_temperature_is_sent_only_when_given() {
        let spec = RequestSpec {
            system: None,
            user: Prompt {
                text: "hi".into(),
                token_ids: vec![1],
            },
            output_len: 4,
        };
        let greedy = request_body(Api::Completions, "m", Some(0.0), &spec);
        assert_eq!(greedy["temperature"], 0.0);
        let default = request_body(Api::Chat, "m", None, &spec);
        assert!(default.get("temperature").is_none());
        assert_eq!(default["messages"][0]["content"], "hi");
    }
}
