//! The two exposition formats of `/metrics` and the `Accept` negotiation between them.
//!
//! Prometheus text 0.0.4 is the default (the `prometheus` crate's encoder).
//! OpenMetrics 1.0.0 is served when the client prefers it, as Prometheus does by
//! default; the crate has no OpenMetrics encoder, so [`encode_openmetrics`] walks the
//! gathered families. Series names and labels are the same in both formats, so a
//! scraper switching format keeps its series:
//! - counters whose name ends in `_total` become family `x` with sample `x_total`;
//! - a counter without `_total` (the user's `vllm_request_throughput`) cannot be an
//!   OpenMetrics counter under its own name, so it is exposed as `unknown` with the
//!   sample under its exact name — Prometheus stores `vllm_request_throughput`, and
//!   `rate(vllm_request_throughput[1m])` keeps working;
//! - no `_created` samples (optional; Prometheus 2.x would store them as extra series);
//! - `le` bounds are written as in the text format (`le="1"`, not `le="1.0"`), so the
//!   bucket series do not change names when the format changes.

use std::fmt::Write;

use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

/// An exposition format of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics text 1.0.0.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Picks the format from an `Accept` header: the acceptable media range with the
    /// highest `q` wins (the first listed on a tie); OpenMetrics only for
    /// `application/openmetrics-text` with no version or version 1.0.0. Anything else,
    /// or no header, gets the text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut best = (Format::Text, f64::NEG_INFINITY);
        for range in accept.unwrap_or("").split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let (mut q, mut version) = (1.0, None);
            for p in parts {
                match p.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                    Some(("q", v)) => q = v.parse().unwrap_or(0.0),
                    Some(("version", v)) => version = Some(v.to_string()),
                    _ => {}
                }
            }
            let format = match media.as_str() {
                "application/openmetrics-text"
                    if version.as_deref().unwrap_or("1.0.0") == "1.0.0" =>
                {
                    Format::OpenMetrics
                }
                "text/plain" | "text/*" | "*/*" => Format::Text,
                _ => continue,
            };
            if q > 0.0 && q > best.1 {
                best = (format, q);
            }
        }
        best.0
    }
}

/// Renders `families` in OpenMetrics 1.0.0 (see the module docs), ending with `# EOF`.
pub fn encode_openmetrics(families: &[MetricFamily]) -> String {
    let mut out = String::with_capacity(64 * 1024);
    for mf in families {
        let name = mf.get_name();
        let (family, kind) = match mf.get_field_type() {
            MetricType::COUNTER => match name.strip_suffix("_total") {
                Some(f) => (f, "counter"),
                None => (name, "unknown"),
            },
            MetricType::GAUGE => (name, "gauge"),
            MetricType::HISTOGRAM => (name, "histogram"),
            MetricType::SUMMARY => (name, "summary"),
            MetricType::UNTYPED => (name, "unknown"),
        };
        if !mf.get_help().is_empty() {
            let _ = writeln!(out, "# HELP {family} {}", escape(mf.get_help()));
        }
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for m in mf.get_metric() {
            write_metric(&mut out, name, mf.get_field_type(), m);
        }
    }
    out.push_str("# EOF\n");
    out
}

fn write_metric(out: &mut String, name: &str, kind: MetricType, m: &Metric) {
    let labels = m.get_label();
    match kind {
        MetricType::COUNTER => sample(out, name, "", labels, None, m.get_counter().get_value()),
        MetricType::GAUGE => sample(out, name, "", labels, None, m.get_gauge().get_value()),
        MetricType::UNTYPED => sample(out, name, "", labels, None, m.get_untyped().get_value()),
        MetricType::HISTOGRAM => {
            let h = m.get_histogram();
            let mut inf_seen = false;
            for b in h.get_bucket() {
                let ub = b.get_upper_bound();
                inf_seen |= ub == f64::INFINITY;
                let le = number(ub);
                let count = b.get_cumulative_count() as f64;
                sample(out, name, "_bucket", labels, Some(("le", &le)), count);
            }
            let count = h.get_sample_count() as f64;
            if !inf_seen {
                sample(out, name, "_bucket", labels, Some(("le", "+Inf")), count);
            }
            sample(out, name, "_sum", labels, None, h.get_sample_sum());
            sample(out, name, "_count", labels, None, count);
        }
        MetricType::SUMMARY => {
            let s = m.get_summary();
            for q in s.get_quantile() {
                let quantile = number(q.get_quantile());
                let extra = Some(("quantile", quantile.as_str()));
                sample(out, name, "", labels, extra, q.get_value());
            }
            sample(out, name, "_sum", labels, None, s.get_sample_sum());
            sample(
                out,
                name,
                "_count",
                labels,
                None,
                s.get_sample_count() as f64,
            );
        }
    }
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[LabelPair],
    extra: Option<(&str, &str)>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    let pairs = labels
        .iter()
        .map(|l| (l.get_name(), l.get_value()))
        .chain(extra);
    for (i, (k, v)) in pairs.enumerate() {
        out.push(if i == 0 { '{' } else { ',' });
        let _ = write!(out, "{k}=\"{}\"", escape(v));
    }
    if !labels.is_empty() || extra.is_some() {
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

/// A float as OpenMetrics spells it (`+Inf`, `-Inf`, `NaN`; otherwise Rust's shortest
/// round-trip form, which is also what the text encoder writes).
pub(crate) fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// Escapes `\`, newline and `"` (HELP text and label values).
fn escape(s: &str) -> String {
    s.replace('\\', r"\\")
        .replace('\n', r"\n")
        .replace('"', r#"\""#)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn negotiation() {
        use Format::*;
        for (accept, want) in [
            (None, Text),
            (Some(""), Text),
            (Some("*/*"), Text),
            (Some("text/plain"), Text),
            (Some(PROMETHEUS_ACCEPT), OpenMetrics),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                Some("Application/OpenMetrics-Text; version=1.0.0; charset=utf-8"),
                OpenMetrics,
            ),
            (Some("application/openmetrics-text;version=2.0.0"), Text),
            (Some("application/openmetrics-text;q=0.2,text/plain"), Text),
            (
                Some("text/plain;q=0.2,application/openmetrics-text"),
                OpenMetrics,
            ),
            (Some("text/plain,application/openmetrics-text"), Text),
            (Some("application/openmetrics-text;q=0,*/*"), Text),
            (Some("application/json"), Text),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn numbers_and_escapes() {
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(3.0), "3");
        assert_eq!(escape("a\\b\n\"c\""), r#"a\\b\n\"c\""#);
    }
}
