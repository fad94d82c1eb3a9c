//! The engine thread: applies the handles' commands to the [`EngineCore`] and steps it
//! while there is work, sleeping on the command channel when idle.

use crate::engine_core::{EngineCore, Shared};
use crate::sequence::Sequence;
use crate::stats::EngineSnapshot;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

/// What a handle asks of the engine thread.
pub enum Command {
    /// Queue the sequences of one request.
    Add(Vec<Sequence>),
    /// Abort every sequence of the request with this id.
    Abort(String),
    /// Reply with the state after every command sent before this one.
    Snapshot(Sender<EngineSnapshot>),
    /// Finish in-flight work, then stop the thread.
    Shutdown,
}

/// Applies a command; returns true for shutdown.
fn apply(c: Command, core: &mut EngineCore) -> bool {
    match c {
        Command::Add(seqs) => core.add(seqs),
        Command::Abort(id) => core.abort(&id),
        Command::Snapshot(reply) => {
            let _ = reply.send(core.snapshot_now());
        }
        Command::Shutdown => return true,
    }
    false
}

/// The engine thread's body: [`run`], and if a step panics, the engine is declared dead
/// ([`Shared::dead`]) and its state dropped — every request's output channel closes, so
/// each stream ends its unfinished samples with [`crate::FinishReason::Error`], and the
/// requests still queued on the command channel end the same way. Nothing is retried on
/// a core whose invariants a panic may have broken.
pub fn run_guarded(mut core: EngineCore, rx: Receiver<Command>, shared: &Shared) {
    let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(&mut core, &rx))) else {
        return;
    };
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(panic = %msg, "engine thread died; failing every request");
    shared.dead.send_replace(true);
    drop(core);
    drop(rx);
}

/// Runs the engine until shutdown (once idle) or until every handle is gone.
fn run(core: &mut EngineCore, rx: &Receiver<Command>) {
    let mut shutting_down = false;
    loop {
        if core.is_idle() {
            if shutting_down {
                break;
            }
            match rx.recv() {
                Ok(c) => shutting_down |= apply(c, core),
                Err(_) => break,
            }
        }
        while let Ok(c) = rx.try_recv() {
            shutting_down |= apply(c, core);
        }
        if !core.is_idle() && !core.step() {
            // Nothing could be scheduled (every waiting prompt needs blocks still held);
            // wait for a command instead of spinning.
            if let Ok(c) = rx.recv_timeout(Duration::from_millis(5)) {
                shutting_down |= apply(c, core);
            }
        }
    }
    tracing::info!("engine loop stopped");
}
