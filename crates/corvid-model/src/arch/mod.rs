//! Model architectures.

mod attention_tasks;
pub mod llama;
mod load_progress;
mod tensor_parallel;
mod token_rows;

pub use llama::Llama;
