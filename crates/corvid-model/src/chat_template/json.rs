//! `tojson` as Python's `json.dumps(ensure_ascii=False)`: `", "`/`": "` separators, or
//! newlines and `indent` spaces, and no HTML escaping (unlike minijinja's builtin).

use minijinja::value::Kwargs;
use minijinja::value::ValueKind;
use minijinja::{Error, ErrorKind, Value};

/// The `tojson` filter: `x | tojson` or `x | tojson(indent=2)`; map keys keep their order.
pub fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write(&value, indent, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

fn newline(indent: Option<usize>, depth: usize, out: &mut String) {
    if let Some(n) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', n * depth));
    }
}

fn write(v: &Value, indent: Option<usize>, depth: usize, out: &mut String) -> Result<(), Error> {
    let item_sep = if indent.is_some() { "," } else { ", " };
    let (open, close, is_map) = match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => ('[', ']', false),
        ValueKind::Map => ('{', '}', true),
        ValueKind::Undefined | ValueKind::None => {
            out.push_str("null");
            return Ok(());
        }
        _ => {
            let s = serde_json::to_string(v)
                .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
            out.push_str(&s);
            return Ok(());
        }
    };
    let items: Vec<Value> = v.try_iter()?.collect();
    out.push(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(item_sep);
        }
        newline(indent, depth + 1, out);
        if is_map {
            write(&Value::from(item.to_string()), None, 0, out)?;
            out.push_str(": ");
            write(&v.get_item(item)?, indent, depth + 1, out)?;
        } else {
            write(item, indent, depth + 1, out)?;
        }
    }
    if !items.is_empty() {
        newline(indent, depth, out);
    }
    out.push(close);
    Ok(())
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
                context! { x => context! { b => "<&>", a => vec![1, 2], c => () } },
            )
            .unwrap();
        assert_eq!(
            out,
            "{\"b\": \"<&>\", \"a\": [1, 2], \"c\": null}|{\n \"b\": \"<&>\",\n \"a\": [\n  1,\n  2\n ],\n \"c\": null\n}"
        );
    }
}
