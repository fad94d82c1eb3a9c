//! What the soak concludes: the client's tally against the server's own counters and
//! gauges, the checks of issue #17, and the summary table.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::exchange::Outcome;
use super::mix::{Kind, Planned};
use super::{RssSample, SoakArgs};
use crate::scrape::{metric_sum, metric_sum_where};

/// What the client saw.
#[derive(Debug, Default, Serialize)]
pub struct Tally {
    /// Per kind: completed, cancelled, refused (4xx), failed.
    pub by_kind: BTreeMap<&'static str, [u64; 4]>,
    /// Completed requests whose samples all ended for the same reason, by reason.
    pub completed_by_reason: BTreeMap<String, u64>,
    /// Completed requests whose samples ended for different reasons.
    pub completed_mixed: u64,
    /// Requests sent twice because the connection was reset as the first was sent.
    pub resent: u64,
    /// The first failures, for the report.
    pub failures: Vec<String>,
}

const COMPLETED: usize = 0;
const CANCELLED: usize = 1;
const REFUSED: usize = 2;
const FAILED: usize = 3;

impl Tally {
    /// Adds one request's outcome (`resent`: after a reset connection). A cancellation
    /// the plan did not ask for is a failure.
    pub fn record(&mut self, p: &Planned, outcome: &Outcome, resent: bool) {
        self.resent += u64::from(resent);
        let slot = match outcome {
            Outcome::Completed(reasons) => {
                if reasons.iter().all(|r| r == &reasons[0]) {
                    *self
                        .completed_by_reason
                        .entry(reasons[0].clone())
                        .or_default() += 1;
                } else {
                    self.completed_mixed += 1;
                }
                COMPLETED
            }
            Outcome::Cancelled if matches!(p.kind, Kind::Cancel | Kind::ClientTimeout) => CANCELLED,
            Outcome::Cancelled => {
                self.fail(p, "cancelled without being asked to");
                FAILED
            }
            Outcome::Refused(_) => REFUSED,
            Outcome::Failed(why) | Outcome::Reset(why) => {
                self.fail(p, why);
                FAILED
            }
        };
        self.by_kind.entry(p.kind.name()).or_default()[slot] += 1;
    }

    fn fail(&mut self, p: &Planned, why: &str) {
        if self.failures.len() < 20 {
            self.failures.push(format!("{}: {why}", p.kind.name()));
        }
    }

    fn total(&self, slot: usize) -> u64 {
        self.by_kind.values().map(|c| c[slot]).sum()
    }
}

/// The server's counters and gauges that the checks read, from one `/metrics` scrape.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerState {
    /// `vllm:request_success_total` by `finished_reason`.
    pub finished: BTreeMap<String, f64>,
    /// HTTP responses with a 4xx status.
    pub http_4xx: f64,
    /// HTTP responses with a 5xx status.
    pub http_5xx: f64,
    /// `vllm:num_requests_running`.
    pub running: f64,
    /// `vllm:num_requests_waiting`.
    pub waiting: f64,
    /// `vllm_kv_cache_blocks_used`.
    pub kv_blocks_used: f64,
    /// `vllm_process_resident_memory_bytes`.
    pub rss_bytes: f64,
    /// `/health` answered 200.
    pub healthy: bool,
}

const REASONS: [&str; 4] = ["stop", "length", "abort", "error"];

impl ServerState {
    /// Scrapes `/metrics` and asks `/health`.
    pub async fn scrape(client: &reqwest::Client, base: &str) -> anyhow::Result<Self> {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let healthy = client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let sum = |name| metric_sum(&text, name).unwrap_or(0.0);
        let status = |class: &'static str| {
            metric_sum_where(&text, "vllm_http_requests_total", |l| {
                l.contains(&format!("status=\"{class}"))
            })
            .unwrap_or(0.0)
        };
        Ok(ServerState {
            finished: REASONS
                .iter()
                .map(|r| {
                    let v = metric_sum_where(&text, "vllm:request_success_total", |l| {
                        l.contains(&format!("finished_reason=\"{r}\""))
                    });
                    (r.to_string(), v.unwrap_or(0.0))
                })
                .collect(),
            http_4xx: status("4"),
            http_5xx: status("5"),
            running: sum("vllm:num_requests_running"),
            waiting: sum("vllm:num_requests_waiting"),
            kv_blocks_used: sum("vllm_kv_cache_blocks_used"),
            rss_bytes: sum("vllm_process_resident_memory_bytes"),
            healthy,
        })
    }

    /// Scrapes until nothing runs or waits (at most [`SETTLE_TIME`]: aborted requests
    /// leave the engine at its next step), then returns that state.
    pub async fn settle(client: &reqwest::Client, base: &str) -> anyhow::Result<Self> {
        let deadline = Instant::now() + SETTLE_TIME;
        loop {
            let s = Self::scrape(client, base).await?;
            let idle = s.running == 0.0 && s.waiting == 0.0 && s.kv_blocks_used == 0.0;
            if idle || Instant::now() > deadline {
                return Ok(s);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn finished(&self, reason: &str) -> f64 {
        self.finished.get(reason).copied().unwrap_or(0.0)
    }
}

/// Longest wait for the server to go idle after the last request.
const SETTLE_TIME: Duration = Duration::from_secs(30);

/// One check: what was compared, and whether it held.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What it checks.
    pub what: String,
    /// The figures it compared.
    pub seen: String,
    /// Whether it held.
    pub ok: bool,
}

/// The soak's result: the tally, the server's deltas and gauges, memory, the checks.
#[derive(Debug, Serialize)]
pub struct Verdict {
    /// Requests sent.
    pub requests: u64,
    /// Concurrency.
    pub concurrency: usize,
    /// Wall time of the requests, seconds.
    pub run_secs: f64,
    /// The client's tally.
    pub tally: Tally,
    /// Server counter increases during the soak, by finish reason.
    pub server_finished: BTreeMap<String, f64>,
    /// The server's state after the soak.
    pub after: ServerState,
    /// Resident memory after warm-up, MiB.
    pub rss_warm_mib: f64,
    /// Highest resident memory seen, MiB.
    pub rss_peak_mib: f64,
    /// Resident memory at the end, MiB.
    pub rss_end_mib: f64,
    /// Resident memory (MiB) as each tenth of the requests finished.
    pub rss_by_tenth: Vec<(u64, f64)>,
    /// The checks.
    pub checks: Vec<Check>,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Verdict {
    /// Compares what the client saw with what the server counted.
    pub fn new(
        args: &SoakArgs,
        tally: Tally,
        before: &ServerState,
        after: &ServerState,
        rss: &[RssSample],
        run_secs: f64,
    ) -> Self {
        let delta = |r: &str| after.finished(r) - before.finished(r);
        let server_finished: BTreeMap<String, f64> =
            REASONS.iter().map(|r| (r.to_string(), delta(r))).collect();
        let completed = tally.total(COMPLETED) as f64;
        let cancelled = tally.total(CANCELLED) as f64;
        // A reset first attempt never reached the engine, but allow for it if it did.
        let resent = tally.resent as f64;
        let refused = tally.total(REFUSED) as f64;
        let failed = tally.total(FAILED);
        let by_reason = |r: &str| tally.completed_by_reason.get(r).copied().unwrap_or(0) as f64;
        let mixed = tally.completed_mixed as f64;
        let counted: f64 = ["stop", "length", "abort"].iter().map(|r| delta(r)).sum();
        let rss_warm = rss
            .iter()
            .find(|s| s.done >= args.warmup)
            .map_or(after.rss_bytes, |s| s.bytes);
        let rss_peak = rss.iter().map(|s| s.bytes).fold(after.rss_bytes, f64::max);
        let mut checks = Vec::new();
        let mut check = |what: &str, seen: String, ok: bool| {
            checks.push(Check {
                what: what.into(),
                seen,
                ok,
            })
        };
        check(
            "every valid request not cut by the client completed; every invalid one got a 4xx",
            format!("{failed} failed"),
            failed == 0,
        );
        check(
            "no server error (HTTP 5xx, finish reason error)",
            format!(
                "{} 5xx, {} error",
                after.http_5xx - before.http_5xx,
                delta("error")
            ),
            after.http_5xx == before.http_5xx && delta("error") == 0.0,
        );
        check(
            "the server counted every refusal",
            format!(
                "{} 4xx counted, {refused} seen",
                after.http_4xx - before.http_4xx
            ),
            after.http_4xx - before.http_4xx == refused,
        );
        check(
            "finished requests counted: completed <= stop + length + abort <= completed + cancelled + resent",
            format!("{completed} <= {counted} <= {}", completed + cancelled + resent),
            completed <= counted && counted <= completed + cancelled + resent,
        );
        check(
            "aborts counted: abort <= cancelled + resent",
            format!("{} <= {}", delta("abort"), cancelled + resent),
            delta("abort") <= cancelled + resent,
        );
        for r in ["stop", "length"] {
            let lo = by_reason(r);
            let hi = lo + mixed + cancelled + resent;
            check(
                &format!("finished_reason={r} counted for every such completion"),
                format!("{lo} <= {} <= {hi}", delta(r)),
                lo <= delta(r) && delta(r) <= hi,
            );
        }
        check(
            "afterwards: running = waiting = KV blocks used = 0",
            format!(
                "{} / {} / {}",
                after.running, after.waiting, after.kv_blocks_used
            ),
            after.running == 0.0 && after.waiting == 0.0 && after.kv_blocks_used == 0.0,
        );
        check(
            "afterwards: /health is 200",
            after.healthy.to_string(),
            after.healthy,
        );
        let growth = (after.rss_bytes - rss_warm) / MIB;
        check(
            &format!(
                "resident memory within {} MiB of its value after {} requests",
                args.rss_bound_mib, args.warmup
            ),
            format!("{:+.1} MiB", growth),
            growth <= args.rss_bound_mib,
        );
        Verdict {
            requests: args.requests,
            concurrency: args.concurrency,
            run_secs,
            tally,
            server_finished,
            after: after.clone(),
            rss_warm_mib: rss_warm / MIB,
            rss_peak_mib: rss_peak / MIB,
            rss_end_mib: after.rss_bytes / MIB,
            rss_by_tenth: (1..=10)
                .filter_map(|t| {
                    let at = args.requests * t / 10;
                    rss.iter()
                        .find(|s| s.done >= at)
                        .map(|s| (at, s.bytes / MIB))
                })
                .collect(),
            checks,
        }
    }

    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.failed_checks() == 0
    }

    /// How many checks failed.
    pub fn failed_checks(&self) -> usize {
        self.checks.iter().filter(|c| !c.ok).count()
    }

    /// Prints the summary tables.
    pub fn print(&self) {
        println!(
            "\n{} requests at concurrency {} in {:.0} s ({:.1} requests/s)\n",
            self.requests,
            self.concurrency,
            self.run_secs,
            self.requests as f64 / self.run_secs
        );
        println!("| kind | sent | completed | cancelled by client | refused (4xx) | failed |");
        println!("|---|---:|---:|---:|---:|---:|");
        for k in Kind::ALL {
            let c = self
                .tally
                .by_kind
                .get(k.name())
                .copied()
                .unwrap_or_default();
            let sent: u64 = c.iter().sum();
            println!(
                "| {} | {sent} | {} | {} | {} | {} |",
                k.name(),
                c[0],
                c[1],
                c[2],
                c[3]
            );
        }
        println!(
            "\nresent after a connection reset (keep-alive race): {}",
            self.tally.resent
        );
        let f = &self.server_finished;
        println!(
            "server: vllm:request_success_total increase stop {} / length {} / abort {} / error {}",
            f["stop"], f["length"], f["abort"], f["error"]
        );
        println!(
            "resident memory: {:.0} MiB after warm-up, {:.0} MiB peak, {:.0} MiB at the end",
            self.rss_warm_mib, self.rss_peak_mib, self.rss_end_mib
        );
        let curve: Vec<String> = self
            .rss_by_tenth
            .iter()
            .map(|(at, mib)| format!("{at}: {mib:.0}"))
            .collect();
        println!("resident MiB by requests finished: {}\n", curve.join(", "));
        println!("| check | seen | result |");
        println!("|---|---|---|");
        for c in &self.checks {
            println!(
                "| {} | {} | {} |",
                c.what,
                c.seen,
                if c.ok { "ok" } else { "FAILED" }
            );
        }
        for f in &self.tally.failures {
            println!("failure: {f}");
        }
    }
}
