//! The bodies of corvid's fuzz targets: each takes arbitrary bytes and drives them through
//! a real entry point that untrusted input reaches (a model file, a request body, a chat
//! template from a model file). A body panics only on a bug: an entry point that panics,
//! or a property that must hold for every input and does not (a tokenizer round trip).
//!
//! `fuzz/afl` wraps each body in AFL's persistent-mode driver for coverage-guided runs
//! (`fuzz/run.sh`); `tests/regressions.rs` replays every committed input through the same
//! body, so a fixed crash stays fixed in an ordinary `cargo test`.

pub mod chat_template;
pub mod gguf;
mod input;
pub mod request;
pub mod safetensors;
pub mod tokenizer;

/// A fuzz target: its name (the folder of its corpus and regression inputs, and of its
/// AFL driver) and its body.
pub struct Target {
    /// `gguf`, `safetensors`, `tokenizer`, `chat_template` or `request`.
    pub name: &'static str,
    /// Runs one input; panics only on a bug.
    pub run: fn(&[u8]),
}

/// Every target, for the regression replay.
pub const TARGETS: [Target; 5] = [
    Target {
        name: "gguf",
        run: gguf::run,
    },
    Target {
        name: "safetensors",
        run: safetensors::run,
    },
    Target {
        name: "tokenizer",
        run: tokenizer::run,
    },
    Target {
        name: "chat_template",
        run: chat_template::run,
    },
    Target {
        name: "request",
        run: request::run,
    },
];
