//! HTTP handlers, one file per API area; types live in [`crate::protocol`].

pub mod chat;
mod collect;
pub mod completions;
pub mod dashboard;
pub mod info;
pub mod tokenize;
mod tokens;
