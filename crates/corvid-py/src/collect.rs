//! Waiting for a batch of requests from Python: the GIL is released while the engine
//! works, and every [`POLL`] the wait comes back to check signals (Ctrl-C), the abort
//! flag, and to report progress. An interrupted batch aborts its unfinished requests and
//! waits for their streams to end, so their KV blocks are free when the call returns.

use corvid_engine::{CompletionOutput, EngineHandle, RequestStream};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use pyo3::prelude::*;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the wait runs without the GIL before checking signals and progress.
const POLL: Duration = Duration::from_millis(50);
/// How long aborted requests may take to end (the engine aborts between two steps).
const ABORT_WAIT: Duration = Duration::from_secs(60);

/// One request's result.
pub struct Request {
    /// Prompt token ids as the engine saw them.
    pub prompt_token_ids: Vec<u32>,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
    /// Its samples, by index (partial when aborted).
    pub samples: Vec<CompletionOutput>,
}

/// A batch's results, in input order.
pub struct Collected {
    /// One per request.
    pub requests: Vec<Request>,
    /// Whether [`collect`]'s `aborted` check stopped the batch.
    pub aborted: bool,
}

/// Why a batch stopped early.
enum Interrupt {
    /// `LLM.abort()` from another thread.
    Aborted,
    /// A signal handler raised (Ctrl-C: `KeyboardInterrupt`) or the progress callback did.
    Raised(PyErr),
}

/// Reads one stream of `n` samples to its end, counting generated tokens into `generated`.
async fn drain(
    i: usize,
    mut stream: RequestStream,
    n: usize,
    generated: &AtomicUsize,
) -> (usize, Request) {
    let mut samples = CompletionOutput::for_request(n);
    let mut cached_tokens = 0;
    while let Some(o) = stream.next().await {
        generated.fetch_add(o.token_ids.len(), Ordering::Relaxed);
        cached_tokens = o.cached_tokens;
        samples[o.index].absorb(o);
    }
    let prompt_token_ids = std::mem::take(&mut stream.prompt_token_ids);
    let request = Request {
        prompt_token_ids,
        cached_tokens,
        samples,
    };
    (i, request)
}

/// Everything that finishes within `wait`: the first to finish, and any others ready then.
async fn ready<F: Future + Unpin>(
    pending: &mut FuturesUnordered<F>,
    wait: Duration,
) -> Vec<F::Output> {
    let mut out = Vec::new();
    if let Ok(Some(first)) = tokio::time::timeout(wait, pending.next()).await {
        out.push(first);
        while let Some(Some(more)) = pending.next().now_or_never() {
            out.push(more);
        }
    }
    out
}

/// Waits for every stream (each with its number of samples); `aborted()` is polled along with the signals, and
/// `progress(done_prompts, generated_tokens)` is called when either changes.
pub fn collect(
    py: Python<'_>,
    handle: &EngineHandle,
    streams: Vec<(RequestStream, usize)>,
    aborted: impl Fn() -> bool,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<Collected> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let total = streams.len();
    let ids: Vec<String> = streams
        .iter()
        .map(|(s, _)| s.request_id().to_string())
        .collect();
    let generated = AtomicUsize::new(0);
    let mut pending: FuturesUnordered<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, (s, n))| Box::pin(drain(i, s, n, &generated)))
        .collect();
    let mut results: Vec<Option<Request>> = (0..total).map(|_| None).collect();
    let (mut done, mut reported) = (0, (0, 0));
    let mut interrupt: Option<(Interrupt, Instant)> = None;
    while done < total {
        for (i, r) in py.detach(|| rt.block_on(ready(&mut pending, POLL))) {
            results[i] = Some(r);
            done += 1;
        }
        if let Some((_, since)) = &interrupt {
            if since.elapsed() > ABORT_WAIT {
                break;
            }
            continue;
        }
        let now = (done, generated.load(Ordering::Relaxed));
        let why = if aborted() {
            Some(Interrupt::Aborted)
        } else if let Err(e) = py.check_signals() {
            Some(Interrupt::Raised(e))
        } else if let (Some(p), true) = (progress, now != reported) {
            reported = now;
            p.call1(now).err().map(Interrupt::Raised)
        } else {
            None
        };
        if let Some(why) = why {
            for (id, r) in ids.iter().zip(&results) {
                if r.is_none() {
                    handle.abort(id);
                }
            }
            interrupt = Some((why, Instant::now()));
        }
    }
    // Streams still pending only past ABORT_WAIT; dropping them aborts their requests.
    drop(pending);
    let now = (done, generated.load(Ordering::Relaxed));
    if let (Some(p), None, true) = (progress, &interrupt, now != reported) {
        p.call1(now)?;
    }
    match interrupt {
        Some((Interrupt::Raised(e), _)) => Err(e),
        why => {
            let requests = results
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| Request {
                        prompt_token_ids: Vec::new(),
                        cached_tokens: 0,
                        samples: Vec::new(),
                    })
                })
                .collect();
            Ok(Collected {
                requests,
                aborted: why.is_some(),
            })
        }
    }
}
