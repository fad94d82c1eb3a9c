//! Model architectures.

pub mod llama;
mod load_progress;

pub use llama::Llama;
