//! `POST /v1/completions`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use corvid_engine::{RequestOutput, TokenLogprob};
use corvid_model::tokenizer::Tokenizer;

use super::collect::{collect, finish_str};
use super::tokens::{encode, token_text};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::middleware::RequestId;
use crate::protocol::completion::{CompletionChoice, CompletionLogprobs};
use crate::protocol::{CompletionRequest, CompletionResponse, PromptField, Usage};
use crate::sse::{frame, stream_response, ChunkFormat};
use crate::state::{unix_now, AppState};
use crate::validate::validate;

/// Handles `POST /v1/completions` (streamed or not).
pub async fn completions(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    ApiJson(req): ApiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    state.check_model(req.model.as_deref())?;
    let engine = state.engine()?;
    let tok = Arc::clone(engine.tokenizer());
    let add_special = req.add_special_tokens.unwrap_or(true);
    let (prompt_ids, prompt_text) = match &req.prompt {
        PromptField::Text(t) => (encode(&tok, t, add_special, "prompt")?, Some(t.clone())),
        PromptField::Texts(v) if v.len() == 1 => (
            encode(&tok, &v[0], add_special, "prompt")?,
            Some(v[0].clone()),
        ),
        PromptField::Tokens(ids) => (ids.clone(), None),
        PromptField::TokenLists(v) if v.len() == 1 => (v[0].clone(), None),
        _ => {
            return Err(ApiError::invalid(
                "prompt",
                "Send exactly one prompt per request (batched prompts are not supported).",
            ))
        }
    };
    let valid = validate(engine, prompt_ids, &req.sampling())?;
    let (n, logprobs) = (valid.params.n, valid.params.logprobs);
    let prompt_ids = &valid.prompt_tokens;
    let echo = if req.echo {
        let text = match prompt_text {
            Some(t) => t,
            None => tok
                .decode(prompt_ids, false)
                .map_err(|e| ApiError::invalid("prompt", e.to_string()))?,
        };
        Some((text, prompt_ids.clone()))
    } else {
        None
    };
    let guard = state.inflight_guard();
    let stream = valid.submit(engine, &request_id)?;
    let fmt = CompletionFormat {
        id: format!("cmpl-{request_id}"),
        created: unix_now(),
        model: state.served_model_name.clone(),
        tok,
        logprobs,
        echo,
        offsets: vec![0; n],
    };
    if req.stream {
        let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        return Ok(stream_response(stream, fmt, include_usage, guard));
    }
    let (choices, usage) = collect(stream, n).await?;
    drop(guard);
    let mut fmt = fmt;
    let echo = fmt.echo.clone();
    let choices = choices
        .into_iter()
        .enumerate()
        .map(|(index, c)| {
            let mut text = String::new();
            let mut lp = fmt.logprobs.map(|_| CompletionLogprobs::default());
            if let Some((t, ids)) = &echo {
                text.push_str(t);
                if let Some(lp) = lp.as_mut() {
                    fmt.push_prompt_logprobs(lp, ids, index);
                }
            }
            text.push_str(&c.text);
            if let Some(lp) = lp.as_mut() {
                fmt.push_logprobs(lp, &c.logprobs, index);
            }
            CompletionChoice {
                index,
                text,
                logprobs: lp,
                finish_reason: finish_str(c.finish_reason),
            }
        })
        .collect();
    let resp = CompletionResponse {
        id: fmt.id,
        object: "text_completion".into(),
        created: fmt.created,
        model: fmt.model,
        choices,
        usage: Some(usage.usage()),
    };
    Ok(Json(resp).into_response())
}

/// Formats completions chunks and logprobs.
struct CompletionFormat {
    id: String,
    created: u64,
    model: String,
    tok: Arc<Tokenizer>,
    logprobs: Option<usize>,
    echo: Option<(String, Vec<u32>)>,
    offsets: Vec<usize>,
}

impl CompletionFormat {
    fn chunk(&self, choices: Vec<CompletionChoice>, usage: Option<Usage>) -> CompletionResponse {
        CompletionResponse {
            id: self.id.clone(),
            object: "text_completion".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        }
    }

    fn push_token(
        &mut self,
        lp: &mut CompletionLogprobs,
        index: usize,
        id: u32,
        entry: Option<&TokenLogprob>,
    ) {
        let text = token_text(&self.tok, id);
        if self.offsets.len() <= index {
            self.offsets.resize(index + 1, 0);
        }
        lp.text_offset.push(self.offsets[index]);
        self.offsets[index] += text.len();
        lp.tokens.push(text);
        lp.token_logprobs.push(entry.map(|e| e.logprob));
        lp.top_logprobs.push(entry.map(|e| {
            let k = self.logprobs.unwrap_or(0);
            let mut m: BTreeMap<String, f32> = e
                .top
                .iter()
                .take(k)
                .map(|&(t, p)| (token_text(&self.tok, t), p))
                .collect();
            if k > 0 {
                m.entry(token_text(&self.tok, e.token_id))
                    .or_insert(e.logprob);
            }
            m
        }));
    }

    /// Echoed prompt tokens: corvid computes no prompt logprobs, so they are null.
    fn push_prompt_logprobs(&mut self, lp: &mut CompletionLogprobs, ids: &[u32], index: usize) {
        for &id in ids {
            self.push_token(lp, index, id, None);
        }
    }

    fn push_logprobs(
        &mut self,
        lp: &mut CompletionLogprobs,
        entries: &[TokenLogprob],
        index: usize,
    ) {
        for e in entries {
            self.push_token(lp, index, e.token_id, Some(e));
        }
    }
}

impl ChunkFormat for CompletionFormat {
    fn start(&mut self) -> Vec<Bytes> {
        let Some((text, ids)) = self.echo.clone() else {
            return Vec::new();
        };
        (0..self.offsets.len())
            .map(|index| {
                let mut lp = self.logprobs.map(|_| CompletionLogprobs::default());
                if let Some(lp) = lp.as_mut() {
                    self.push_prompt_logprobs(lp, &ids, index);
                }
                let c = CompletionChoice {
                    index,
                    text: text.clone(),
                    logprobs: lp,
                    finish_reason: None,
                };
                frame(&self.chunk(vec![c], None))
            })
            .collect()
    }

    fn output(&mut self, out: &RequestOutput) -> Option<Bytes> {
        if out.text.is_empty()
            && out.finish_reason.is_none()
            && (self.logprobs.is_none() || out.logprobs.is_empty())
        {
            return None;
        }
        let mut lp = self.logprobs.map(|_| CompletionLogprobs::default());
        if let Some(lp) = lp.as_mut() {
            self.push_logprobs(lp, &out.logprobs, out.index);
        }
        let c = CompletionChoice {
            index: out.index,
            text: out.text.clone(),
            logprobs: lp,
            finish_reason: finish_str(out.finish_reason),
        };
        Some(frame(&self.chunk(vec![c], None)))
    }

    fn usage(&mut self, usage: Usage) -> Bytes {
        frame(&self.chunk(Vec::new(), Some(usage)))
    }
}
