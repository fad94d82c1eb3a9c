//! The chat-template sandbox with the real `corvid` binary: templates that grow a string
//! exponentially (`~` and `join` doubling, only when a message says "boom") get a clear
//! error naming the memory limit, while the server keeps serving and stays small.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corvid_model::chat_template::isolated::{IsolatedTemplate, WorkerCommand, MEMORY_LIMIT_BYTES};
use corvid_model::tokenizer::{ChatMessage, ChatTemplate};

/// The tiny qwen2 template, preceded by `growth` — doublings of a string, `steps` times,
/// run only when the last message contains "boom" — and the grown string's length.
fn hostile(doubling: &str, steps: u32) -> String {
    format!(
        "{{% set ns = namespace(s='x') %}}{{% if 'boom' in messages[-1].content %}}\
         {{% for i in range({steps}) %}}{{% set ns.s = {doubling} %}}{{% endfor %}}\
         {{{{ ns.s | length }}}}{{% endif %}}\
         {{% for m in messages %}}<|im_start|>{{{{ m.role }}}}\n{{{{ m.content }}}}<|im_end|>\n{{% endfor %}}"
    )
}

const CONCAT: &str = "ns.s ~ ns.s";
const JOIN: &str = "[ns.s, ns.s] | join";

fn worker() -> WorkerCommand {
    WorkerCommand {
        program: env!("CARGO_BIN_EXE_corvid").into(),
        args: vec!["template-worker".into()],
    }
}

fn user(text: &str) -> Vec<ChatMessage> {
    vec![ChatMessage {
        role: "user".into(),
        content: text.into(),
    }]
}

#[test]
fn exponential_growth_is_a_memory_limit_error_and_the_next_render_works() {
    let limit = format!("memory limit of {} MiB", MEMORY_LIMIT_BYTES >> 20);
    for doubling in [CONCAT, JOIN] {
        let t = ChatTemplate::new(&hostile(doubling, 40), "<s>", "</s>").unwrap();
        let isolated = IsolatedTemplate::start(worker(), &t).unwrap();
        let hi = user("hi");
        assert_eq!(
            isolated.render(&hi, false).unwrap(),
            t.render(&hi, false).unwrap()
        );
        for _ in 0..2 {
            let e = isolated
                .render(&user("boom"), false)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&limit), "{doubling}: {e}");
            assert_eq!(
                isolated.render(&hi, false).unwrap(),
                t.render(&hi, false).unwrap()
            );
        }
    }
}

/// 2^30 bytes fit in this machine's memory but not in a worker's: the limit is the
/// worker's own, not the machine running out.
#[test]
fn the_limit_is_the_workers_not_the_machines() {
    let t = ChatTemplate::new(&hostile(CONCAT, 30), "<s>", "</s>").unwrap();
    let isolated = IsolatedTemplate::start(worker(), &t).unwrap();
    let e = isolated
        .render(&user("boom"), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("memory limit"), "{e}");
}

/// A render past the deadline (searching an 8 MiB string over and over: little fuel,
/// no memory) is killed.
#[test]
fn a_render_past_the_deadline_is_an_error() {
    let source = "{% set ns = namespace(s='ab') %}{% for i in range(22) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}\
                  {% for i in range(100000) %}{% if 'zz' in ns.s %}!{% endif %}{% endfor %}done";
    let t = ChatTemplate::new(source, "<s>", "</s>").unwrap();
    let isolated = IsolatedTemplate::start(worker(), &t).unwrap();
    let start = Instant::now();
    let e = isolated.render(&user("x"), false).unwrap_err().to_string();
    assert!(e.contains("ran longer than"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

/// A `corvid serve` on a copy of the tiny qwen2 HF folder whose chat template is hostile.
struct Served {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn serve_with_template(template: &str) -> Served {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny/qwen2-hf");
    let dir = std::env::temp_dir().join(format!("corvid-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    std::fs::write(dir.join("chat_template.jinja"), template).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_corvid"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            // The server takes its KV pool at start; keep it well under the RSS bound below.
            "--kv-cache-memory",
            "64MiB",
            "--model",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Served {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    }
}

/// Peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_400_and_keeps_serving() {
    let mut server = serve_with_template(&hostile(CONCAT, 40));
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(client.get(format!("{}/health", server.base)).send().await, Ok(r) if r.status() == 200)
    {
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "corvid serve exited"
        );
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let chat = |text: &str| {
        let request = client
            .post(format!("{}/v1/chat/completions", server.base))
            .json(&serde_json::json!({
                "messages": [{"role": "user", "content": text}],
                "max_tokens": 4,
            }));
        tokio::spawn(async move { request.send().await.unwrap() })
    };
    // A hostile request while ordinary ones run: they all complete.
    let ordinary: Vec<_> = ["hello", "hi", "hey", "good day"].map(chat).into();
    let boom = chat("boom now").await.unwrap();
    assert_eq!(boom.status(), 400);
    let body: serde_json::Value = boom.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("memory limit of"), "{message}");
    assert_eq!(body["error"]["param"], "messages");
    for r in ordinary {
        assert_eq!(r.await.unwrap().status(), 200);
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "corvid serve died"
    );
    let next = chat("hello again").await.unwrap();
    assert_eq!(next.status(), 200);
    let health = client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let peak = peak_rss(server.child.id());
    assert!(
        peak < 512 << 20,
        "the server's peak RSS is {} MiB",
        peak >> 20
    );
}

/// What a worker render costs over an in-process one (a pipe round trip and JSON both
/// ways), printed for docs/reliability.md; the texts must be the same.
#[test]
fn a_worker_render_matches_and_its_overhead_is_small() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny/qwen2.gguf");
    let tok = corvid_model::load_tokenizer(&fixture).unwrap();
    let t = tok.chat_template().unwrap();
    let isolated = IsolatedTemplate::start(worker(), t).unwrap();
    let messages: Vec<ChatMessage> = ["system", "user", "assistant", "user"]
        .map(|role| ChatMessage {
            role: role.into(),
            content: "A sentence of about the length people type in a chat. ".repeat(4),
        })
        .into();
    let time = |render: &dyn Fn() -> String| {
        let start = Instant::now();
        for _ in 0..200 {
            assert_eq!(render(), t.render(&messages, true).unwrap());
        }
        start.elapsed() / 200
    };
    let inside = time(&|| t.render(&messages, true).unwrap());
    let worker = time(&|| isolated.render(&messages, true).unwrap());
    eprintln!("chat template render: in process {inside:?}, in a worker {worker:?}");
    assert!(worker < Duration::from_millis(50), "{worker:?}");
}
