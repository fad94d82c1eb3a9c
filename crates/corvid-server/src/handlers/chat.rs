//! `POST /v1/chat/completions`: messages → the model's chat template → tokens.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use corvid_engine::{RequestOutput, TokenLogprob};
use corvid_model::chat_template::isolated::IsolatedTemplate;
use corvid_model::tokenizer::{ChatMessage, Tokenizer};

use super::collect::{collect, finish_str};
use super::tokens::{encode, token_bytes, token_text};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::middleware::RequestId;
use crate::protocol::chat::{
    ChatChoice, ChatLogprobs, ChatMessageIn, ChatMessageOut, ChatTokenLogprob, MessageContent,
    TopLogprob,
};
use crate::protocol::{ChatCompletionRequest, ChatCompletionResponse, Usage};
use crate::sse::{frame, stream_response, ChunkFormat};
use crate::state::{unix_now, AppState};
use crate::validate::validate;

/// The message roles OpenAI's API accepts; anything else is a 400 naming the message, as
/// OpenAI answers (a template would otherwise render an unknown role silently, or fail
/// with a template error that does not say which message was wrong).
const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// Converts request messages to the template's messages (text parts joined).
pub fn to_chat_messages(messages: &[ChatMessageIn]) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must not be empty.",
        ));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if !ROLES.contains(&m.role.as_str()) {
                return Err(ApiError::invalid(
                    format!("messages[{i}].role"),
                    format!(
                        "Invalid role `{}`; supported roles are {}.",
                        m.role,
                        ROLES.map(|r| format!("`{r}`")).join(", ")
                    ),
                ));
            }
            let content = match &m.content {
                None => String::new(),
                Some(MessageContent::Text(t)) => t.clone(),
                Some(MessageContent::Parts(parts)) => {
                    let mut s = String::new();
                    for p in parts {
                        if p.kind != "text" {
                            return Err(ApiError::invalid(
                                format!("messages[{i}].content"),
                                format!(
                                    "Content part type `{}` is not supported (only `text`).",
                                    p.kind
                                ),
                            ));
                        }
                        s.push_str(p.text.as_deref().unwrap_or_default());
                    }
                    s
                }
            };
            Ok(ChatMessage {
                role: m.role.clone(),
                content,
            })
        })
        .collect()
}

/// Renders messages with the model's chat template — in a worker process if `isolated`
/// (on a blocking thread, so the wait holds no async worker) — and tokenizes the result.
pub async fn render_chat(
    isolated: Option<&Arc<IsolatedTemplate>>,
    tok: &Tokenizer,
    messages: &[ChatMessageIn],
    add_generation_prompt: bool,
    add_special: bool,
) -> Result<Vec<u32>, ApiError> {
    let msgs = to_chat_messages(messages)?;
    let template = tok.chat_template().ok_or_else(|| {
        ApiError::bad_request("This model has no chat template; use /v1/completions.")
    })?;
    let rendered = match isolated {
        Some(isolated) => {
            let isolated = Arc::clone(isolated);
            tokio::task::spawn_blocking(move || isolated.render(&msgs, add_generation_prompt))
                .await
                .map_err(|e| ApiError::internal(format!("chat template render task: {e}")))?
        }
        None => template.render(&msgs, add_generation_prompt),
    };
    let text = rendered.map_err(|e| {
        ApiError::invalid("messages", format!("Cannot apply the chat template: {e}"))
    })?;
    encode(tok, &text, add_special, "messages")
}

/// Handles `POST /v1/chat/completions` (streamed or not).
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    ApiJson(req): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    state.check_model(req.model.as_deref())?;
    let engine = state.engine()?;
    let tok = Arc::clone(engine.tokenizer());
    let prompt_ids = render_chat(
        state.isolated_template(),
        &tok,
        &req.messages,
        req.add_generation_prompt.unwrap_or(true),
        false,
    )
    .await?;
    let valid = validate(engine, prompt_ids, &req.sampling())?;
    let (n, logprobs) = (valid.params.n, valid.params.logprobs);
    let guard = state.inflight_guard();
    let stream = valid.submit(engine, &request_id)?;
    let fmt = ChatFormat {
        id: format!("chatcmpl-{request_id}"),
        created: unix_now(),
        model: state.served_model_name.clone(),
        tok,
        logprobs,
        n,
    };
    if req.stream {
        let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        return Ok(stream_response(stream, fmt, include_usage, guard));
    }
    let (choices, usage) = collect(stream, n).await?;
    drop(guard);
    let choices = choices
        .into_iter()
        .enumerate()
        .map(|(index, c)| ChatChoice {
            index,
            message: Some(ChatMessageOut {
                role: Some("assistant".into()),
                content: Some(c.text),
            }),
            delta: None,
            logprobs: fmt.logprobs(&c.logprobs),
            finish_reason: finish_str(c.finish_reason),
        })
        .collect();
    Ok(Json(fmt.response("chat.completion", choices, Some(usage.usage()))).into_response())
}

/// Formats chat responses, chunks and logprobs.
struct ChatFormat {
    id: String,
    created: u64,
    model: String,
    tok: Arc<Tokenizer>,
    logprobs: Option<usize>,
    n: usize,
}

impl ChatFormat {
    fn response(
        &self,
        object: &str,
        choices: Vec<ChatChoice>,
        usage: Option<Usage>,
    ) -> ChatCompletionResponse {
        ChatCompletionResponse {
            id: self.id.clone(),
            object: object.into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        }
    }

    fn logprobs(&self, entries: &[TokenLogprob]) -> Option<ChatLogprobs> {
        let k = self.logprobs?;
        let content = entries
            .iter()
            .map(|e| ChatTokenLogprob {
                token: token_text(&self.tok, e.token_id),
                logprob: e.logprob,
                bytes: token_bytes(&self.tok, e.token_id),
                top_logprobs: e
                    .top
                    .iter()
                    .take(k)
                    .map(|&(t, p)| TopLogprob {
                        token: token_text(&self.tok, t),
                        logprob: p,
                        bytes: token_bytes(&self.tok, t),
                    })
                    .collect(),
            })
            .collect();
        Some(ChatLogprobs { content })
    }
}

impl ChunkFormat for ChatFormat {
    fn start(&mut self) -> Vec<Bytes> {
        (0..self.n)
            .map(|index| {
                let c = ChatChoice {
                    index,
                    message: None,
                    delta: Some(ChatMessageOut {
                        role: Some("assistant".into()),
                        content: Some(String::new()),
                    }),
                    logprobs: None,
                    finish_reason: None,
                };
                frame(&self.response("chat.completion.chunk", vec![c], None))
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
        let c = ChatChoice {
            index: out.index,
            message: None,
            delta: Some(ChatMessageOut {
                role: None,
                content: (!out.text.is_empty() || out.finish_reason.is_none())
                    .then(|| out.text.clone()),
            }),
            logprobs: self.logprobs(&out.logprobs),
            finish_reason: finish_str(out.finish_reason),
        };
        Some(frame(&self.response(
            "chat.completion.chunk",
            vec![c],
            None,
        )))
    }

    fn usage(&mut self, usage: Usage) -> Bytes {
        frame(&self.response("chat.completion.chunk", Vec::new(), Some(usage)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::chat::ContentPart;

    #[test]
    fn content_parts_are_joined() {
        let m = ChatMessageIn {
            role: "user".into(),
            content: Some(MessageContent::Parts(vec![
                ContentPart {
                    kind: "text".into(),
                    text: Some("a".into()),
                },
                ContentPart {
                    kind: "text".into(),
                    text: Some("b".into()),
                },
            ])),
            name: None,
        };
        let out = to_chat_messages(&[m]).unwrap();
        assert_eq!(out[0].content, "ab");
    }

    #[test]
    fn image_parts_and_empty_messages_are_400() {
        assert!(to_chat_messages(&[]).is_err());
        let m = ChatMessageIn {
            role: "user".into(),
            content: Some(MessageContent::Parts(vec![ContentPart {
                kind: "image_url".into(),
                text: None,
            }])),
            name: None,
        };
        let e = to_chat_messages(&[m]).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
    }

    #[test]
    fn an_unknown_role_is_400_naming_the_message() {
        let msg = |role: &str| ChatMessageIn {
            role: role.into(),
            content: Some(MessageContent::Text("hi".into())),
            name: None,
        };
        for role in ROLES {
            assert!(to_chat_messages(&[msg(role)]).is_ok(), "{role}");
        }
        let e = to_chat_messages(&[msg("user"), msg("robot")]).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[1].role"));
        assert!(e.message.contains("`robot`"), "{}", e.message);
    }
}
