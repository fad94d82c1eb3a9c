//! [`RequestStream`]: how a caller receives one request's outputs. Dropping it before
//! the end aborts the request, so a client that disconnects frees its KV blocks.

use crate::handle::EngineHandle;
use crate::output::RequestOutput;
use tokio::sync::mpsc::UnboundedReceiver;

/// The stream of outputs of one request.
pub struct RequestStream {
    rx: UnboundedReceiver<RequestOutput>,
    request_id: String,
    remaining: usize,
    handle: EngineHandle,
    /// Prompt token ids as the engine saw them (usage counts and echo need them).
    pub prompt_token_ids: Vec<u32>,
}

impl RequestStream {
    /// A stream of the `n` samples of `request_id`, aborted through `handle` if dropped early.
    pub(crate) fn new(
        rx: UnboundedReceiver<RequestOutput>,
        request_id: String,
        n: usize,
        handle: EngineHandle,
        prompt_token_ids: Vec<u32>,
    ) -> Self {
        Self {
            rx,
            request_id,
            remaining: n,
            handle,
            prompt_token_ids,
        }
    }

    /// Counts finished samples, so the stream ends after the last one.
    fn seen(&mut self, out: Option<RequestOutput>) -> Option<RequestOutput> {
        let out = out?;
        if out.finish_reason.is_some() {
            self.remaining -= 1;
        }
        Some(out)
    }

    /// The next output, `None` once every sample has finished.
    pub async fn next(&mut self) -> Option<RequestOutput> {
        if self.remaining == 0 {
            return None;
        }
        let out = self.rx.recv().await;
        self.seen(out)
    }

    /// Blocking version of [`RequestStream::next`] for non-async callers.
    pub fn next_blocking(&mut self) -> Option<RequestOutput> {
        if self.remaining == 0 {
            return None;
        }
        let out = self.rx.blocking_recv();
        self.seen(out)
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }
}

impl Drop for RequestStream {
    fn drop(&mut self) {
        if self.remaining > 0 {
            self.handle.abort(&self.request_id);
        }
    }
}
