//! One render worker process, seen from the server: spawned with pipes, sent its
//! template, asked to render with a deadline, killed when it overruns or dropped.

use std::io::{BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use super::wire::{self, RenderRequest, Reply};
use super::{WorkerCommand, MEMORY_LIMIT_BYTES};
use crate::chat_template::TemplateSpec;

/// A running worker with its template compiled.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    /// Replies, read from the worker's stdout by a thread of their own (so a reply can be
    /// waited for with a deadline); closed when the worker exits.
    replies: Receiver<Reply>,
}

/// Why a worker gave no reply; the worker is gone either way.
#[derive(Debug)]
pub enum Failure {
    /// The worker could not be started or written to.
    Start(std::io::Error),
    /// The worker exited (killed by its memory limit, or crashed); its last words.
    Died(String),
    /// No reply within the deadline; the worker was killed.
    Overran(Duration),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limit_mib = MEMORY_LIMIT_BYTES >> 20;
        match self {
            Failure::Start(e) => write!(f, "cannot start the template worker: {e}"),
            Failure::Died(why) if why.contains("memory allocation") => write!(
                f,
                "the template exceeded its memory limit of {limit_mib} MiB ({why})"
            ),
            Failure::Died(why) => write!(f, "the template worker crashed ({why})"),
            Failure::Overran(d) => write!(f, "the template ran longer than {} s", d.as_secs_f64()),
        }
    }
}

impl Worker {
    /// Starts `command` and sends it `spec`.
    pub fn spawn(command: &WorkerCommand, spec: &TemplateSpec) -> Result<Self, Failure> {
        let mut child = Command::new(&command.program)
            .args(&command.args)
            // mimalloc (corvid's allocator) reserves 1 GiB of address space at start-up
            // unless told otherwise: that would count against the worker's limit before
            // the template allocated anything.
            .env("MIMALLOC_ARENA_RESERVE", "16MiB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Failure::Start)?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (tx, replies) = mpsc::channel();
        std::thread::Builder::new()
            .name("template-worker-reader".into())
            .spawn(move || {
                while let Ok(Some(reply)) = wire::receive::<Reply>(&mut stdout) {
                    if tx.send(reply).is_err() {
                        break;
                    }
                }
            })
            .map_err(Failure::Start)?;
        let mut worker = Worker {
            child,
            stdin,
            replies,
        };
        match wire::send(&mut worker.stdin, spec) {
            Ok(()) => Ok(worker),
            Err(_) => Err(worker.died()),
        }
    }

    /// Renders `req`, waiting at most `deadline` for the reply.
    pub fn render(&mut self, req: &RenderRequest, deadline: Duration) -> Result<Reply, Failure> {
        if wire::send(&mut self.stdin, req).is_err() {
            return Err(self.died());
        }
        match self.replies.recv_timeout(deadline) {
            Ok(reply) => Ok(reply),
            Err(RecvTimeoutError::Timeout) => Err(Failure::Overran(deadline)),
            Err(RecvTimeoutError::Disconnected) => Err(self.died()),
        }
    }

    /// The failure of a worker whose pipes closed: its exit status and stderr.
    fn died(&mut self) -> Failure {
        let status = self
            .child
            .wait()
            .map_or_else(|e| e.to_string(), |s| s.to_string());
        Failure::Died(format!("{status}: {}", self.stderr()))
    }

    /// What the (exited) worker wrote to stderr, trimmed.
    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        text.trim().to_owned()
    }
}

impl Drop for Worker {
    /// Kills and reaps the process (a dropped worker is either broken or surplus).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
