//! The request-body deadline (`--timeout-request-body`): a client that sends its body a
//! byte at a time would otherwise hold its connection and a handler for as long as it
//! likes. The whole body must arrive within the timeout of its head; after that the body
//! ends with [`BodyTimedOut`], which [`crate::extract::ApiJson`] turns into a 408, and
//! the connection is closed. tower-http's `TimeoutBody` bounds each frame instead, which
//! a byte-at-a-time client never trips.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

/// The error a body reports once its deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimedOut(pub Duration);

/// Whether `err` (or an error it wraps) is a [`BodyTimedOut`].
pub fn is_body_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Middleware: gives the request body a deadline of `timeout` from now.
pub async fn limit_body_time(
    State(timeout): State<Duration>,
    req: Request,
    next: Next,
) -> Response {
    let req = req.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        })
    });
    next.run(req).await
}

/// A body that fails with [`BodyTimedOut`] if it has not ended by its deadline.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut(self.timeout).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    fn with_deadline(inner: Body, timeout: Duration) -> Body {
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        })
    }

    /// A body that stalls fails at its deadline with an error the extractor recognises
    /// through axum's wrapping; a complete one passes through untouched.
    #[tokio::test]
    async fn stalled_bodies_fail_at_the_deadline() {
        let stalled =
            Body::from_stream(futures_util::stream::pending::<Result<Bytes, std::io::Error>>());
        let err = to_bytes(
            with_deadline(stalled, Duration::from_millis(50)),
            usize::MAX,
        )
        .await
        .expect_err("a stalled body times out");
        assert!(is_body_timeout(&err), "{err:?}");
        let whole = to_bytes(
            with_deadline(Body::from("{}"), Duration::from_secs(3)),
            usize::MAX,
        )
        .await
        .unwrap();
        assert_eq!(&whole[..], b"{}");
        assert!(!is_body_timeout(&std::io::Error::other("x")));
    }
}
