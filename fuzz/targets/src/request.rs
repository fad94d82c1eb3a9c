//! Request bodies: JSON → protocol types → the rendered, tokenized prompt and checked
//! sampling parameters, as the chat and completions handlers do before the engine.

use std::sync::OnceLock;

use corvid_server::extract::parse_json;
use corvid_server::handlers::chat::render_chat;
use corvid_server::protocol::{ChatCompletionRequest, CompletionRequest};
use corvid_server::validate::sampling_params;
use tokio::runtime::{Builder, Runtime};

/// The context length checks run against (the tiny models').
const MAX_MODEL_LEN: usize = 512;

/// Parses `data` as a chat and as a completions body and validates what parses (the
/// template renders in this process, as a server without a worker command does).
pub fn run(data: &[u8]) {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| Builder::new_current_thread().build().expect("a runtime"));
    let tok = super::tokenizer::tiny_qwen2();
    if let Ok(req) = parse_json::<ChatCompletionRequest>(data) {
        let add_generation_prompt = req.add_generation_prompt.unwrap_or(true);
        let render = render_chat(None, tok, &req.messages, add_generation_prompt, false);
        if let Ok(ids) = runtime.block_on(render) {
            let _ = sampling_params(&req.sampling(), ids.len(), MAX_MODEL_LEN);
        }
    }
    if let Ok(req) = parse_json::<CompletionRequest>(data) {
        let _ = sampling_params(&req.sampling(), 1, MAX_MODEL_LEN);
    }
}
