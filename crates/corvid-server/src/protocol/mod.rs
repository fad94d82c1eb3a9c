//! OpenAI-compatible wire types (as vLLM accepts them): plain serde structs, no logic
//! beyond gathering the sampling fields for [`crate::validate`].

pub mod chat;
pub mod common;
pub mod completion;
pub mod misc;
mod request;

pub use chat::{ChatCompletionRequest, ChatCompletionResponse};
pub use common::{FieldNames, SamplingFields, StopField, StreamOptions, Usage};
pub use completion::{CompletionRequest, CompletionResponse, PromptField};
