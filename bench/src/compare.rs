//! `perf/compare`: percore, haproxy and nginx side by side on this machine, in
//! interleaved rounds, with equivalent configurations from `perf/configs/` (percore and
//! haproxy read the very same files). The proxy runs on CPU 0; the origin and the load
//! generator share the last CPU. Prints a Markdown table of medians, writes one JSON
//! file per scenario and an SVG chart under `perf/results/`. Throughput rows come
//! with a `-per-core` row: the value per busy proxy core (the proxy's CPU seconds per
//! second of load), for when the load side, not the proxy, is the bottleneck.

use crate::load::{self, HttpLoad, Target};
use crate::origin::Origin;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a comparison runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rounds per scenario and proxy.
    pub rounds: usize,
    /// Length of each measurement.
    pub seconds: u64,
    /// Idle connections for the memory row.
    pub idle_connections: usize,
    /// Requests held in flight at once for the in-flight memory row.
    pub inflight_requests: usize,
    /// Fixed rate for the latency rows (requests per second).
    pub latency_rate: f64,
    /// `perf/configs`.
    pub configs: PathBuf,
    /// `perf/results`.
    pub results: PathBuf,
    /// The percore binary.
    pub percore: PathBuf,
    /// Only the scenarios whose names contain this.
    pub only: Option<String>,
}

impl Options {
    /// `--quick`: within three minutes on two cores.
    pub fn quick(mut self) -> Self {
        self.rounds = 1;
        self.seconds = 3;
        self
    }
}

/// The proxies compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    /// This project.
    Percore,
    /// HAProxy from the distribution.
    Haproxy,
    /// nginx from the distribution.
    Nginx,
}

impl Proxy {
    const ALL: [Proxy; 3] = [Proxy::Percore, Proxy::Haproxy, Proxy::Nginx];

    fn name(self) -> &'static str {
        match self {
            Proxy::Percore => "percore",
            Proxy::Haproxy => "haproxy",
            Proxy::Nginx => "nginx",
        }
    }
}

/// What a row measures.
#[derive(Debug, Clone, Copy)]
enum Measure {
    /// Requests per second, as fast as possible.
    Rate { path: &'static str, close: bool },
    /// p99 latency in ms at `Options::latency_rate`.
    P99 { path: &'static str },
    /// Gbit/s of one streaming connection through TCP mode.
    Stream,
    /// KiB of proxy memory per idle client connection.
    IdleMemory,
    /// KiB of proxy memory per request in flight (the origin answers late).
    InflightMemory,
}

struct Scenario {
    name: &'static str,
    unit: &'static str,
    measure: Measure,
    /// Lower is better (latency, memory).
    lower_is_better: bool,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "http-keepalive-64B",
        unit: "req/s",
        measure: Measure::Rate {
            path: "/",
            close: false,
        },
        lower_is_better: false,
    },
    Scenario {
        name: "http-keepalive-16KiB",
        unit: "req/s",
        measure: Measure::Rate {
            path: "/?size=16384",
            close: false,
        },
        lower_is_better: false,
    },
    Scenario {
        name: "http-close-64B",
        unit: "req/s",
        measure: Measure::Rate {
            path: "/",
            close: true,
        },
        lower_is_better: false,
    },
    Scenario {
        name: "http-keepalive-64B-p99",
        unit: "ms",
        measure: Measure::P99 { path: "/" },
        lower_is_better: true,
    },
    Scenario {
        name: "http-keepalive-16KiB-p99",
        unit: "ms",
        measure: Measure::P99 {
            path: "/?size=16384",
        },
        lower_is_better: true,
    },
    Scenario {
        name: "tcp-stream",
        unit: "Gbit/s",
        measure: Measure::Stream,
        lower_is_better: false,
    },
    Scenario {
        name: "idle-conn-mem",
        unit: "KiB/conn",
        measure: Measure::IdleMemory,
        lower_is_better: true,
    },
    Scenario {
        name: "inflight-mem",
        unit: "KiB/req",
        measure: Measure::InflightMemory,
        lower_is_better: true,
    },
];

/// One scenario's results, as written to `perf/results/<date>-<scenario>.json`.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Unit of the values.
    pub unit: String,
    /// Whether lower values are better.
    pub lower_is_better: bool,
    /// Every round's value per proxy.
    pub rounds: Vec<(String, Vec<f64>)>,
    /// Medians per proxy.
    pub medians: Vec<(String, f64)>,
    /// percore's median over haproxy's.
    pub percore_over_haproxy: f64,
}

/// The apt-get line for whatever is missing, if anything is.
pub fn missing_tools() -> Option<String> {
    let have = |p: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut missing = Vec::new();
    if !have("haproxy") {
        missing.push("haproxy");
    }
    if !have("nginx") {
        missing.push("nginx");
    }
    if !Path::new("/usr/lib/nginx/modules/ngx_stream_module.so").exists() {
        missing.push("libnginx-mod-stream");
    }
    (!missing.is_empty()).then(|| format!("apt-get install {}", missing.join(" ")))
}

/// The proxies' ports in `perf/configs/`: HTTP (`http.cfg`), TCP (`tcp.cfg`), idle
/// connections (`idle.cfg`).
const HTTP_PORT: u16 = 18080;
const TCP_PORT: u16 = 18081;
const IDLE_PORT: u16 = 18082;
/// The origin's port, which the configurations name.
const ORIGIN_PORT: u16 = 19001;
/// Every port a comparison listens on.
const PORTS: [u16; 4] = [HTTP_PORT, TCP_PORT, IDLE_PORT, ORIGIN_PORT];

/// A port something already listens on. A proxy or origin left running there would
/// share the comparison's connections (they listen with SO_REUSEPORT) and skew every
/// row without a sign. Asked by connecting, not by binding: the last run's closing
/// connections keep its ports from a plain bind for up to a minute, though nothing
/// listens any more.
fn busy_port() -> Option<u16> {
    PORTS.into_iter().find(|p| {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *p));
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
    })
}

fn pin_to(cpu: usize) {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
}

fn start(proxy: Proxy, o: &Options, config: &str) -> Result<Child, String> {
    let cfg = o.configs.join(config);
    let mut cmd = match proxy {
        Proxy::Percore => {
            let mut c = Command::new("taskset");
            c.arg("-c")
                .arg("0")
                .arg(&o.percore)
                .args(["-d", "-f"])
                .arg(&cfg);
            c
        }
        Proxy::Haproxy => {
            let mut c = Command::new("taskset");
            c.args(["-c", "0", "haproxy", "-db", "-f"]).arg(&cfg);
            c
        }
        Proxy::Nginx => {
            let mut c = Command::new("taskset");
            c.args(["-c", "0", "nginx", "-c"]).arg(
                o.configs
                    .join("nginx.conf")
                    .canonicalize()
                    .map_err(|e| e.to_string())?,
            );
            c
        }
    };
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", proxy.name()))?;
    let port = if config == "idle.cfg" {
        IDLE_PORT
    } else if config == "tcp.cfg" {
        TCP_PORT
    } else {
        HTTP_PORT
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{} did not listen on port {port}", proxy.name()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    Ok(child)
}

fn stop(mut child: Child) {
    // SAFETY: a signal to our own child; SIGTERM lets nginx stop its workers too.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `pid` and its direct children (nginx's workers).
fn process_tree(pid: u32) -> Vec<String> {
    let mut tree = vec![pid.to_string()];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if stat_fields(&name)
                .get(1)
                .and_then(|p| p.parse::<u32>().ok())
                == Some(pid)
            {
                tree.push(name);
            }
        }
    }
    tree
}

/// The fields of `/proc/PID/stat` after the command name: state, ppid, ...
fn stat_fields(pid: &str) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').map(str::to_string).collect())
        .unwrap_or_default()
}

/// Resident memory of `pid` and its direct children, in KiB.
fn rss_tree_kib(pid: u32) -> u64 {
    let rss = |p: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{p}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    };
    process_tree(pid).iter().map(|p| rss(p)).sum()
}

/// Clock ticks per second, the unit of `/proc`'s CPU times.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// CPU time (user and system) `pid` and its direct children have used, in seconds.
fn cpu_tree_seconds(pid: u32) -> f64 {
    let used = |p: &str| -> u64 {
        // utime and stime: the 14th and 15th fields, 12th and 13th after the name.
        let f = stat_fields(p);
        [11, 12]
            .iter()
            .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
            .sum()
    };
    process_tree(pid).iter().map(|p| used(p)).sum::<u64>() as f64 / clock_ticks()
}

/// Ticks the hypervisor took from all CPUs (the `steal` column of `/proc/stat`'s `cpu`
/// line). On a shared virtual machine they stall the proxy or the load generator for
/// tens of milliseconds at a time, which shows in every row and ruins p99.
fn steal_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("cpu "))
                .and_then(|l| l.split_whitespace().nth(8))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The share of the machine's CPU time the hypervisor may take during a measurement
/// before it is taken again.
const STEAL_LIMIT: f64 = 0.01;
/// Measurements of one cell at most, when the hypervisor keeps stealing.
const ATTEMPTS: usize = 3;

/// Measures one cell, again when the hypervisor stole more than [`STEAL_LIMIT`] of
/// the CPU time meanwhile (the last attempt counts whatever happened).
fn measure_steadily(s: &Scenario, proxy: Proxy, o: &Options) -> Result<Sample, String> {
    let ticks = clock_ticks();
    let cpus = core_affinity::get_core_ids().map_or(1, |c| c.len()) as f64;
    let mut attempt = 1;
    loop {
        let (before, began) = (steal_ticks(), Instant::now());
        let sample = measure(s, proxy, o)?;
        let stolen =
            (steal_ticks() - before) as f64 / (ticks * cpus * began.elapsed().as_secs_f64());
        if stolen <= STEAL_LIMIT || attempt == ATTEMPTS {
            return Ok(sample);
        }
        eprintln!(
            "  {} {}: the host stole {:.1}% of the CPU time; measuring again",
            s.name,
            proxy.name(),
            stolen * 100.0
        );
        attempt += 1;
    }
}

/// One measurement: the scenario's value and, for throughput, how busy the proxy's
/// core was meanwhile (CPU seconds per second).
struct Sample {
    value: f64,
    busy: Option<f64>,
}

fn measure(s: &Scenario, proxy: Proxy, o: &Options) -> Result<Sample, String> {
    let config = match s.measure {
        Measure::Stream => "tcp.cfg",
        Measure::IdleMemory | Measure::InflightMemory => "idle.cfg",
        _ => "http.cfg",
    };
    let child = start(proxy, o, config)?;
    let duration = Duration::from_secs(o.seconds);
    let http = |path: &str, close: bool, rate: Option<f64>| HttpLoad {
        target: Target::parse(&format!("http://127.0.0.1:{HTTP_PORT}{path}")).expect("static URL"),
        connections: 50,
        duration,
        rate,
        close,
        body: 0,
        threads: 1,
        timeout: Duration::from_secs(10),
    };
    let (cpu_before, began) = (cpu_tree_seconds(child.id()), Instant::now());
    let busy = || Some((cpu_tree_seconds(child.id()) - cpu_before) / began.elapsed().as_secs_f64());
    let sample = match s.measure {
        Measure::Rate { path, close } => Ok(Sample {
            value: load::run_http(&http(path, close, None), &|_| {}).rate,
            busy: busy(),
        }),
        Measure::P99 { path } => Ok(Sample {
            value: load::run_http(&http(path, false, Some(o.latency_rate)), &|_| {})
                .latency
                .p99_us as f64
                / 1000.0,
            busy: None,
        }),
        Measure::Stream => Ok(Sample {
            value: load::run_stream(
                ([127, 0, 0, 1], TCP_PORT).into(),
                "/?size=1000000000000000",
                1,
                duration,
            )
            .gbps,
            busy: busy(),
        }),
        Measure::IdleMemory => memory_per(
            (proxy, child.id()),
            o.idle_connections,
            "idle connections",
            Duration::from_millis(500),
            move |n, ready| {
                load::run_idle(
                    ([127, 0, 0, 1], IDLE_PORT).into(),
                    n,
                    Duration::from_secs(3),
                    ready,
                )
            },
        ),
        // The origin holds each request 4 s; memory is read 1 s after the last was
        // sent, when every one is through the proxy and waiting.
        Measure::InflightMemory => memory_per(
            (proxy, child.id()),
            o.inflight_requests,
            "requests in flight",
            Duration::from_secs(1),
            move |n, ready| {
                load::run_inflight(([127, 0, 0, 1], IDLE_PORT).into(), n, "/?delay=4000", ready)
            },
        ),
    };
    stop(child);
    sample
}

/// KiB of the proxy's memory (its process tree) per connection of a load of `n`:
/// `load(n, ready)` runs in a thread and calls `ready` with how many it holds once
/// all are in place; memory is read `settle` later. The load returns how many it
/// completed.
fn memory_per(
    (proxy, pid): (Proxy, u32),
    n: usize,
    what: &str,
    settle: Duration,
    load: impl FnOnce(usize, &dyn Fn(usize)) -> usize + Send + 'static,
) -> Result<Sample, String> {
    let before = rss_tree_kib(pid);
    let (tx, rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        load(n, &|held| {
            std::thread::sleep(settle);
            let _ = tx.send(held);
        })
    });
    let held = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| format!("{what} were not set up"))?;
    let after = rss_tree_kib(pid);
    let completed = holder.join().unwrap_or(0);
    if held < n || completed < n {
        return Err(format!(
            "{} held {held} and completed {completed} of {n} {what}",
            proxy.name()
        ));
    }
    Ok(Sample {
        value: after.saturating_sub(before) as f64 / n as f64,
        busy: None,
    })
}

impl Row {
    /// A row from every round's value per proxy, in `Proxy::ALL` order.
    fn new(scenario: String, unit: &str, lower_is_better: bool, values: Vec<Vec<f64>>) -> Self {
        let medians: Vec<f64> = values.iter().map(|v| median(v)).collect();
        Row {
            scenario,
            unit: unit.to_string(),
            lower_is_better,
            percore_over_haproxy: medians[0] / medians[1],
            medians: by_proxy(medians),
            rounds: by_proxy(values),
        }
    }
}

/// Values in `Proxy::ALL` order, each with its proxy's name.
fn by_proxy<T>(values: Vec<T>) -> Vec<(String, T)> {
    Proxy::ALL
        .iter()
        .zip(values)
        .map(|(p, v)| (p.name().to_string(), v))
        .collect()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Today's date as YYYY-MM-DD (UTC), for result file names.
fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86400)
        .unwrap_or(0) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Runs every scenario in interleaved rounds and reports.
pub fn run(o: &Options) -> Result<Vec<Row>, String> {
    if let Some(line) = missing_tools() {
        return Err(format!("missing tools; install them with: {line}"));
    }
    if let Some(port) = busy_port() {
        return Err(format!(
            "127.0.0.1:{port} is in use: stop what listens there first (it would share \
             the measured connections)"
        ));
    }
    load::raise_fd_limit();
    let last = core_affinity::get_core_ids()
        .map(|c| c.len())
        .unwrap_or(1)
        .saturating_sub(1);
    pin_to(last);
    let _origin = Origin::start("origin", ([127, 0, 0, 1], ORIGIN_PORT).into())
        .map_err(|e| format!("origin: {e}"))?;
    let mut rows = Vec::new();
    let chosen = SCENARIOS.iter().filter(|s| {
        o.only
            .as_ref()
            .is_none_or(|only| s.name.contains(only.as_str()))
    });
    for s in chosen {
        let mut values: Vec<Vec<f64>> = vec![Vec::new(); Proxy::ALL.len()];
        let mut per_core: Vec<Vec<f64>> = vec![Vec::new(); Proxy::ALL.len()];
        for _ in 0..o.rounds {
            for (i, p) in Proxy::ALL.iter().enumerate() {
                let Sample { value, busy } = measure_steadily(s, *p, o)?;
                eprint!("  {} {}: {value:.2} {}", s.name, p.name(), s.unit);
                values[i].push(value);
                if let Some(busy) = busy {
                    eprint!(" (proxy core {:.0}% busy)", busy * 100.0);
                    per_core[i].push(value / busy);
                }
                eprintln!();
            }
        }
        rows.push(Row::new(
            s.name.to_string(),
            s.unit,
            s.lower_is_better,
            values,
        ));
        if per_core.iter().all(|v| !v.is_empty()) {
            rows.push(Row::new(
                format!("{}-per-core", s.name),
                &format!("{} per busy proxy core", s.unit),
                s.lower_is_better,
                per_core,
            ));
        }
    }
    std::fs::create_dir_all(&o.results).map_err(|e| e.to_string())?;
    let date = today();
    for r in &rows {
        let path = o.results.join(format!("{date}-{}.json", r.scenario));
        std::fs::write(&path, serde_json::to_string_pretty(r).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    crate::chart::ratios(&rows, &o.results.join(format!("{date}-compare.svg")))?;
    Ok(rows)
}

/// The Markdown table of medians.
pub fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| scenario | percore | haproxy | nginx | percore/haproxy |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        let m = |i: usize| r.medians[i].1;
        let fmt = |v: f64| {
            if v >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        };
        t.push_str(&format!(
            "| {} ({}{}) | {} | {} | {} | {:.2} |\n",
            r.scenario,
            r.unit,
            if r.lower_is_better {
                ", lower is better"
            } else {
                ""
            },
            fmt(m(0)),
            fmt(m(1)),
            fmt(m(2)),
            r.percore_over_haproxy
        ));
    }
    t
}
