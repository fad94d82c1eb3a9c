//! Reading Prometheus text exposition: the sum of a metric over all its label sets.

/// Sum of every sample of `name` (any labels) in Prometheus text format; `None` when
/// the metric is absent. Histogram/summary children (`name_bucket`, ...) do not match.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    metric_sum_where(text, name, |_| true)
}

/// Sum of the samples of `name` whose label text (`a="x",b="y"`, empty without labels)
/// satisfies `keep`; `None` when no sample of `name` is kept.
pub fn metric_sum_where(text: &str, name: &str, keep: impl Fn(&str) -> bool) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || !line.starts_with(name) {
            continue;
        }
        let rest = &line[name.len()..];
        let (labels, after_labels) = if let Some(r) = rest.strip_prefix('{') {
            match r.find('}') {
                Some(i) => (&r[..i], &r[i + 1..]),
                None => continue,
            }
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue;
        };
        if !keep(labels) {
            continue;
        }
        if let Some(v) = after_labels
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_labels_and_skips_children() {
        let t = "# HELP x y\nvllm_a{model_name=\"m\"} 3\nvllm_a{model_name=\"n\"} 2\nvllm_a_bucket{le=\"1\"} 9\nvllm_b 1.5\n";
        assert_eq!(metric_sum(t, "vllm_a"), Some(5.0));
        assert_eq!(metric_sum(t, "vllm_b"), Some(1.5));
        assert_eq!(metric_sum(t, "vllm_c"), None);
        let n = |l: &str| l.contains("model_name=\"n\"");
        assert_eq!(metric_sum_where(t, "vllm_a", n), Some(2.0));
        assert_eq!(metric_sum_where(t, "vllm_b", n), None);
    }
}
