//! OpenAI-compatible wire types (as vLLM accepts them): plain serde structs, no logic
//! beyond gathering the sampling fields for [`crate::validate`].

pub mod chat;
pub mod completion;
pub mod models;
mod request;
pub mod sampling;
pub mod tokenize;
pub mod usage;

pub use chat::{ChatCompletionRequest, ChatCompletionResponse};
pub use completion::{CompletionRequest, CompletionResponse, PromptField};
pub use sampling::{FieldNames, SamplingFields, StopField};
pub use usage::{StreamOptions, Usage};
