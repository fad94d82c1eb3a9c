//! The engine's errors, typed so that callers (the HTTP server, the offline API) can
//! report the request field at fault without parsing a message.

use corvid_model::ModelError;

/// A request value the engine refuses: the field it came from and what is wrong with it.
/// The server renames `field` to its own API spelling (`max_completion_tokens`,
/// `top_logprobs`, `messages`) and keeps `problem` as the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct InvalidParam {
    /// The offending field, as [`crate::SamplingParams`] (or `prompt`) names it.
    pub field: &'static str,
    /// What is wrong, phrased to follow the field name (e.g. "must be in [0, 2], got 3.").
    pub problem: String,
}

impl InvalidParam {
    /// An error for `field`.
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

/// Why the engine refused a request or failed to start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A parameter or the prompt is invalid; the error names the field.
    #[error(transparent)]
    InvalidRequest(#[from] InvalidParam),
    /// The engine arguments cannot make a working engine (e.g. a KV budget too small).
    #[error("invalid engine configuration: {0}")]
    InvalidConfig(String),
    /// The prompt cannot fit the context or the KV pool.
    #[error("this model's maximum context length is {max_model_len} tokens, but the prompt has {prompt_tokens} tokens")]
    PromptTooLong {
        /// Tokens in the refused prompt.
        prompt_tokens: usize,
        /// The context length in force (prompt plus output).
        max_model_len: usize,
    },
    /// Too many requests are waiting; the caller should retry later.
    #[error("the server is overloaded: too many waiting requests")]
    QueueFull,
    /// The engine is shutting down and accepts no more requests.
    #[error("the engine is shutting down")]
    Shutdown,
    /// The engine thread died (a panic inside a model step); the process should restart.
    #[error("the engine has failed and is not serving")]
    Dead,
    /// The model could not be loaded.
    #[error(transparent)]
    Load(#[from] ModelError),
}
