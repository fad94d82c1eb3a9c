//! Sends one planned soak request and judges what came back: a complete, well-formed
//! answer, a deliberate cancellation, an expected refusal, or a failure with its reason.

use futures_util::StreamExt;
use serde_json::Value;
use std::collections::BTreeMap;

use super::mix::Planned;
use crate::client::{error_chain, truncate};
use crate::sse::SseParser;

/// How one soak request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 200 whose every sample ended with a finish reason (the reasons, by sample).
    Completed(Vec<String>),
    /// The client cut it on purpose (mid-stream drop or its timeout).
    Cancelled,
    /// An invalid request refused with this 4xx status, as it should be.
    Refused(u16),
    /// The connection failed while the request was being sent (nothing came back).
    Reset(String),
    /// Anything else: a 5xx, a transport error, a malformed or incomplete answer.
    Failed(String),
}

/// Sends `p` to `base` and classifies the result. A request whose (reused) connection
/// the server reset before answering is sent once more, as the OpenAI client does: that
/// is HTTP/1.1's keep-alive race (the server closes an idle connection as the client
/// reuses it), which no server avoids. Returns the outcome and whether it was resent.
pub async fn send(client: &reqwest::Client, base: &str, p: &Planned) -> (Outcome, bool) {
    let attempt = || async {
        match p.client_timeout {
            Some(t) => tokio::time::timeout(t, exchange(client, base, p))
                .await
                .unwrap_or(Outcome::Cancelled),
            None => exchange(client, base, p).await,
        }
    };
    match attempt().await {
        Outcome::Reset(_) => match attempt().await {
            Outcome::Reset(why) => (Outcome::Failed(why), true),
            o => (o, true),
        },
        o => (o, false),
    }
}

async fn exchange(client: &reqwest::Client, base: &str, p: &Planned) -> Outcome {
    let resp = match client
        .post(format!("{base}{}", p.path))
        .header("content-type", "application/json")
        .body(p.body.clone())
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) if e.is_request() && !e.is_timeout() => {
            return Outcome::Reset(format!("sending: {}", error_chain(&e)))
        }
        Err(e) => return Outcome::Failed(format!("transport: {}", error_chain(&e))),
    };
    let status = resp.status().as_u16();
    if status != 200 {
        let text = resp.text().await.unwrap_or_default();
        return match (p.kind.is_valid(), status) {
            (false, 400..=499) => Outcome::Refused(status),
            _ => Outcome::Failed(format!("HTTP {status}: {}", truncate(&text, 200))),
        };
    }
    if !p.kind.is_valid() {
        return Outcome::Failed(format!("an invalid {} request got 200", p.kind.name()));
    }
    let result = if p.stream {
        read_stream(resp, p).await
    } else {
        match resp.json::<Value>().await {
            Ok(v) => judge_choices(v["choices"].as_array().map_or(&[], Vec::as_slice), p).map(Some),
            Err(e) => Err(format!("body: {}", error_chain(&e))),
        }
    };
    match result {
        Ok(Some(reasons)) => Outcome::Completed(reasons),
        Ok(None) => Outcome::Cancelled,
        Err(e) => Outcome::Failed(e),
    }
}

/// Follows a stream to `[DONE]`, or drops it after `cancel_after_chunks` content chunks
/// (`Ok(None)`). Returns each sample's finish reason.
async fn read_stream(resp: reqwest::Response, p: &Planned) -> Result<Option<Vec<String>>, String> {
    let mut parser = SseParser::new();
    let mut stream = resp.bytes_stream();
    let mut texts: BTreeMap<u64, String> = BTreeMap::new();
    let mut reasons: BTreeMap<u64, String> = BTreeMap::new();
    let mut chunks = 0;
    let mut done = false;
    while let Some(bytes) = stream.next().await {
        let bytes = bytes.map_err(|e| format!("stream: {}", error_chain(&e)))?;
        for data in parser.push(&bytes)? {
            if data.trim() == "[DONE]" {
                done = true;
                continue;
            }
            let v: Value = serde_json::from_str(&data).map_err(|e| format!("chunk: {e}"))?;
            if let Some(err) = v.get("error") {
                return Err(format!("error event: {}", truncate(&err.to_string(), 200)));
            }
            for c in v["choices"].as_array().into_iter().flatten() {
                let i = c["index"].as_u64().unwrap_or(0);
                let piece = c["delta"]["content"].as_str().or(c["text"].as_str());
                if let Some(t) = piece.filter(|t| !t.is_empty()) {
                    texts.entry(i).or_default().push_str(t);
                    chunks += 1;
                }
                if let Some(r) = c["finish_reason"].as_str() {
                    reasons.insert(i, r.to_string());
                }
            }
            if p.cancel_after_chunks > 0 && chunks >= p.cancel_after_chunks {
                return Ok(None);
            }
        }
    }
    if !done {
        return Err("stream ended without [DONE]".into());
    }
    let choices: Vec<Value> = (0..p.n as u64)
        .map(|i| {
            serde_json::json!({
                "text": texts.get(&i).cloned().unwrap_or_default(),
                "finish_reason": reasons.get(&i),
                "logprobs": Value::Null,
            })
        })
        .collect();
    judge_choices(&choices, p).map(Some)
}

/// Checks a complete answer: `n` samples, each finished for `stop` or `length`, with
/// logprobs when asked, and no stop string left in the text.
fn judge_choices(choices: &[Value], p: &Planned) -> Result<Vec<String>, String> {
    if choices.len() != p.n {
        return Err(format!("{} choices for n = {}", choices.len(), p.n));
    }
    let mut reasons = Vec::new();
    for c in choices {
        let reason = c["finish_reason"].as_str().unwrap_or("none");
        if !matches!(reason, "stop" | "length") {
            return Err(format!("finish_reason {reason}"));
        }
        if p.logprobs && !p.stream && c["logprobs"].is_null() {
            return Err("logprobs asked for, none returned".into());
        }
        let text = c["text"]
            .as_str()
            .or(c["message"]["content"].as_str())
            .unwrap_or("");
        if let Some(s) = p.stop.iter().find(|s| text.contains(s.as_str())) {
            return Err(format!("stop string {s:?} left in the text"));
        }
        reasons.push(reason.to_string());
    }
    Ok(reasons)
}
