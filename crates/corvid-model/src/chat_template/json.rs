//! `tojson` as Python's `json.dumps(ensure_ascii=False)`: `", "`/`": "` separators, or
//! newlines and `indent` spaces, and no HTML escaping (unlike minijinja's builtin).

use minijinja::value::Kwargs;
use minijinja::{Error, ErrorKind, Value};

/// The `tojson` filter: `x | tojson` or `x | tojson(indent=2)`.
pub fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    let json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    write(&json, indent, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn newline(indent: Option<usize>, depth: usize, out: &mut String) {
    if let Some(n) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', n * depth));
    }
}

fn write(v: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut String) {
    use serde_json::Value as J;
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        J::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(indent, depth + 1, out);
                write(item, indent, depth + 1, out);
            }
            newline(indent, depth, out);
            out.push(']');
        }
        J::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(indent, depth + 1, out);
                out.push_str(&J::String(k.clone()).to_string());
                out.push_str(": ");
                write(item, indent, depth + 1, out);
            }
            newline(indent, depth, out);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use minijinja::{context, Environment};

    #[test]
    fn python_style_separators_and_no_html_escaping() {
        let mut env = Environment::new();
        env.add_filter("tojson", super::tojson);
        let out = env
            .render_str(
                "{{ x | tojson }}|{{ x | tojson(indent=1) }}",
                context! { x => context! { a => vec![1, 2], b => "<&>" } },
            )
            .unwrap();
        assert_eq!(
            out,
            "{\"a\": [1, 2], \"b\": \"<&>\"}|{\n \"a\": [\n  1,\n  2\n ],\n \"b\": \"<&>\"\n}"
        );
    }
}
