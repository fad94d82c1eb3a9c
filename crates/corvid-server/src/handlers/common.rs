//! Pieces shared by the completions and chat handlers: collecting a non-streamed
//! result, token text for logprobs, tokenizing a request's text.

use corvid_engine::{FinishReason, RequestStream, TokenLogprob};
use corvid_model::tokenizer::Tokenizer;

use crate::error::ApiError;
use crate::sse::UsageAcc;

/// The whole result of one of the `n` choices.
#[derive(Debug, Default, Clone)]
pub struct ChoiceAcc {
    /// Generated text.
    pub text: String,
    /// Generated tokens.
    pub token_ids: Vec<u32>,
    /// Their logprobs (when asked for).
    pub logprobs: Vec<TokenLogprob>,
    /// Why it ended.
    pub finish_reason: Option<FinishReason>,
}

/// Reads a request to its end: every choice and the usage.
pub async fn collect(mut stream: RequestStream, n: usize) -> (Vec<ChoiceAcc>, UsageAcc) {
    let mut choices = vec![ChoiceAcc::default(); n];
    let mut usage = UsageAcc::new(stream.prompt_token_ids.len());
    while let Some(out) = stream.next().await {
        usage.record(&out);
        if choices.len() <= out.index {
            choices.resize(out.index + 1, ChoiceAcc::default());
        }
        let c = &mut choices[out.index];
        c.text.push_str(&out.text);
        c.token_ids.extend_from_slice(&out.token_ids);
        c.logprobs.extend(out.logprobs);
        if out.finish_reason.is_some() {
            c.finish_reason = out.finish_reason;
        }
    }
    (choices, usage)
}

/// The finish reason as OpenAI spells it.
pub fn finish_str(f: Option<FinishReason>) -> Option<String> {
    f.map(|f| f.as_str().to_string())
}

/// The text of one token (its raw bytes, lossily decoded), for logprobs.
pub fn token_text(tok: &Tokenizer, id: u32) -> String {
    tok.token_to_piece(id)
        .map_or_else(String::new, |b| String::from_utf8_lossy(&b).into_owned())
}

/// The raw bytes of one token, for chat logprobs.
pub fn token_bytes(tok: &Tokenizer, id: u32) -> Vec<u8> {
    tok.token_to_piece(id).unwrap_or_default()
}

/// Tokenizes text, mapping tokenizer failures to 400.
pub fn encode(
    tok: &Tokenizer,
    text: &str,
    add_special: bool,
    field: &str,
) -> Result<Vec<u32>, ApiError> {
    tok.encode(text, add_special, true)
        .map_err(|e| ApiError::invalid(field, format!("Cannot tokenize `{field}`: {e}")))
}
