//! HTTP metrics middleware: `vllm_http_requests_total{handler,method,status}`,
//! `vllm_http_request_duration_seconds{handler,method}` and
//! `vllm_request_rejected_total{reason}` (the 503s); `handler` is the matched route
//! (`none` for unmatched paths, so scanners cannot blow up the label set).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::Metrics;
use crate::error::Rejected;

/// Records one HTTP request (duration until the response head).
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("none", |p| p.as_str())
        .to_string();
    let method = req.method().as_str().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    if let Some(Rejected(reason)) = resp.extensions().get::<Rejected>() {
        metrics.request_rejected.with_label_values(&[reason]).inc();
    }
    metrics
        .http_requests
        .with_label_values(&[&handler, &method, &status])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[&handler, &method])
        .observe(start.elapsed().as_secs_f64());
    resp
}
