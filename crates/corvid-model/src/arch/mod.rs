//! Model architectures.

pub mod llama;
mod load_progress;
mod tensor_parallel;

pub use llama::Llama;
