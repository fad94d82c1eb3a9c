//! A tiny OpenAI-style SSE server that misbehaves on purpose: by request number it
//! answers properly, with HTTP 500, drops the connection mid-stream, stalls forever,
//! or ends the stream without `[DONE]`.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the server does with a request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Behaviour {
    Ok,
    Error500,
    Drop,
    Stall,
    Truncate,
}

/// The cycle of behaviours in `mixed` mode.
pub const CYCLE: [Behaviour; 5] = [
    Behaviour::Ok,
    Behaviour::Error500,
    Behaviour::Drop,
    Behaviour::Stall,
    Behaviour::Truncate,
];

struct Fake {
    counter: AtomicUsize,
    mixed: bool,
}

type Chunk = Result<Bytes, std::io::Error>;

fn event(v: &Value) -> Chunk {
    Ok(Bytes::from(format!("data: {v}\n\n")))
}

fn token_chunk(chat: bool, last: bool) -> Value {
    let fin = if last { json!("length") } else { Value::Null };
    if chat {
        json!({"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": fin}]})
    } else {
        json!({"choices": [{"index": 0, "text": "a", "finish_reason": fin}]})
    }
}

async fn handle(fake: Arc<Fake>, chat: bool, body: Value) -> Response {
    let i = fake.counter.fetch_add(1, Ordering::SeqCst);
    let b = if fake.mixed {
        CYCLE[i % CYCLE.len()]
    } else {
        Behaviour::Ok
    };
    let n = body["max_tokens"].as_u64().unwrap_or(4) as usize;
    if b == Behaviour::Error500 {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "boom"}})),
        )
            .into_response();
    }
    let tokens = stream::iter(0..n).then(move |k| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        event(&token_chunk(chat, k + 1 == n))
    });
    let usage = json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": n + 7}});
    let body: Body = match b {
        Behaviour::Ok => Body::from_stream(tokens.chain(stream::iter([
            event(&usage),
            Ok(Bytes::from("data: [DONE]\n\n")),
        ]))),
        Behaviour::Drop => {
            Body::from_stream(tokens.take(2).chain(stream::iter([Err::<Bytes, _>(
                std::io::Error::new(std::io::ErrorKind::ConnectionReset, "dropped"),
            )])))
        }
        Behaviour::Stall => Body::from_stream(tokens.take(1).chain(stream::pending())),
        Behaviour::Truncate => Body::from_stream(tokens.take(2)),
        Behaviour::Error500 => unreachable!(),
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .expect("response")
}

/// Starts the server on a free port (`mixed`: cycle through [`CYCLE`]); returns its address.
pub async fn start(mixed: bool) -> SocketAddr {
    let fake = Arc::new(Fake {
        counter: AtomicUsize::new(0),
        mixed,
    });
    let app = Router::new()
        .route(
            "/v1/completions",
            post(|State(f): State<Arc<Fake>>, Json(b): Json<Value>| handle(f, false, b)),
        )
        .route(
            "/v1/chat/completions",
            post(|State(f): State<Arc<Fake>>, Json(b): Json<Value>| handle(f, true, b)),
        )
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}
