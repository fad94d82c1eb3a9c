//! Creates metrics from their [`MetricDef`] and registers them in one registry: applies
//! `--histogram-buckets` overrides and gives vLLM's `vllm:` series vLLM's `engine` label.

use prometheus::core::Collector;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use super::buckets::HistogramBuckets;
use super::names::MetricDef;

/// The value of the `engine` label on `vllm:` series: vLLM numbers its engine cores and
/// a single-engine vLLM exposes `engine="0"`; vLLM dashboards may select on it.
pub const VLLM_ENGINE_INDEX: &str = "0";

/// Registers metrics in `registry`, with the bucket overrides.
pub(super) struct Builder<'a> {
    pub(super) registry: Registry,
    pub(super) overrides: &'a [HistogramBuckets],
}

impl Builder<'_> {
    fn opts(d: MetricDef) -> Opts {
        let o = Opts::new(d.name, d.help);
        if d.is_vllm_compat() {
            o.const_label("engine", VLLM_ENGINE_INDEX)
        } else {
            o
        }
    }
    fn histogram_opts(&self, d: MetricDef, default: &[f64]) -> HistogramOpts {
        let buckets = self
            .overrides
            .iter()
            .rev()
            .find(|o| o.name == d.name)
            .map_or(default, |o| &o.buckets);
        HistogramOpts::from(Self::opts(d)).buckets(buckets.to_vec())
    }
    fn reg<T: Collector + Clone + 'static>(&self, m: T) -> T {
        self.registry
            .register(Box::new(m.clone()))
            .expect("metric names are unique");
        m
    }
    pub(super) fn counter(&self, d: MetricDef) -> IntCounter {
        self.reg(IntCounter::with_opts(Self::opts(d)).expect("valid metric"))
    }
    pub(super) fn counter_vec(&self, d: MetricDef, labels: &[&str]) -> IntCounterVec {
        self.reg(IntCounterVec::new(Self::opts(d), labels).expect("valid metric"))
    }
    pub(super) fn gauge(&self, d: MetricDef) -> Gauge {
        self.reg(Gauge::with_opts(Self::opts(d)).expect("valid metric"))
    }
    pub(super) fn int_gauge(&self, d: MetricDef) -> IntGauge {
        self.reg(IntGauge::with_opts(Self::opts(d)).expect("valid metric"))
    }
    pub(super) fn gauge_vec(&self, d: MetricDef, labels: &[&str]) -> GaugeVec {
        self.reg(GaugeVec::new(Self::opts(d), labels).expect("valid metric"))
    }
    pub(super) fn info(&self, d: MetricDef, labels: &[&str]) -> IntGaugeVec {
        self.reg(IntGaugeVec::new(Self::opts(d), labels).expect("valid metric"))
    }
    pub(super) fn histogram(&self, d: MetricDef, default: &[f64]) -> Histogram {
        self.reg(Histogram::with_opts(self.histogram_opts(d, default)).expect("valid metric"))
    }
    pub(super) fn histogram_vec(
        &self,
        d: MetricDef,
        default: &[f64],
        labels: &[&str],
    ) -> HistogramVec {
        self.reg(HistogramVec::new(self.histogram_opts(d, default), labels).expect("valid metric"))
    }
}
