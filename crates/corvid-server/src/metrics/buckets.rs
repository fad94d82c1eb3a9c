//! `--histogram-buckets NAME=b1,b2,...`: replaces the bucket list of one named histogram
//! (operators tune buckets to their latency range without a rebuild). Parsing checks
//! everything, so a bad value stops `corvid serve` with one line naming the flag.

use std::str::FromStr;

use super::names::{self, Kind};

/// One override: the histogram's exposed name and its new upper bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramBuckets {
    /// A histogram name from [`names::ALL`].
    pub name: String,
    /// Finite, strictly increasing upper bounds (`+Inf` is implicit).
    pub buckets: Vec<f64>,
}

impl FromStr for HistogramBuckets {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, list) = s
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=b1,b2,..., got {s:?}"))?;
        let name = name.trim();
        if !names::ALL
            .iter()
            .any(|d| d.kind == Kind::Histogram && d.name == name)
        {
            return Err(format!(
                "no histogram named {name:?} (see docs/metrics.md for the names)"
            ));
        }
        let buckets = list
            .split(',')
            .map(|b| match b.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(format!("bucket {b:?} of {name} is not a finite number")),
            })
            .collect::<Result<Vec<f64>, String>>()?;
        if buckets.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("buckets of {name} must be strictly increasing"));
        }
        Ok(HistogramBuckets {
            name: name.to_string(),
            buckets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_known_histogram() {
        let b: HistogramBuckets = "vllm_request_latency_seconds=0.5, 1,2.5".parse().unwrap();
        assert_eq!(b.name, "vllm_request_latency_seconds");
        assert_eq!(b.buckets, vec![0.5, 1.0, 2.5]);
        let v: HistogramBuckets = "vllm:e2e_request_latency_seconds=1".parse().unwrap();
        assert_eq!(v.buckets, vec![1.0]);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "vllm_request_latency_seconds",
            "vllm_request_throughput=1,2",
            "nope=1",
            "vllm_request_latency_seconds=",
            "vllm_request_latency_seconds=1,x",
            "vllm_request_latency_seconds=1,inf",
            "vllm_request_latency_seconds=2,1",
            "vllm_request_latency_seconds=1,1",
        ] {
            let e = bad.parse::<HistogramBuckets>().unwrap_err();
            assert!(!e.contains('\n') && !e.is_empty(), "{bad}: {e}");
        }
    }
}
