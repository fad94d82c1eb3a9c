//! `POST /tokenize` and `POST /detokenize`.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::chat::render_chat;
use super::tokens::{encode, token_text};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::protocol::tokenize::{
    DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse,
};
use crate::state::AppState;

/// `POST /tokenize`: a `prompt`, or chat `messages` rendered with the chat template.
pub async fn tokenize(
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<TokenizeRequest>,
) -> Result<Json<TokenizeResponse>, ApiError> {
    state.check_model(req.model.as_deref())?;
    let engine = state.loaded_engine()?;
    let tok = engine.tokenizer();
    let tokens = match (&req.prompt, &req.messages) {
        (Some(p), None) => encode(tok, p, req.add_special_tokens.unwrap_or(true), "prompt")?,
        (None, Some(m)) => {
            render_chat(
                state.isolated_template(),
                tok,
                m,
                req.add_generation_prompt.unwrap_or(true),
                req.add_special_tokens.unwrap_or(false),
            )
            .await?
        }
        _ => {
            return Err(ApiError::bad_request(
                "Send exactly one of `prompt` or `messages`.",
            ))
        }
    };
    let token_strs = req
        .return_token_strs
        .unwrap_or(false)
        .then(|| tokens.iter().map(|&t| token_text(tok, t)).collect());
    Ok(Json(TokenizeResponse {
        count: tokens.len(),
        max_model_len: engine.config().max_model_len,
        tokens,
        token_strs,
    }))
}

/// `POST /detokenize`.
pub async fn detokenize(
    State(state): State<Arc<AppState>>,
    ApiJson(req): ApiJson<DetokenizeRequest>,
) -> Result<Json<DetokenizeResponse>, ApiError> {
    state.check_model(req.model.as_deref())?;
    let engine = state.loaded_engine()?;
    engine
        .check_token_ids(&req.tokens)
        .map_err(|e| ApiError::invalid("tokens", format!("`tokens` {}", e.problem)))?;
    let prompt = engine
        .tokenizer()
        .decode(&req.tokens, false)
        .map_err(|e| ApiError::invalid("tokens", e.to_string()))?;
    Ok(Json(DetokenizeResponse { prompt }))
}
