//! `percore-bench`: the origin server today; the load generator comes with the
//! benchmarks issue (#3).

use percore_bench::origin::Origin;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: percore-bench origin --listen ADDR [--name NAME] [--threads N]";
    let [cmd, rest @ ..] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    if cmd != "origin" {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let mut listen = "127.0.0.1:19001".to_string();
    let mut name = "origin".to_string();
    let mut threads = 1usize;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--listen", Some(v)) => listen = v.clone(),
            ("--name", Some(v)) => name = v.clone(),
            ("--threads", Some(v)) if v.parse::<usize>().is_ok_and(|n| n > 0) => {
                threads = v.parse().unwrap_or(1)
            }
            _ => {
                eprintln!("{usage}");
                std::process::exit(2);
            }
        }
    }
    let addr = match listen.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("percore-bench: bad --listen address '{listen}': {e}");
            std::process::exit(2);
        }
    };
    match Origin::start_threads(&name, addr, threads) {
        Ok(o) => println!("origin '{name}' listening on {}", o.addr),
        Err(e) => {
            eprintln!("percore-bench: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    }
    loop {
        std::thread::park();
    }
}
