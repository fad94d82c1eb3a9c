//! Chat templates under HF semantics: trim/lstrip blocks, Python string methods,
//! `raise_exception`, `tojson`, `strftime_now`, loop variables, bos/eos tokens.

use corvid_model::tokenizer::{ChatMessage, ChatTemplate};
use corvid_model::ModelError;

fn msgs(pairs: &[(&str, &str)]) -> Vec<ChatMessage> {
    pairs
        .iter()
        .map(|(role, content)| ChatMessage {
            role: (*role).into(),
            content: (*content).into(),
        })
        .collect()
}

const LLAMA3: &str = "{{- bos_token }}\n{%- for message in messages %}\n    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n";

#[test]
fn llama3_style_whitespace_control_and_bos() {
    let t = ChatTemplate::new(LLAMA3, "<|begin_of_text|>", "<|eot_id|>").unwrap();
    let out = t.render(&msgs(&[("user", "  Hi  ")]), true).unwrap();
    assert_eq!(
        out,
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn raise_exception_is_an_error() {
    let src = "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('roles must alternate') }}{% endif %}[{{ m['role'] }}]{% endfor %}";
    let t = ChatTemplate::new(src, "<s>", "</s>").unwrap();
    assert_eq!(
        t.render(&msgs(&[("user", "a"), ("assistant", "b")]), false)
            .unwrap(),
        "[user][assistant]"
    );
    let err = t.render(&msgs(&[("assistant", "b")]), false).unwrap_err();
    assert!(
        matches!(&err, ModelError::Tokenizer(m) if m.contains("roles must alternate")),
        "{err}"
    );
}

#[test]
fn python_methods_tojson_strftime_and_loop() {
    let src = "{% for m in messages %}{% if loop.first %}{{ eos_token }}{% endif %}{{ m.content.strip().upper() }}|{{ m.content.startswith(' x') }}|{{ m | tojson }}{% if not loop.last %};{% endif %}{% endfor %}|{{ strftime_now('%Y')|length }}";
    let t = ChatTemplate::new(src, "<s>", "</s>").unwrap();
    let out = t.render(&msgs(&[("user", " x<y> ")]), false).unwrap();
    assert_eq!(
        out,
        "</s>X<Y>|True|{\"role\": \"user\", \"content\": \" x<y> \"}|4"
    );
}

#[test]
fn syntax_errors_are_reported_at_compile_time() {
    assert!(matches!(
        ChatTemplate::new("{% for %}", "", ""),
        Err(ModelError::Tokenizer(_))
    ));
}

/// Gemma 3's built-in template: the system message opens the first user turn, the
/// assistant is `model`, contents are trimmed, roles must alternate. The expected text
/// is the one `fixtures/gen/golden_gemma3.py` feeds llama.cpp for its chat cases.
#[test]
fn builtin_gemma3_template() {
    let src = corvid_model::chat_template::builtin("gemma3").unwrap();
    let t = ChatTemplate::new(src, "<bos>", "<eos>").unwrap();
    let out = t
        .render(
            &msgs(&[
                ("system", "Be brief."),
                ("user", " What is 12 times 12? "),
                ("assistant", "144."),
                ("user", "And 13?"),
            ]),
            true,
        )
        .unwrap();
    assert_eq!(
        out,
        "<bos><start_of_turn>user\nBe brief.\n\nWhat is 12 times 12?<end_of_turn>\n\
         <start_of_turn>model\n144.<end_of_turn>\n<start_of_turn>user\nAnd 13?<end_of_turn>\n\
         <start_of_turn>model\n"
    );
    assert!(t.render(&msgs(&[("assistant", "hi")]), false).is_err());
    assert!(corvid_model::chat_template::builtin("llama").is_none());
}
