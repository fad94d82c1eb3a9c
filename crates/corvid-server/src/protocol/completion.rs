//! `POST /v1/completions`: request, response and stream chunk.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::request::generation_request;
use super::sampling::{FieldNames, SamplingFields};
use super::usage::Usage;

/// `prompt`: a string, a list of one string, token ids, or a list of one token-id list.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PromptField {
    /// One text prompt.
    Text(String),
    /// A list of text prompts (corvid serves exactly one per request).
    Texts(Vec<String>),
    /// One prompt as token ids.
    Tokens(Vec<u32>),
    /// A list of token-id prompts (exactly one).
    TokenLists(Vec<Vec<u32>>),
}

generation_request! {
    /// The body of `POST /v1/completions`, with vLLM's extra sampling fields.
    pub struct CompletionRequest {
        /// The prompt.
        pub prompt: PromptField,
        /// Prepend the prompt to the completion.
        #[serde(default)]
        pub echo: bool,
        /// Top logprobs per token (0–20).
        #[serde(default)]
        pub logprobs: Option<i64>,
        /// Token budget (default 16, as in OpenAI and vLLM).
        #[serde(default)]
        pub max_tokens: Option<i64>,
        /// Add BOS etc. when tokenizing the prompt (vLLM extension, default true).
        #[serde(default)]
        pub add_special_tokens: Option<bool>,
    }
}

impl CompletionRequest {
    /// The sampling fields, for validation.
    pub fn sampling(&self) -> SamplingFields {
        self.common_sampling(
            Some(self.max_tokens.unwrap_or(16)),
            self.logprobs,
            FieldNames::COMPLETIONS,
        )
    }
}

/// Legacy completions logprobs: parallel lists per token.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CompletionLogprobs {
    /// Offset of each token in the choice's text.
    pub text_offset: Vec<usize>,
    /// Log-probability of each token (null for echoed prompt tokens).
    pub token_logprobs: Vec<Option<f32>>,
    /// Each token as text.
    pub tokens: Vec<String>,
    /// The top alternatives of each token (null for echoed prompt tokens).
    pub top_logprobs: Vec<Option<BTreeMap<String, f32>>>,
}

/// One choice of a completion (or a delta of it in a stream chunk).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompletionChoice {
    /// Which of the `n` choices.
    pub index: usize,
    /// Text (the whole text, or the new text in a stream chunk).
    pub text: String,
    /// Logprobs when asked for.
    pub logprobs: Option<CompletionLogprobs>,
    /// `stop`, `length`, `abort`, or null while generating.
    pub finish_reason: Option<String>,
}

/// The response of `POST /v1/completions` (object `text_completion`); stream chunks
/// have the same shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompletionResponse {
    /// `cmpl-<request id>`.
    pub id: String,
    /// Always `text_completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The served model name.
    pub model: String,
    /// The choices.
    pub choices: Vec<CompletionChoice>,
    /// Token counts (always in a full response; in a stream only in the usage chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}
