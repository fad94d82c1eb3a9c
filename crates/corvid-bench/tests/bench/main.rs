//! corvid-bench integration tests (one binary): workload generation, percentile math,
//! the load generator against a misbehaving in-test SSE server, and (when a `corvid`
//! binary with `serve` is built) against a real corvid server cross-checked with /metrics.

mod fake_server;
mod loadgen;
mod percentiles;
mod real_server;
mod workload;
