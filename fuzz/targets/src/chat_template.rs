//! Chat-template rendering: hostile templates (as a model file may carry) over a fixed
//! conversation, and hostile message text through the real models' templates.

use std::sync::OnceLock;

use corvid_model::chat_template::builtin;
use corvid_model::tokenizer::{ChatMessage, ChatTemplate};

/// The real templates: corvid's built-in Gemma 3 one and those of the fuzzed tokenizers'
/// models, compiled once per process.
fn real_templates() -> Vec<&'static ChatTemplate> {
    static GEMMA: OnceLock<ChatTemplate> = OnceLock::new();
    let gemma = GEMMA.get_or_init(|| {
        let source = builtin("gemma3").expect("corvid ships Gemma 3's template");
        ChatTemplate::new(source, "<bos>", "<eos>").expect("the built-in template compiles")
    });
    let models = super::tokenizer::tokenizers().iter();
    std::iter::once(gemma)
        .chain(models.filter_map(|t| t.chat_template()))
        .collect()
}

/// A conversation of every common role with `text` as the user's and assistant's words.
fn conversation(text: &str) -> Vec<ChatMessage> {
    [
        ("system", "Be brief."),
        ("user", text),
        ("assistant", text),
        ("user", text),
    ]
    .map(|(role, content)| ChatMessage {
        role: role.into(),
        content: content.into(),
    })
    .to_vec()
}

/// `template NUL text`: compiles the template and renders a conversation of `text`;
/// without a NUL, `data` is the text, rendered by every real template.
pub fn run(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0);
    let text = String::from_utf8_lossy(split.map_or(data, |i| &data[i + 1..]));
    let messages = conversation(&text);
    let render = |t: &ChatTemplate| {
        for add_generation_prompt in [false, true] {
            let _ = t.render(&messages, add_generation_prompt);
        }
    };
    match split {
        Some(i) => {
            if let Ok(t) = ChatTemplate::new(&String::from_utf8_lossy(&data[..i]), "<s>", "</s>") {
                render(&t);
            }
        }
        None => real_templates().into_iter().for_each(render),
    }
}
