//! Reading a non-streamed request to its end: every choice's text, tokens, logprobs and
//! finish reason, and the usage.

use corvid_engine::{FinishReason, RequestStream, TokenLogprob};

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

/// Reads a request to its end: every choice and the usage, or a 500 if the engine
/// failed on it (a partial answer would pass for a whole one).
pub async fn collect(
    mut stream: RequestStream,
    n: usize,
) -> Result<(Vec<ChoiceAcc>, UsageAcc), ApiError> {
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
        if out.finish_reason == Some(FinishReason::Error) {
            return Err(ApiError::engine_failed());
        }
        if out.finish_reason.is_some() {
            c.finish_reason = out.finish_reason;
        }
    }
    Ok((choices, usage))
}

/// The finish reason as OpenAI spells it.
pub fn finish_str(f: Option<FinishReason>) -> Option<String> {
    f.map(|f| f.as_str().to_string())
}
