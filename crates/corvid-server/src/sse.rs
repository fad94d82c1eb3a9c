//! Server-Sent Events framing as OpenAI streams it: each event is `data: <json>\n\n`,
//! the stream ends with `data: [DONE]\n\n`. Also the generic driver that turns an
//! engine [`RequestStream`] into those frames (a sample the engine failed is followed by
//! an OpenAI error object event, `data: {"error": {...}}`); dropping the response body (client gone)
//! drops the `RequestStream`, which aborts the request in the engine.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use corvid_engine::{FinishReason, RequestOutput, RequestStream};
use futures_util::stream;
use serde::Serialize;

use crate::error::ApiError;
use crate::protocol::Usage;
use crate::state::InflightGuard;

/// The last event of every stream.
pub const DONE_FRAME: &[u8] = b"data: [DONE]\n\n";

/// One `data: <json>\n\n` event.
pub fn frame<T: Serialize>(value: &T) -> Bytes {
    let mut buf = b"data: ".to_vec();
    serde_json::to_writer(&mut buf, value).expect("protocol types serialize");
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// Formats engine outputs as the chunks of one API (completions or chat).
pub trait ChunkFormat: Send + 'static {
    /// Events sent before any output (chat: the `role` deltas; completions: echo).
    fn start(&mut self) -> Vec<Bytes>;
    /// The event of one output, if it carries anything.
    fn output(&mut self, out: &RequestOutput) -> Option<Bytes>;
    /// The usage-only event (`stream_options.include_usage`).
    fn usage(&mut self, usage: Usage) -> Bytes;
}

/// Token counts gathered while a request runs.
#[derive(Debug, Default, Clone)]
pub struct UsageAcc {
    prompt_tokens: usize,
    cached_tokens: usize,
    completion: Vec<usize>,
}

impl UsageAcc {
    /// Starts counting for a prompt of `prompt_tokens` tokens.
    pub fn new(prompt_tokens: usize) -> Self {
        UsageAcc {
            prompt_tokens,
            ..Default::default()
        }
    }
    /// Records one output.
    pub fn record(&mut self, out: &RequestOutput) {
        if self.completion.len() <= out.index {
            self.completion.resize(out.index + 1, 0);
        }
        self.completion[out.index] = out.completion_tokens;
        self.cached_tokens = self.cached_tokens.max(out.cached_tokens);
        if out.prompt_tokens > 0 {
            self.prompt_tokens = out.prompt_tokens;
        }
    }
    /// The usage so far.
    pub fn usage(&self) -> Usage {
        Usage::new(
            self.prompt_tokens,
            self.completion.iter().sum(),
            self.cached_tokens,
        )
    }
}

struct Driver<F> {
    stream: Option<RequestStream>,
    fmt: F,
    pending: VecDeque<Bytes>,
    usage: UsageAcc,
    include_usage: bool,
    _guard: InflightGuard,
}

/// An SSE response streaming `stream` through `fmt` (its `x-request-id` header is set
/// by the middleware, like every response's).
pub fn stream_response<F: ChunkFormat>(
    stream: RequestStream,
    mut fmt: F,
    include_usage: bool,
    guard: InflightGuard,
) -> Response {
    let usage = UsageAcc::new(stream.prompt_token_ids.len());
    let pending: VecDeque<Bytes> = fmt.start().into();
    let driver = Driver {
        stream: Some(stream),
        fmt,
        pending,
        usage,
        include_usage,
        _guard: guard,
    };
    let body = stream::unfold(driver, |mut d| async move {
        loop {
            if let Some(b) = d.pending.pop_front() {
                return Some((Ok::<Bytes, Infallible>(b), d));
            }
            let s = d.stream.as_mut()?;
            match s.next().await {
                Some(out) => {
                    d.usage.record(&out);
                    if let Some(b) = d.fmt.output(&out) {
                        d.pending.push_back(b);
                    }
                    if out.finish_reason == Some(FinishReason::Error) {
                        // As vLLM streams a failure: an error event, then [DONE].
                        d.pending
                            .push_back(frame(&ApiError::engine_failed().body()));
                    }
                }
                None => {
                    d.stream = None;
                    if d.include_usage {
                        let u = d.usage.usage();
                        d.pending.push_back(d.fmt.usage(u));
                    }
                    d.pending.push_back(Bytes::from_static(DONE_FRAME));
                }
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_data_lines() {
        let b = frame(&serde_json::json!({"a": 1}));
        assert_eq!(&b[..], b"data: {\"a\":1}\n\n");
        assert!(DONE_FRAME.ends_with(b"\n\n"));
    }

    #[test]
    fn usage_sums_choices() {
        let mut u = UsageAcc::new(5);
        let mk = |index, completion_tokens| RequestOutput {
            index,
            text: String::new(),
            token_ids: vec![],
            logprobs: vec![],
            finish_reason: None,
            prompt_tokens: 5,
            completion_tokens,
            cached_tokens: 2,
        };
        u.record(&mk(0, 1));
        u.record(&mk(1, 3));
        u.record(&mk(0, 2));
        let usage = u.usage();
        assert_eq!(usage.completion_tokens, 5);
        assert_eq!(usage.total_tokens, 10);
        assert_eq!(usage.prompt_tokens_details.unwrap().cached_tokens, 2);
    }
}
