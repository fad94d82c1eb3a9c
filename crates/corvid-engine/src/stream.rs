//! [`RequestStream`]: how a caller receives one request's outputs. Dropping it before
//! the end aborts the request, so a client that disconnects frees its KV blocks.

use crate::handle::EngineHandle;
use crate::output::{FinishReason, RequestOutput};
use tokio::sync::mpsc::UnboundedReceiver;

/// The stream of outputs of one request.
pub struct RequestStream {
    rx: UnboundedReceiver<RequestOutput>,
    request_id: String,
    remaining: usize,
    /// Per sample: tokens generated so far, `None` once it finished.
    progress: Vec<Option<usize>>,
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
            progress: vec![Some(0); n],
            handle,
            prompt_token_ids,
        }
    }

    /// Counts finished samples, so the stream ends after the last one. A channel that
    /// closes first means the engine died: each unfinished sample then ends with
    /// [`FinishReason::Error`], so no caller waits for an end that will never come.
    fn seen(&mut self, out: Option<RequestOutput>) -> Option<RequestOutput> {
        let Some(out) = out else {
            return self.fail_next();
        };
        if let Some(p) = self.progress.get_mut(out.index) {
            *p = out.finish_reason.is_none().then_some(out.completion_tokens);
        }
        if out.finish_reason.is_some() {
            self.remaining -= 1;
        }
        Some(out)
    }

    /// The error end of the first unfinished sample, once the engine is gone.
    fn fail_next(&mut self) -> Option<RequestOutput> {
        let (index, slot) = self
            .progress
            .iter_mut()
            .enumerate()
            .find(|(_, p)| p.is_some())?;
        let completion_tokens = slot.take().unwrap_or(0);
        self.remaining -= 1;
        Some(RequestOutput {
            index,
            text: String::new(),
            token_ids: Vec::new(),
            logprobs: Vec::new(),
            finish_reason: Some(FinishReason::Error),
            prompt_tokens: 0,
            completion_tokens,
            cached_tokens: 0,
        })
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
