//! Model architectures.

pub mod llama;

pub use llama::Llama;
