//! corvid's engine: a paged KV cache with prefix caching, a continuous-batching
//! scheduler, per-request sampling, and the step loop on its own thread, fed through
//! [`EngineHandle`]. [`LLM`] is the offline batch API.
//!
//! Data flows one way: request → scheduler → model step → sampler → output stream.

#[cfg(feature = "cli")]
pub mod cli;
mod core;
pub mod error;
pub mod handle;
pub mod kv;
pub mod llm;
pub mod output;
pub mod params;
pub mod sampler;
pub mod scheduler;
pub mod sequence;
pub mod stats;

pub use error::{EngineError, InvalidParam};
pub use handle::{EngineHandle, PromptInput, RequestStream};
pub use llm::{CompletionOutput, GenerationOutput, LLM};
pub use output::{FinishReason, RequestOutput, TokenLogprob};
pub use params::{EngineArgs, KvCacheDtype, KvCacheMemory, LoadQuantization, SamplingParams};
pub use stats::{EngineSnapshot, IterationStats, RequestStats, StatsSink};
