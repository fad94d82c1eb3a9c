//! `corvid serve` flags (vLLM's names, each with a `CORVID_*` environment variable) and
//! the validated [`ServerConfig`] built from them. Two stages, as in uv/ripgrep: clap
//! parses [`ServeArgs`], [`ServeArgs::to_config`] checks and resolves them.

use std::path::PathBuf;
use std::time::Duration;

use corvid_engine::cli::EngineCliArgs;
use corvid_engine::EngineArgs;
use corvid_model::chat_template::isolated::WorkerCommand;
use corvid_server::conn::ConnectionLimits;
use corvid_server::kv_events::KvEventsOptions;
use corvid_server::metrics::buckets::HistogramBuckets;
use corvid_server::metrics::MetricsOptions;
use corvid_server::tls::TlsFiles;
use corvid_server::ServerConfig;

/// The flags of `corvid serve`; the binary flattens this struct.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Engine flags (`--model`, `--max-num-seqs`, `--kv-cache-memory`, ...).
    #[command(flatten)]
    pub engine: EngineCliArgs,
    /// Address to listen on.
    #[arg(long, env = "CORVID_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Serve the API over TLS with this PEM private key (needs --ssl-certfile).
    #[arg(long, env = "CORVID_SSL_KEYFILE", requires = "ssl_certfile")]
    pub ssl_keyfile: Option<PathBuf>,
    /// The PEM certificate chain, leaf first, for --ssl-keyfile.
    #[arg(long, env = "CORVID_SSL_CERTFILE", requires = "ssl_keyfile")]
    pub ssl_certfile: Option<PathBuf>,
    /// Port of the OpenAI-compatible API (and of /metrics).
    #[arg(long, env = "CORVID_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Also serve /metrics on this port (a separate listener on the same host).
    #[arg(long, env = "CORVID_METRICS_PORT", conflicts_with = "disable_metrics")]
    pub metrics_port: Option<u16>,
    /// Record no metrics at all; /metrics answers 404 (for measuring their overhead).
    #[arg(long, env = "CORVID_DISABLE_METRICS")]
    pub disable_metrics: bool,
    /// Leave out vLLM's own `vllm:` series (corvid's `vllm_*` series stay).
    #[arg(long, env = "CORVID_DISABLE_VLLM_COMPAT_METRICS")]
    pub disable_vllm_compat_metrics: bool,
    /// Commit the KV pool's memory as blocks are first written instead of all at start
    /// (the default, as llama.cpp and vLLM take theirs): less memory until the pool is
    /// used, but the first load after a start pays the page faults (about 3.6 s per GiB
    /// on a 2-vCPU VM).
    #[arg(long, env = "CORVID_LAZY_KV_CACHE")]
    pub lazy_kv_cache: bool,
    /// Replace the buckets of one histogram: NAME=b1,b2,... (upper bounds, strictly
    /// increasing; +Inf is implicit). Repeatable; in the environment variable separate
    /// overrides with `;`.
    #[arg(
        long,
        env = "CORVID_HISTOGRAM_BUCKETS",
        value_name = "NAME=B1,B2,...",
        value_delimiter = ';'
    )]
    pub histogram_buckets: Vec<HistogramBuckets>,
    /// Require `Authorization: Bearer <key>` on /v1/*, /tokenize and /detokenize.
    #[arg(long, env = "CORVID_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Largest request body accepted, in bytes (larger: HTTP 413).
    #[arg(long, env = "CORVID_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Open connections per listener; beyond it, new connections wait in the kernel's
    /// listen backlog until one closes (none is refused).
    #[arg(long, env = "CORVID_MAX_CONNECTIONS", default_value_t = ConnectionLimits::default().max_connections)]
    pub max_connections: usize,
    /// Connections the kernel queues for accepting (capped by net.core.somaxconn).
    #[arg(long, env = "CORVID_BACKLOG", default_value_t = ConnectionLimits::default().backlog)]
    pub backlog: u32,
    /// Seconds a connection may take to send a complete request head, counted from its
    /// opening (after the TLS handshake, which has as long again) or its previous
    /// response: closes idle keep-alive connections and slow headers alike.
    #[arg(long, env = "CORVID_TIMEOUT_KEEP_ALIVE", default_value_t = ConnectionLimits::default().header_timeout.as_secs_f64())]
    pub timeout_keep_alive: f64,
    /// Seconds a request body may take to arrive after its head (later: HTTP 408 and
    /// the connection is closed).
    #[arg(long, env = "CORVID_TIMEOUT_REQUEST_BODY", default_value_t = ConnectionLimits::default().body_timeout.as_secs_f64())]
    pub timeout_request_body: f64,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(long, env = "CORVID_SHUTDOWN_TIMEOUT", default_value_t = 30.0)]
    pub shutdown_timeout: f64,
    /// Publish KV-cache events (vLLM's format) on this ZMQ PUB endpoint, e.g.
    /// `tcp://*:5557`, for `vllm-router --policy kv_aware` or llm-d (vLLM:
    /// `--kv-events-config '{"endpoint": ...}'`). Off by default.
    #[arg(long, env = "CORVID_KV_EVENTS_ENDPOINT")]
    pub kv_events_endpoint: Option<String>,
    /// Also answer replay requests for missed event batches on this ZMQ ROUTER endpoint,
    /// e.g. `tcp://*:5558`.
    #[arg(
        long,
        env = "CORVID_KV_EVENTS_REPLAY_ENDPOINT",
        requires = "kv_events_endpoint"
    )]
    pub kv_events_replay_endpoint: Option<String>,
    /// Topic of every event message (llm-d expects `kv@<pod>@<model>`).
    #[arg(
        long,
        env = "CORVID_KV_EVENTS_TOPIC",
        default_value = "",
        requires = "kv_events_endpoint"
    )]
    pub kv_events_topic: String,
}

impl ServeArgs {
    /// Checks the flags and resolves the model path and served name.
    pub fn to_config(&self) -> anyhow::Result<ServerConfig> {
        if !(self.shutdown_timeout.is_finite() && self.shutdown_timeout >= 0.0) {
            anyhow::bail!("--shutdown-timeout must be a non-negative number of seconds");
        }
        let seconds = |flag: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(anyhow::anyhow!(
                    "{flag} must be a positive number of seconds"
                ))
            }
        };
        let connections = ConnectionLimits {
            max_connections: self.max_connections,
            backlog: self.backlog,
            header_timeout: seconds("--timeout-keep-alive", self.timeout_keep_alive)?,
            body_timeout: seconds("--timeout-request-body", self.timeout_request_body)?,
        };
        if self.max_connections == 0 {
            anyhow::bail!("--max-connections must be positive");
        }
        if self.max_body_bytes == 0 {
            anyhow::bail!("--max-body-bytes must be positive");
        }
        if self.api_key.as_deref() == Some("") {
            anyhow::bail!("--api-key must not be empty");
        }
        Ok(ServerConfig {
            host: self.host.clone(),
            tls: self
                .ssl_keyfile
                .clone()
                .zip(self.ssl_certfile.clone())
                .map(|(keyfile, certfile)| TlsFiles { keyfile, certfile }),
            port: self.port,
            metrics_port: self.metrics_port,
            api_key: self.api_key.clone(),
            max_body_bytes: self.max_body_bytes,
            connections,
            metrics: (!self.disable_metrics).then(|| MetricsOptions {
                vllm_compat: !self.disable_vllm_compat_metrics,
                buckets: self.histogram_buckets.clone(),
            }),
            shutdown_timeout: Duration::from_secs_f64(self.shutdown_timeout),
            kv_events: self
                .kv_events_endpoint
                .clone()
                .map(|endpoint| KvEventsOptions {
                    endpoint,
                    replay_endpoint: self.kv_events_replay_endpoint.clone(),
                    topic: self.kv_events_topic.clone(),
                }),
            engine: EngineArgs {
                commit_kv_cache: !self.lazy_kv_cache,
                ..self.engine.to_engine_args()
            },
            template_worker: None,
        })
    }
}

/// Runs `corvid serve` until SIGTERM/SIGINT, then drains; a model's own chat template
/// renders in workers started by `template_worker`.
pub fn run(args: ServeArgs, template_worker: WorkerCommand) -> anyhow::Result<()> {
    let config = ServerConfig {
        template_worker: Some(template_worker),
        ..args.to_config()?
    };
    tokio::runtime::Runtime::new()?.block_on(corvid_server::serve(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn vllm_flag_names_parse() {
        let cli = Cli::try_parse_from([
            "corvid",
            "--model",
            "/m/x.gguf",
            "--port",
            "9000",
            "--metrics-port",
            "9400",
            "--api-key",
            "k",
            "--max-num-seqs",
            "4",
            "--shutdown-timeout",
            "5",
            "--no-enable-prefix-caching",
            "--max-waiting-requests",
            "7",
            "--timeout-keep-alive",
            "2.5",
            "--timeout-request-body",
            "3",
            "--max-connections",
            "10",
            "--tensor-parallel-size",
            "2",
        ])
        .unwrap();
        let c = cli.serve.to_config().unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.metrics_port, Some(9400));
        assert_eq!(c.api_key.as_deref(), Some("k"));
        assert_eq!(c.engine.max_num_seqs, 4);
        assert_eq!(c.engine.max_waiting_requests, 7);
        assert_eq!(c.engine.tensor_parallel_size, 2);
        assert!(!c.engine.enable_prefix_caching);
        assert!(
            c.engine.commit_kv_cache,
            "a server takes its KV pool at start"
        );
        assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(
            c.connections,
            ConnectionLimits {
                max_connections: 10,
                backlog: 2048,
                header_timeout: Duration::from_millis(2500),
                body_timeout: Duration::from_secs(3),
            }
        );
        assert_eq!(c.engine.served_name(), "x");
        assert!(c.tls.is_none());
    }

    #[test]
    fn lazy_kv_cache_leaves_the_pool_to_fill_as_used() {
        let cli = Cli::try_parse_from(["corvid", "--lazy-kv-cache"]).unwrap();
        assert!(!cli.serve.to_config().unwrap().engine.commit_kv_cache);
    }

    #[test]
    fn connection_limits_must_be_positive() {
        for (flag, value) in [
            ("--timeout-keep-alive", "0"),
            ("--timeout-request-body", "-1"),
            ("--max-connections", "0"),
        ] {
            let cli = Cli::try_parse_from(["corvid", &format!("{flag}={value}")]).unwrap();
            let e = cli.serve.to_config().unwrap_err();
            assert!(e.to_string().contains(flag), "{e}");
        }
    }

    #[test]
    fn tls_takes_both_files_or_neither() {
        let parse = |flags: &[&str]| {
            Cli::try_parse_from([&["corvid", "--model", "/m/x.gguf"][..], flags].concat())
        };
        let c = parse(&["--ssl-keyfile", "k.pem", "--ssl-certfile", "c.pem"])
            .unwrap()
            .serve
            .to_config()
            .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.keyfile.to_str(), Some("k.pem"));
        assert_eq!(tls.certfile.to_str(), Some("c.pem"));
        assert!(parse(&["--ssl-keyfile", "k.pem"]).is_err());
        assert!(parse(&["--ssl-certfile", "c.pem"]).is_err());
    }

    #[test]
    fn default_model_is_served_under_its_name() {
        let cli = Cli::try_parse_from(["corvid"]).unwrap();
        let c = cli.serve.to_config().unwrap();
        assert_eq!(
            c.engine.served_name(),
            corvid_model::default_model::DEFAULT_MODEL_NAME
        );
        assert_eq!(c.port, 8000);
    }

    #[test]
    fn metrics_flags() {
        let cli = Cli::try_parse_from([
            "corvid",
            "--disable-vllm-compat-metrics",
            "--histogram-buckets",
            "vllm_request_latency_seconds=1,2",
            "--histogram-buckets=vllm_batch_size=1,4,16",
        ])
        .unwrap();
        let m = cli.serve.to_config().unwrap().metrics.unwrap();
        assert!(!m.vllm_compat);
        let names: Vec<_> = m.buckets.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["vllm_request_latency_seconds", "vllm_batch_size"]);
        assert_eq!(m.buckets[1].buckets, [1.0, 4.0, 16.0]);

        let cli = Cli::try_parse_from(["corvid", "--disable-metrics"]).unwrap();
        assert_eq!(cli.serve.to_config().unwrap().metrics, None);
        let both = ["corvid", "--disable-metrics", "--metrics-port", "9400"];
        assert!(Cli::try_parse_from(both).is_err());
        let bad = [
            "corvid",
            "--histogram-buckets",
            "vllm_request_latency_seconds=2,1",
        ];
        let e = Cli::try_parse_from(bad).err().unwrap().to_string();
        assert!(
            e.contains("--histogram-buckets") && e.contains("strictly increasing"),
            "{e}"
        );
    }

    #[test]
    fn bad_timeout_is_rejected() {
        let cli = Cli::try_parse_from(["corvid", "--shutdown-timeout=-1"]).unwrap();
        assert!(cli.serve.to_config().is_err());
    }
}
