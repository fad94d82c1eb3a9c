//! The built-in live dashboard: `GET /dashboard` (one HTML page), its assets (the page's
//! script and style, uPlot vendored with its MIT licence, all compiled into the binary:
//! no CDN, works offline) and `GET /dashboard/api/series`, the JSON of the in-process
//! history ([`crate::metrics::history`]). Served where `/metrics` is: on `--metrics-port`
//! when set, else on the API port; 404 with `--disable-metrics`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::error::ApiError;
use crate::metrics::history::{unix_ms, SAMPLE_INTERVAL};
use crate::state::AppState;

/// The page's Content-Security-Policy: everything from this origin, nothing else.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The embedded files: name, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard/dashboard.js"),
    ),
    (
        "promql.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard/promql.js"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/dashboard/dashboard.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard/uplot/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/dashboard/uplot/uPlot.min.css"),
    ),
    (
        "uPlot-LICENSE.txt",
        "text/plain; charset=utf-8",
        include_str!("../../assets/dashboard/uplot/LICENSE"),
    ),
];

const PAGE: &str = include_str!("../../assets/dashboard/index.html");

fn enabled(state: &AppState, path: &str) -> Result<(), ApiError> {
    match state.metrics {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found_route(path)),
    }
}

/// `GET /dashboard`: the page.
pub async fn page(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    enabled(&state, "/dashboard")?;
    let mut r = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    Ok(r)
}

/// `GET /dashboard/` redirects to `/dashboard` (the page's links are relative to it).
pub async fn slash() -> Response {
    (
        axum::http::StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, "../dashboard")],
    )
        .into_response()
}

/// `GET /dashboard/assets/{file}`: one embedded file.
pub async fn asset(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let path = format!("/dashboard/assets/{file}");
    enabled(&state, &path)?;
    let (_, ctype, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError::not_found_route(&path))?;
    Ok((
        [
            (header::CONTENT_TYPE, *ctype),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        *body,
    )
        .into_response())
}

/// The query of `/dashboard/api/series`.
#[derive(Debug, Deserialize)]
pub struct SeriesQuery {
    /// Only samples from this sequence number on (the `next` of the previous answer).
    since: Option<u64>,
    /// The `boot` of the previous answer; another one gets the full history.
    boot: Option<String>,
}

/// `GET /dashboard/api/series[?since=N&boot=B]`: the history's samples as JSON, plus the
/// served model's name and the server's clock (so the page can tell a stale history).
pub async fn series(
    State(state): State<Arc<AppState>>,
    Query(q): Query<SeriesQuery>,
) -> Result<Response, ApiError> {
    let Some(m) = &state.metrics else {
        return Err(ApiError::not_found_route("/dashboard/api/series"));
    };
    let s = m.history.series(q.since, q.boot.as_deref());
    let body = serde_json::json!({
        "model": state.served_model_name,
        "version": env!("CARGO_PKG_VERSION"),
        "now": unix_ms(),
        "loaded": state.engine_opt().is_some(),
        "series": s,
    });
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// Samples the history once a second until the task is dropped: the gauges are refreshed
/// from the engine as for a scrape, then every family is gathered.
pub async fn sample_history(state: Arc<AppState>) {
    let Some(m) = state.metrics.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.refresh_gauges(&m);
        let families = m.gather();
        m.history.record(unix_ms(), &families);
    }
}
