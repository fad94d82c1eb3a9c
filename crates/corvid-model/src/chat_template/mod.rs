//! Chat templates: the model's Jinja template rendered with minijinja under HF
//! `transformers` semantics (trim_blocks, lstrip_blocks, Python string methods,
//! `raise_exception`, `tojson`, `strftime_now`).
//!
//! The template comes from whoever made the model file, so it runs sandboxed: no loader
//! (`include`/`import` find nothing: no file or network access), a fuel budget of
//! [`FUEL`] instructions (an endless loop is an error, not a hang), a recursion limit of
//! [`RECURSION_LIMIT`] and at most [`MAX_OUTPUT_BYTES`] of output.

pub mod isolated;
mod json;
#[cfg(test)]
mod limits_tests;
mod time;

use std::io;

use minijinja::{context, Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::{ModelError, Result};

/// The chat template of a model family whose GGUF files commonly carry none: Gemma 3's
/// (its text-only part, as in the Gemma 3 releases' `tokenizer_config.json`), for
/// `general.architecture` `gemma3`. llama.cpp would fall back to ChatML there, which
/// the model was not trained on.
pub fn builtin(architecture: &str) -> Option<&'static str> {
    match architecture {
        "gemma3" => Some(include_str!("gemma3.jinja")),
        _ => None,
    }
}

/// True if `source` is one of corvid's built-in templates ([`builtin`]): reviewed, so
/// safe to render in the server's own process.
pub fn is_builtin(source: &str) -> bool {
    builtin("gemma3") == Some(source)
}

/// One chat message.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// The message text.
    pub content: String,
}

/// What a chat template is made of: its source and the token texts it may insert. Enough
/// to compile it again elsewhere (the [`isolated`] render worker does).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct TemplateSpec {
    /// The Jinja source.
    pub source: String,
    /// The text of the BOS token (`bos_token` in the template).
    pub bos_token: String,
    /// The text of the EOS token (`eos_token` in the template).
    pub eos_token: String,
}

/// A compiled chat template. `Send + Sync`.
pub struct ChatTemplate {
    env: Environment<'static>,
    spec: TemplateSpec,
}

const NAME: &str = "chat";

/// Instructions one rendering may run. Real templates take a few hundred per message;
/// this allows conversations of thousands of messages and stops a runaway loop within a
/// fraction of a second.
pub const FUEL: u64 = 5_000_000;
/// Deepest nesting of macro calls, loops and conditions (minijinja's default is 500).
pub const RECURSION_LIMIT: usize = 100;
/// Most bytes one rendering may produce (far beyond any context window's worth of text).
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// The rendered text, refusing to grow past [`MAX_OUTPUT_BYTES`].
struct CappedOutput(Vec<u8>);

impl io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT_BYTES {
            return Err(io::Error::other(format!(
                "output exceeds {MAX_OUTPUT_BYTES} bytes"
            )));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn err(e: Error) -> ModelError {
    if e.kind() == ErrorKind::OutOfFuel {
        return ModelError::Tokenizer(format!(
            "chat template: ran more than {FUEL} instructions (a runaway loop?)"
        ));
    }
    let mut msg = format!("chat template: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    ModelError::Tokenizer(msg)
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token`/`eos_token` are the texts the template may insert.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(RECURSION_LIMIT);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", time::strftime_now);
        env.add_filter("tojson", json::tojson);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(err)?;
        Ok(Self {
            env,
            spec: TemplateSpec {
                source: source.to_owned(),
                bos_token: bos_token.to_owned(),
                eos_token: eos_token.to_owned(),
            },
        })
    }

    /// Compiles a template from its [`TemplateSpec`].
    pub fn from_spec(spec: &TemplateSpec) -> Result<Self> {
        Self::new(&spec.source, &spec.bos_token, &spec.eos_token)
    }

    /// What the template was compiled from.
    pub fn spec(&self) -> &TemplateSpec {
        &self.spec
    }

    /// Renders the conversation; `add_generation_prompt` appends the assistant header.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self.env.get_template(NAME).map_err(err)?;
        let mut out = CappedOutput(Vec::new());
        tmpl.render_captured_to(
            context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.spec.bos_token,
                eos_token => &self.spec.eos_token,
            },
            &mut out,
        )
        .map_err(err)?;
        String::from_utf8(out.0)
            .map_err(|e| ModelError::Tokenizer(format!("chat template: output is not UTF-8: {e}")))
    }
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.spec.bos_token)
            .field("eos_token", &self.spec.eos_token)
            .finish_non_exhaustive()
    }
}
