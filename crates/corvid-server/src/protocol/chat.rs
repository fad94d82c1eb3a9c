//! `POST /v1/chat/completions`: request, response and stream chunk.

use serde::{Deserialize, Serialize};

use super::request::generation_request;
use super::sampling::{FieldNames, SamplingFields};
use super::usage::Usage;

/// Message content: a string, or a list of parts of which the `text` ones are kept.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content parts (`{"type": "text", "text": ...}`).
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ContentPart {
    /// Part type; only `text` is supported.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default)]
    pub text: Option<String>,
}

/// One chat message of the request.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ChatMessageIn {
    /// `system`, `user`, `assistant`, `tool`.
    pub role: String,
    /// The content (null allowed for assistant messages).
    #[serde(default)]
    pub content: Option<MessageContent>,
    /// Optional participant name (accepted, unused).
    #[serde(default)]
    pub name: Option<String>,
}

generation_request! {
    /// The body of `POST /v1/chat/completions`, with vLLM's extra sampling fields.
    pub struct ChatCompletionRequest {
        /// The conversation.
        pub messages: Vec<ChatMessageIn>,
        /// Return logprobs of the sampled tokens.
        #[serde(default)]
        pub logprobs: Option<bool>,
        /// Alternatives per token (0–20), needs `logprobs: true`.
        #[serde(default)]
        pub top_logprobs: Option<i64>,
        /// Token budget (deprecated OpenAI name).
        #[serde(default)]
        pub max_tokens: Option<i64>,
        /// Token budget (current OpenAI name; wins over `max_tokens`).
        #[serde(default)]
        pub max_completion_tokens: Option<i64>,
        /// End the rendered prompt with the assistant header (vLLM extension, default true).
        #[serde(default)]
        pub add_generation_prompt: Option<bool>,
    }
}

impl ChatCompletionRequest {
    /// The sampling fields, for validation.
    pub fn sampling(&self) -> SamplingFields {
        let (max_tokens, max_tokens_field) = match (self.max_completion_tokens, self.max_tokens) {
            (Some(m), _) => (Some(m), "max_completion_tokens"),
            (None, m) => (m, "max_tokens"),
        };
        let logprobs = if self.logprobs.unwrap_or(false) {
            Some(self.top_logprobs.unwrap_or(0))
        } else {
            None
        };
        let names = FieldNames {
            prompt: "messages",
            max_tokens: max_tokens_field,
            logprobs: "top_logprobs",
        };
        SamplingFields {
            top_logprobs_without_logprobs: self.top_logprobs.is_some()
                && !self.logprobs.unwrap_or(false),
            ..self.common_sampling(max_tokens, logprobs, names)
        }
    }
}

/// The assistant message of a response, or a delta of it in a stream chunk.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatMessageOut {
    /// `assistant` (in a stream: only in the first chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Text (the whole text, or the new text in a stream chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// One alternative token with its logprob.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopLogprob {
    /// The token as text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// Its UTF-8 bytes.
    pub bytes: Vec<u8>,
}

/// One sampled token with its logprob and alternatives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatTokenLogprob {
    /// The token as text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// Its UTF-8 bytes.
    pub bytes: Vec<u8>,
    /// The `top_logprobs` most likely alternatives.
    pub top_logprobs: Vec<TopLogprob>,
}

/// `choices[].logprobs` of a chat response.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ChatLogprobs {
    /// One entry per generated token.
    pub content: Vec<ChatTokenLogprob>,
}

/// One choice of a chat response or stream chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatChoice {
    /// Which of the `n` choices.
    pub index: usize,
    /// The message (full response).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<ChatMessageOut>,
    /// The delta (stream chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<ChatMessageOut>,
    /// Logprobs when asked for.
    pub logprobs: Option<ChatLogprobs>,
    /// `stop`, `length`, `abort`, or null while generating.
    pub finish_reason: Option<String>,
}

/// The response of `POST /v1/chat/completions` (object `chat.completion`), and its
/// stream chunks (object `chat.completion.chunk`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatCompletionResponse {
    /// `chatcmpl-<request id>`.
    pub id: String,
    /// `chat.completion` or `chat.completion.chunk`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The served model name.
    pub model: String,
    /// The choices.
    pub choices: Vec<ChatChoice>,
    /// Token counts (always in a full response; in a stream only in the usage chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}
