//! What the server says about itself: `/health`, `/version`, `/v1/models`, `/metrics`,
//! and the 404 fallback.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::{ApiError, Rejected};
use crate::metrics::Format;
use crate::protocol::models::{ModelCard, ModelList, VersionResponse};
use crate::state::AppState;

/// `GET /health`: 200 once the model is loaded, 503 while loading, draining or after the
/// engine died.
/// A probe's 503 is not a refused request, so it carries no [`Rejected`] mark.
pub async fn health(State(state): State<Arc<AppState>>) -> Result<StatusCode, Response> {
    state.engine().map_err(|e| {
        let mut resp = e.into_response();
        resp.extensions_mut().remove::<Rejected>();
        resp
    })?;
    Ok(StatusCode::OK)
}

/// `GET /version`.
pub async fn version() -> Json<VersionResponse> {
    Json(VersionResponse {
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// `GET /v1/models`: the one served model.
pub async fn models(State(state): State<Arc<AppState>>) -> Result<Json<ModelList>, ApiError> {
    let engine = state.loaded_engine()?;
    Ok(Json(ModelList {
        object: "list".into(),
        data: vec![ModelCard {
            id: state.served_model_name.clone(),
            object: "model".into(),
            created: state.created,
            owned_by: "corvid".into(),
            root: state.model_root.clone(),
            parent: None,
            max_model_len: engine.config().max_model_len,
        }],
    }))
}

/// `GET /metrics`: Prometheus text format 0.0.4, or OpenMetrics 1.0.0 when the `Accept`
/// header prefers it; gauges refreshed from the engine. 404 with `--disable-metrics`.
pub async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(m) = &state.metrics else {
        return ApiError::not_found_route("/metrics").into_response();
    };
    state.refresh_gauges(m);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    (
        [(header::CONTENT_TYPE, format.content_type())],
        m.encode(format),
    )
        .into_response()
}

/// 404 for unknown paths, in OpenAI's error shape.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found_route(uri.path())
}
