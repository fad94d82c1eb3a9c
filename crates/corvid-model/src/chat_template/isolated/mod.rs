//! Rendering an untrusted chat template in a separate, memory-limited process.
//!
//! minijinja's fuel, recursion and output limits do not bound memory: `{% set s = s ~ s %}`
//! doubles a string in one instruction, so forty of them ask for a terabyte. A template
//! comes from whoever made the model file and may do that only when a message contains
//! some word, so a remote client could take the server down. [`IsolatedTemplate`] renders
//! in worker processes (`corvid template-worker`, a hidden subcommand of the same binary)
//! whose address space is capped at [`MEMORY_LIMIT_BYTES`]: such a render kills its worker,
//! the request gets an error naming the limit, and the next render starts a new worker.
//! Each render also has a deadline ([`RENDER_DEADLINE`]).
//!
//! Workers are long-lived (started once, reused while they stay healthy), so a render
//! costs a pipe round trip, not a process start; a few are kept idle for concurrent
//! requests.

mod process;
mod wire;
mod worker;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

pub use worker::serve_stdio;

use self::process::Worker;
use self::wire::RenderRequest;
use super::{ChatMessage, ChatTemplate, TemplateSpec};
use crate::{ModelError, Result};

/// Address space of a render worker: the binary and its libraries take about 90 MiB; the
/// rest is room for a conversation of a request body's size and the 16 MiB output many
/// times over, and far from the machine's memory.
pub const MEMORY_LIMIT_BYTES: u64 = 512 << 20;
/// Longest a render may take; fuel stops a busy loop within a fraction of a second, so
/// only a pathological one (huge strings per instruction) comes near.
pub const RENDER_DEADLINE: Duration = Duration::from_secs(10);
/// Workers kept idle between renders (more run while more requests render at once).
const MAX_IDLE: usize = 2;

/// How to start a render worker: a program that runs [`serve_stdio`] (for `corvid serve`:
/// its own executable with the hidden `template-worker` subcommand).
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// A chat template rendered by worker processes.
pub struct IsolatedTemplate {
    command: WorkerCommand,
    spec: TemplateSpec,
    idle: Mutex<Vec<Worker>>,
}

impl IsolatedTemplate {
    /// Starts one worker for `template` (so a broken command fails at start-up, not at the
    /// first chat request).
    pub fn start(command: WorkerCommand, template: &ChatTemplate) -> Result<Self> {
        let spec = template.spec().clone();
        let first = Worker::spawn(&command, &spec).map_err(failure)?;
        Ok(Self {
            command,
            spec,
            idle: Mutex::new(vec![first]),
        })
    }

    /// Renders the conversation as [`ChatTemplate::render`] does, in a worker; a worker
    /// that exceeds its memory limit or the deadline is an error naming the limit.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut worker = match idle {
            Some(w) => w,
            None => Worker::spawn(&self.command, &self.spec).map_err(failure)?,
        };
        let req = RenderRequest {
            messages: messages.to_vec(),
            add_generation_prompt,
        };
        let reply = worker.render(&req, RENDER_DEADLINE).map_err(|f| {
            tracing::warn!("chat template worker lost: {f}");
            failure(f)
        })?;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(worker);
        }
        reply.map_err(ModelError::Tokenizer)
    }
}

impl std::fmt::Debug for IsolatedTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsolatedTemplate")
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

fn failure(f: process::Failure) -> ModelError {
    ModelError::Tokenizer(format!("chat template: {f}"))
}
