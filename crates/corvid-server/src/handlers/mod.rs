//! HTTP handlers, one file per API area; types live in [`crate::protocol`].

pub mod chat;
pub mod common;
pub mod completions;
pub mod misc;
