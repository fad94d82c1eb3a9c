//! Hostile chat templates (a model file's template is untrusted): each is a clear error,
//! not a hang, a stack overflow, an unbounded output or a file read.

use super::*;

fn render(source: &str) -> std::result::Result<String, String> {
    let t = ChatTemplate::new(source, "<s>", "</s>").map_err(|e| e.to_string())?;
    let msgs = [ChatMessage {
        role: "user".into(),
        content: "hi".into(),
    }];
    t.render(&msgs, true).map_err(|e| e.to_string())
}

/// Each runaway template fails with the limit it hit.
#[test]
fn runaway_templates_hit_their_limits() {
    let cases = [
        // 10^12 iterations if nothing stopped it.
        (
            "instructions",
            "{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}\
             {% if a < 0 %}x{% endif %}{% endfor %}{% endfor %}{% endfor %}",
        ),
        (
            "recursion",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        ),
        // 10,000 x 10,000 bytes = 100 MB of output.
        (
            "output exceeds",
            "{% for i in range(10000) %}{{ 'x' * 10000 }}{% endfor %}",
        ),
        ("too large", "{{ 'ab' * 4000000000 }}"),
    ];
    for (want, source) in cases {
        let e = render(source).unwrap_err();
        assert!(e.contains(want), "{want}: {e}");
    }
}

#[test]
fn templates_cannot_read_files() {
    for source in [
        "{% include '/etc/passwd' %}",
        "{% import '/etc/hostname' as h %}",
        "{% extends '/etc/passwd' %}",
    ] {
        let e = render(source).unwrap_err();
        assert!(
            e.contains("not found") || e.contains("template"),
            "{source}: {e}"
        );
    }
}

#[test]
fn an_ordinary_template_still_renders() {
    let out = render(
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}\
         {% if add_generation_prompt %}<assistant>{% endif %}",
    )
    .unwrap();
    assert_eq!(out, "<user>hi<assistant>");
}
