//! The render worker's side: limits its own memory, compiles the template it is sent and
//! renders requests from stdin to stdout until the server closes the pipe.

use std::io::{self, BufReader, BufWriter};

use super::wire::{self, RenderRequest, Reply};
use super::MEMORY_LIMIT_BYTES;
use crate::chat_template::{ChatTemplate, TemplateSpec};
use crate::ModelError;

/// Caps this process's address space at [`MEMORY_LIMIT_BYTES`] (an allocation beyond it
/// fails, and Rust aborts the process) and forbids core dumps of such aborts.
fn limit_memory() -> io::Result<()> {
    let set = |resource, bytes: u64| {
        let limit = libc::rlimit {
            rlim_cur: bytes as libc::rlim_t,
            rlim_max: bytes as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct it is given and nothing else.
        if unsafe { libc::setrlimit(resource, &limit) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    set(libc::RLIMIT_CORE, 0)?;
    set(libc::RLIMIT_AS, MEMORY_LIMIT_BYTES)
}

/// The text of a template error, without the `tokenizer:` prefix the server adds back.
fn message(e: ModelError) -> String {
    match e {
        ModelError::Tokenizer(m) => m,
        e => e.to_string(),
    }
}

/// Runs a render worker on stdin/stdout: what `corvid`'s hidden `template-worker`
/// subcommand does. Returns when the server closes stdin.
pub fn serve_stdio() -> io::Result<()> {
    limit_memory()?;
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    let Some(spec) = wire::receive::<TemplateSpec>(&mut input)? else {
        return Ok(());
    };
    let template = ChatTemplate::from_spec(&spec).map_err(message);
    while let Some(req) = wire::receive::<RenderRequest>(&mut input)? {
        let reply: Reply = match &template {
            Ok(t) => t
                .render(&req.messages, req.add_generation_prompt)
                .map_err(message),
            Err(e) => Err(e.clone()),
        };
        wire::send(&mut output, &reply)?;
    }
    Ok(())
}
