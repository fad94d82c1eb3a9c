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

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    // 10^12 iterations if nothing stopped it.
    let e = render(
        "{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}\
         {% if a < 0 %}x{% endif %}{% endfor %}{% endfor %}{% endfor %}",
    )
    .unwrap_err();
    assert!(e.contains("instructions"), "{e}");
}

#[test]
fn endless_recursion_hits_the_recursion_limit() {
    let e = render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").unwrap_err();
    assert!(e.contains("recursion"), "{e}");
}

#[test]
fn output_is_capped() {
    // 10,000 x 10,000 bytes = 100 MB of output.
    let e = render("{% for i in range(10000) %}{{ 'x' * 10000 }}{% endfor %}").unwrap_err();
    assert!(e.contains("output exceeds"), "{e}");
}

#[test]
fn string_repetition_is_capped() {
    let e = render("{{ 'ab' * 4000000000 }}").unwrap_err();
    assert!(e.contains("too large"), "{e}");
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
