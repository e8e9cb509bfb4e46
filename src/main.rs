//! The `percore` binary: HAProxy's command line, the configuration loaded and checked,
//! the executors started, and signals turned into stops.

mod cli;
mod daemon;

use cli::{Action, Args};
use percore_config::{Config, Severity};
use percore_dataplane::plan::Plan;
use percore_dataplane::runtime::{self, Placement};
use std::process::ExitCode;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns the calling thread's freed memory to the system: mimalloc otherwise keeps
/// pages freed by a thread until that thread allocates again, so the buffers of
/// connections gone idle would stay resident on an idle executor. Forced: without it,
/// pages whose purge was scheduled (mimalloc waits 10 ms before giving a freed page
/// back) were sometimes still resident seconds later, and 9000 idle connections kept
/// 2.4-2.8 KiB each instead of 0.5 (perf/RESULTS.md, eighth session).
fn trim() {
    // SAFETY: `mi_collect` only touches the calling thread's heap; no argument is a
    // pointer.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("[ALERT]    ({}) : {e}", std::process::id());
            eprintln!("{}", cli::USAGE);
            return ExitCode::from(1);
        }
    };
    match args.action {
        Action::Version { build } => {
            println!(
                "percore version {} (HAProxy configuration language {})",
                env!("CARGO_PKG_VERSION"),
                percore_config::cond::LANGUAGE_VERSION
            );
            if build {
                println!("Features: {}", percore_config::cond::FEATURES.join(" "));
                println!("Dataplane: compio io_uring runtime, one executor per core");
            }
            ExitCode::SUCCESS
        }
        Action::Condition(expr) => {
            // Quotes, escapes and variables are processed as in an `.if` line, as
            // HAProxy does for `-cc`.
            let env = |n: &str| std::env::var(n).ok();
            let evaluated = percore_config::lexer::split_line(&expr, &env)
                .and_then(|words| percore_config::cond::evaluate(&words, &env));
            match evaluated {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!(
                        "[ALERT]    ({}) : failed to evaluate condition: {e}",
                        std::process::id()
                    );
                    ExitCode::from(2)
                }
            }
        }
        Action::Run => run(&args),
    }
}

fn run(args: &Args) -> ExitCode {
    let pid = std::process::id();
    if let Some(name) = &args.local_peer {
        std::env::set_var("HAPROXY_LOCALPEER", name);
    }
    let config = match percore_config::load(&args.files) {
        Ok((config, diagnostics)) => {
            for d in diagnostics {
                if !args.quiet && (d.severity >= Severity::Notice || args.verbose) {
                    eprintln!("{}", d.render(pid));
                }
            }
            config
        }
        Err(e) => {
            for d in &e.diagnostics {
                eprintln!("{}", d.render(pid));
            }
            eprintln!("[ALERT]    ({pid}) : config : Fatal errors found in configuration.");
            return ExitCode::from(1);
        }
    };
    // Compiled in check mode too: server addresses resolve here, as in HAProxy, so `-c`
    // refuses a configuration that could not start.
    let plan = match Plan::compile(&config) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("[ALERT]    ({pid}) : config : {e}");
            if args.check_only {
                eprintln!("[ALERT]    ({pid}) : config : Fatal errors found in configuration.");
            }
            return ExitCode::from(1);
        }
    };
    if args.check_only {
        if !args.quiet {
            println!("Configuration file is valid");
        }
        return ExitCode::SUCCESS;
    }
    let daemonize = args.daemon || (config.global.daemon && !args.foreground);
    let pidfile = args
        .pidfile
        .clone()
        .or_else(|| config.global.pidfile.clone());
    let mut notifier = None;
    if daemonize {
        match daemon::detach() {
            Ok(daemon::Side::Parent(code)) => return code,
            Ok(daemon::Side::Child(n)) => notifier = Some(n),
            Err(e) => {
                eprintln!("[ALERT]    ({pid}) : cannot daemonize: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let placement = placement(&config);
    let maxsock = percore_dataplane::fds::maxsock(&plan, placement.len());
    daemon::set_fd_limit(config.global.ulimit_n, maxsock, config.global.maxconn);
    daemon::block_stop_signals();
    let running = match runtime::start(plan, &placement, trim) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!(
                "[ALERT]    ({}) : Starting frontend: {e}",
                std::process::id()
            );
            match notifier {
                Some(n) => n.failed(&msg),
                None => eprintln!("{msg}"),
            }
            return ExitCode::from(1);
        }
    };
    if let Some(path) = &pidfile {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            eprintln!(
                "[WARNING]  ({}) : cannot write pidfile '{}': {e}",
                std::process::id(),
                path.display()
            );
        }
    }
    if let Some(n) = notifier {
        n.started();
    }
    daemon::wait_for_stop(running);
    ExitCode::SUCCESS
}

/// Which CPU each executor is pinned to: `cpu-map` when given, otherwise one distinct
/// CPU each, in order.
fn placement(config: &Config) -> Placement {
    let cores: Vec<usize> = core_ids();
    let n = config.global.nbthread.unwrap_or(cores.len().max(1));
    (1..=n)
        .map(|thread| {
            for map in config.global.cpu_map.iter().rev() {
                let threads: Vec<usize> = if map.threads.is_empty() {
                    (1..=n).collect()
                } else {
                    map.threads.clone()
                };
                if let Some(pos) = threads.iter().position(|&t| t == thread) {
                    return if map.auto {
                        map.cpus.get(pos).copied()
                    } else {
                        map.cpus.first().copied()
                    };
                }
            }
            if cores.is_empty() {
                None
            } else {
                Some(cores[(thread - 1) % cores.len()])
            }
        })
        .collect()
}

fn core_ids() -> Vec<usize> {
    core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default()
}
