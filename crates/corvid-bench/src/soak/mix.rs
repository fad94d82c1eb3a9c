//! The soak's request mix: which kinds of request, how often, and the body of each —
//! drawn from a seeded generator, so a run is repeatable request for request.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::Duration;

/// A kind of soak request and what the client does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Chat, one JSON response (n = 1 or 2, logprobs, a seed).
    Chat,
    /// Chat, streamed.
    ChatStream,
    /// Completion, one JSON response (n = 2, logprobs, stop strings, a seed).
    Completion,
    /// Completion, streamed, with stop strings.
    CompletionStream,
    /// A streamed request the client drops after its first tokens.
    Cancel,
    /// A request the client gives up on after a few hundred milliseconds.
    ClientTimeout,
    /// A body that is not a valid request (must be a 4xx).
    Garbage,
    /// A prompt longer than the model's context (must be a 4xx).
    OverLong,
}

impl Kind {
    /// Every kind, in table order.
    pub const ALL: [Kind; 8] = [
        Kind::Chat,
        Kind::ChatStream,
        Kind::Completion,
        Kind::CompletionStream,
        Kind::Cancel,
        Kind::ClientTimeout,
        Kind::Garbage,
        Kind::OverLong,
    ];

    /// Relative frequency in the mix (out of 100).
    fn weight(self) -> u32 {
        match self {
            Kind::Chat | Kind::ChatStream | Kind::Completion | Kind::CompletionStream => 18,
            Kind::Cancel | Kind::ClientTimeout => 9,
            Kind::Garbage => 6,
            Kind::OverLong => 4,
        }
    }

    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::ChatStream => "chat stream",
            Kind::Completion => "completion",
            Kind::CompletionStream => "completion stream",
            Kind::Cancel => "cancel mid-stream",
            Kind::ClientTimeout => "client timeout",
            Kind::Garbage => "garbage body",
            Kind::OverLong => "over-long prompt",
        }
    }

    /// Whether the request is valid and must complete (unless the client cuts it).
    pub fn is_valid(self) -> bool {
        !matches!(self, Kind::Garbage | Kind::OverLong)
    }
}

/// What to send for one soak request, and how.
#[derive(Clone, Debug)]
pub struct Planned {
    /// Its kind.
    pub kind: Kind,
    /// `/v1/chat/completions` or `/v1/completions`.
    pub path: &'static str,
    /// The raw body (garbage included).
    pub body: Vec<u8>,
    /// Samples asked for.
    pub n: usize,
    /// Whether logprobs were asked for.
    pub logprobs: bool,
    /// Stop strings, which must not appear in the returned text.
    pub stop: Vec<String>,
    /// Streamed (`stream: true`).
    pub stream: bool,
    /// [`Kind::Cancel`]: content chunks read before dropping the stream.
    pub cancel_after_chunks: usize,
    /// [`Kind::ClientTimeout`]: when the client gives up.
    pub client_timeout: Option<Duration>,
}

const WORDS: [&str; 16] = [
    "river", "stone", "light", "paper", "garden", "winter", "signal", "harbor", "copper", "meadow",
    "engine", "forest", "market", "silver", "thunder", "window",
];
const STOPS: [&str; 4] = [".", "\n", " the", ","];

/// Request `index` of a run seeded with `seed`; `max_model_len` sizes the over-long
/// prompts, `max_tokens` bounds generation.
pub fn plan(seed: u64, index: u64, model: &str, max_model_len: usize, max_tokens: u32) -> Planned {
    let mut rng = StdRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let kind = pick(&mut rng);
    let words = rng.gen_range(4..40);
    let text: Vec<&str> = (0..words)
        .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
        .collect();
    let text = text.join(" ");
    let mut p = Planned {
        kind,
        path: "/v1/completions",
        body: Vec::new(),
        n: 1,
        logprobs: false,
        stop: Vec::new(),
        stream: false,
        cancel_after_chunks: 0,
        client_timeout: None,
    };
    let mut body = json!({
        "model": model,
        "max_tokens": rng.gen_range(1..=max_tokens),
        "temperature": if rng.gen_bool(0.5) { 0.0 } else { 0.8 },
        "seed": rng.gen_range(0..1_000_000),
    });
    let chat = |body: &mut Value, p: &mut Planned| {
        p.path = "/v1/chat/completions";
        body["messages"] = json!([{"role": "user", "content": text}]);
    };
    match kind {
        Kind::Chat => {
            chat(&mut body, &mut p);
            p.n = rng.gen_range(1..=2);
            p.logprobs = rng.gen_bool(0.5);
            body["n"] = json!(p.n);
            if p.logprobs {
                body["logprobs"] = json!(true);
                body["top_logprobs"] = json!(2);
            }
        }
        Kind::ChatStream => {
            chat(&mut body, &mut p);
            p.stream = true;
        }
        Kind::Completion | Kind::CompletionStream => {
            body["prompt"] = json!(text);
            p.stop = vec![STOPS[rng.gen_range(0..STOPS.len())].to_string()];
            body["stop"] = json!(p.stop);
            if kind == Kind::Completion {
                p.n = 2;
                p.logprobs = true;
                body["n"] = json!(2);
                body["logprobs"] = json!(2);
            } else {
                p.stream = true;
            }
        }
        Kind::Cancel => {
            body["prompt"] = json!(text);
            body["max_tokens"] = json!(max_tokens.max(16) * 2);
            body["ignore_eos"] = json!(true);
            p.stream = true;
            p.cancel_after_chunks = rng.gen_range(1..=3);
        }
        Kind::ClientTimeout => {
            chat(&mut body, &mut p);
            body["max_tokens"] = json!(max_tokens.max(16) * 2);
            p.client_timeout = Some(Duration::from_millis(rng.gen_range(200..=500)));
        }
        Kind::Garbage => {
            p.body = garbage(&mut rng, model);
            return p;
        }
        Kind::OverLong => {
            let long: Vec<&str> = (0..max_model_len + 64)
                .map(|i| WORDS[i % WORDS.len()])
                .collect();
            body["prompt"] = json!(long.join(" "));
        }
    }
    if p.stream {
        body["stream"] = json!(true);
    }
    p.body = serde_json::to_vec(&body).expect("a JSON value serializes");
    p
}

fn pick(rng: &mut StdRng) -> Kind {
    let total: u32 = Kind::ALL.iter().map(|k| k.weight()).sum();
    let mut x = rng.gen_range(0..total);
    for k in Kind::ALL {
        if x < k.weight() {
            return k;
        }
        x -= k.weight();
    }
    unreachable!("x < total")
}

/// A body the server must refuse with a 4xx: not JSON, truncated, random bytes, or JSON
/// whose fields have the wrong types or values out of range.
fn garbage(rng: &mut StdRng, model: &str) -> Vec<u8> {
    match rng.gen_range(0..6) {
        0 => (0..rng.gen_range(1..200)).map(|_| rng.gen()).collect(),
        1 => format!("{{\"model\": \"{model}\", \"prompt\": \"cut").into_bytes(),
        2 => Vec::new(),
        3 => json!({"model": model, "prompt": 5, "max_tokens": "many"})
            .to_string()
            .into_bytes(),
        4 => json!({"model": model, "prompt": "x", "temperature": -3, "n": 0})
            .to_string()
            .into_bytes(),
        _ => json!({"model": model, "messages": [{"role": "robot", "content": "hi"}]})
            .to_string()
            .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan is a pure function of (seed, index); every kind shows up in a few hundred
    /// requests, and valid bodies are JSON.
    #[test]
    fn repeatable_and_covers_every_kind() {
        let a: Vec<_> = (0..300).map(|i| plan(7, i, "m", 64, 8)).collect();
        let b: Vec<_> = (0..300).map(|i| plan(7, i, "m", 64, 8)).collect();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((x.kind, &x.body), (y.kind, &y.body));
        }
        for k in Kind::ALL {
            assert!(a.iter().any(|p| p.kind == k), "{k:?} never drawn");
        }
        for p in a.iter().filter(|p| p.kind != Kind::Garbage) {
            serde_json::from_slice::<Value>(&p.body).unwrap();
        }
    }
}
