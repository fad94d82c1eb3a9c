//! corvid's engine: a paged KV cache with prefix caching, a continuous-batching
//! scheduler, per-request sampling, and the step loop on its own thread, fed through
//! [`EngineHandle`]. [`LLM`] is the offline batch API.
//!
//! Data flows one way: request → admission → scheduler → model step → sampler →
//! output stream (see `docs/architecture.md`).

mod admission;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
mod engine_core;
mod engine_loop;
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
pub mod stream;
#[cfg(feature = "test-util")]
pub mod testing;

pub use config::EngineConfig;
pub use error::{EngineError, InvalidParam};
pub use handle::{EngineHandle, PromptInput};
pub use llm::{CompletionOutput, GenerationOutput, LLM};
pub use output::{FinishReason, RequestOutput, TokenLogprob};
pub use params::{
    Dtype, EngineArgs, KvCacheDtype, KvCacheMemory, LoadQuantization, SamplingParams,
};
pub use stats::{EngineSnapshot, IterationStats, RequestStats, StatsSink};
pub use stream::RequestStream;
