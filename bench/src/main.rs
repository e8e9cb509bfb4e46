//! `percore-bench`: load generator and origin server for percore's tests and
//! benchmarks.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use percore_bench::compare;
use percore_bench::load::{self, HttpLoad, HttpReport, Target};
use percore_bench::origin::Origin;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "percore-bench",
    about = "Load generator and origin server for percore"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// HTTP request load against URL.
    Http {
        /// http://HOST:PORT/PATH
        url: String,
        /// Concurrent connections.
        #[arg(long, short = 'c', default_value_t = 50)]
        connections: usize,
        /// Run time, e.g. 10s, 500ms, 1m.
        #[arg(long, short = 'd', default_value = "10s", value_parser = duration)]
        duration: Duration,
        /// Total requests per second (open model, latency corrected for coordinated
        /// omission); as fast as possible when absent.
        #[arg(long)]
        rate: Option<f64>,
        /// One request per connection.
        #[arg(long)]
        close: bool,
        /// Request body size in bytes (makes the request a POST).
        #[arg(long, default_value_t = 0)]
        body: usize,
        /// Threads, each with its own io_uring runtime.
        #[arg(long, short = 't', default_value_t = 1)]
        threads: usize,
        /// Longest wait for one response.
        #[arg(long, default_value = "10s", value_parser = duration)]
        timeout: Duration,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Streaming throughput (Gbit/s) through ADDR, e.g. a TCP-mode proxy in front of
    /// `percore-bench origin`.
    Tcp {
        /// HOST:PORT
        addr: SocketAddr,
        /// Concurrent connections.
        #[arg(long, short = 'c', default_value_t = 1)]
        connections: usize,
        /// Run time.
        #[arg(long, short = 'd', default_value = "10s", value_parser = duration)]
        duration: Duration,
        /// What each connection asks the origin for.
        #[arg(long, default_value = "/?size=1000000000000000")]
        path: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Opens N keep-alive connections, one request on each, then holds them idle (to
    /// measure memory per idle connection).
    Idle {
        /// HOST:PORT
        addr: SocketAddr,
        /// Connections to open.
        #[arg(long, short = 'c', default_value_t = 10000)]
        connections: usize,
        /// How long to hold them.
        #[arg(long, short = 'd', default_value = "1h", value_parser = duration)]
        duration: Duration,
    },
    /// percore, haproxy and nginx side by side (see perf/README.md).
    Compare {
        /// Within three minutes on two cores: one round of 3 s per cell.
        #[arg(long)]
        quick: bool,
        /// Rounds per scenario and proxy.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Idle connections for the memory row (10k needs more than the 20000
        /// descriptors the development sandbox allows haproxy).
        #[arg(long, default_value_t = 9000)]
        idle: usize,
        /// Requests held in flight at once for the in-flight memory row.
        #[arg(long, default_value_t = 2000)]
        inflight: usize,
        /// Requests per second for the latency rows.
        #[arg(long, default_value_t = 10000.0)]
        latency_rate: f64,
        /// Directory of the configurations.
        #[arg(long, default_value = "perf/configs")]
        configs: PathBuf,
        /// Directory for JSON results and the chart.
        #[arg(long, default_value = "perf/results")]
        results: PathBuf,
        /// The percore binary.
        #[arg(long, default_value = "target/release/percore")]
        percore: PathBuf,
        /// Run only the scenarios whose names contain this (e.g. `idle`, `close`).
        #[arg(long)]
        only: Option<String>,
    },
    /// The origin server (answers chosen per request; see the origin module).
    Origin {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:19001")]
        listen: SocketAddr,
        /// Name reported in X-Origin.
        #[arg(long, default_value = "origin")]
        name: String,
        /// Threads, each with its own SO_REUSEPORT listener.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

/// Parses `10s`, `500ms`, `2m`, `1h` or a bare number of seconds.
fn duration(s: &str) -> Result<Duration, String> {
    let digits = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let value: f64 = s[..digits]
        .parse()
        .map_err(|_| format!("'{s}' is not a duration"))?;
    let secs = match &s[digits..] {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        u => return Err(format!("unknown unit '{u}' in '{s}'")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn progress(total: Duration, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {elapsed}/{duration}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn us(v: u64) -> String {
    if v >= 1000 {
        format!("{:.2}ms", v as f64 / 1000.0)
    } else {
        format!("{v}us")
    }
}

fn print_http(url: &str, load: &HttpLoad, r: &HttpReport) {
    println!(
        "{url}: {} connections, {} threads, {:.1}s{}{}",
        load.connections,
        load.threads,
        r.seconds,
        load.rate
            .map(|r| format!(", rate {r}/s"))
            .unwrap_or_default(),
        if load.close {
            ", one request per connection"
        } else {
            ""
        }
    );
    println!("| requests | req/s | MiB/s | p50 | p90 | p99 | p99.9 | max | errors |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let e = &r.errors;
    println!(
        "| {} | {:.0} | {:.1} | {} | {} | {} | {} | {} | {} (connect {}, write {}, read {}, timeout {}, status {}) |",
        r.requests,
        r.rate,
        r.bytes as f64 / r.seconds / (1 << 20) as f64,
        us(r.latency.p50_us),
        us(r.latency.p90_us),
        us(r.latency.p99_us),
        us(r.latency.p999_us),
        us(r.latency.max_us),
        e.total(),
        e.connect,
        e.write,
        e.read,
        e.timeout,
        e.status
    );
}

fn main() {
    match Cli::parse().command {
        Command::Http {
            url,
            connections,
            duration,
            rate,
            close,
            body,
            threads,
            timeout,
            json,
        } => {
            let target = match Target::parse(&url) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("percore-bench: {e}");
                    std::process::exit(2);
                }
            };
            let load = HttpLoad {
                target,
                connections,
                duration,
                rate,
                close,
                body,
                threads,
                timeout,
            };
            let bar = progress(duration, json);
            let report = load::run_http(&load, &|elapsed| {
                bar.set_position(elapsed.as_millis() as u64)
            });
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                print_http(&url, &load, &report);
            }
        }
        Command::Tcp {
            addr,
            connections,
            duration,
            path,
            json,
        } => {
            let report = load::run_stream(addr, &path, connections, duration);
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                println!(
                    "{addr}: {connections} connections, {:.1}s: {:.2} Gbit/s ({} bytes, {} errors)",
                    report.seconds, report.gbps, report.bytes, report.errors
                );
            }
        }
        Command::Idle {
            addr,
            connections,
            duration,
        } => {
            let opened = load::run_idle(addr, connections, duration, &|n| {
                println!("{n} idle keep-alive connections open to {addr}");
            });
            if opened < connections {
                std::process::exit(1);
            }
        }
        Command::Compare {
            quick,
            rounds,
            seconds,
            idle,
            inflight,
            latency_rate,
            configs,
            results,
            percore,
            only,
        } => {
            let mut options = compare::Options {
                rounds,
                seconds,
                idle_connections: idle,
                inflight_requests: inflight,
                latency_rate,
                configs,
                results,
                percore,
                only,
            };
            if quick {
                options = options.quick();
            }
            match compare::run(&options) {
                Ok(rows) => print!("{}", compare::table(&rows)),
                Err(e) => {
                    eprintln!("percore-bench compare: {e}");
                    std::process::exit(1);
                }
            }
        }
        Command::Origin {
            listen,
            name,
            threads,
        } => {
            match Origin::start_threads(&name, listen, threads) {
                Ok(o) => println!("origin '{name}' listening on {}", o.addr),
                Err(e) => {
                    eprintln!("percore-bench: cannot listen on {listen}: {e}");
                    std::process::exit(1);
                }
            }
            loop {
                std::thread::park();
            }
        }
    }
}
