//! Keywords of the `global` section.

use crate::model::{CpuMap, Global, LogHostname};
use crate::planned::unsupported;
use crate::units::{parse_size, parse_uint};

/// Applies one `global` line.
pub fn keyword(g: &mut Global, words: &[String]) -> Result<(), String> {
    let kw = words[0].as_str();
    let args = &words[1..];
    match kw {
        "daemon" => {
            no_args(kw, args)?;
            g.daemon = true;
        }
        "maxconn" => g.maxconn = parse_uint(kw, one(kw, args)?)?,
        "nbthread" => {
            let n: usize = parse_uint(kw, one(kw, args)?)?;
            if n == 0 || n > 4096 {
                return Err(format!("'nbthread' must be between 1 and 4096, got {n}"));
            }
            g.nbthread = Some(n);
        }
        "cpu-map" => g.cpu_map.push(cpu_map(args)?),
        "pidfile" => g.pidfile = Some(one(kw, args)?.into()),
        "maxpipes" => g.maxpipes = Some(parse_uint(kw, one(kw, args)?)?),
        "ulimit-n" => g.ulimit_n = Some(parse_uint(kw, one(kw, args)?)?),
        "tune.bufsize" => {
            let size = size_arg(kw, args)?;
            if !(1024..=(1 << 30)).contains(&size) {
                return Err(format!(
                    "'tune.bufsize' must be between 1k and 1g, got {size}"
                ));
            }
            g.tune.bufsize = size;
        }
        "tune.maxrewrite" => g.tune.maxrewrite = size_arg(kw, args)?,
        "tune.http.maxhdr" => {
            let n: usize = parse_uint(kw, one(kw, args)?)?;
            if !(1..=32767).contains(&n) {
                return Err(format!(
                    "'tune.http.maxhdr' must be between 1 and 32767, got {n}"
                ));
            }
            g.tune.http_maxhdr = n;
        }
        "tune.pipesize" => g.tune.pipesize = Some(size_arg(kw, args)?),
        "tune.pool-high-fd-ratio" => g.tune.pool_high_fd_ratio = percent(kw, args)?,
        "tune.pool-low-fd-ratio" => g.tune.pool_low_fd_ratio = percent(kw, args)?,
        "log" => match crate::log::log_line(args)? {
            crate::log::LogLine::Target(t) => g.logs.push(t),
            crate::log::LogLine::Global => {
                return Err("'log global' is for proxies; the global section names targets".into())
            }
        },
        "log-tag" => g.log_tag = Some(one(kw, args)?.to_string()),
        "log-send-hostname" => {
            g.log_send_hostname = Some(match args {
                [] => LogHostname::System,
                [name] => LogHostname::Named(name.clone()),
                _ => return Err("'log-send-hostname' takes at most a host name".into()),
            })
        }
        "nbproc" => return Err("'nbproc' was removed in HAProxy 2.5; use 'nbthread'".into()),
        _ => return Err(unsupported(kw, "global")),
    }
    Ok(())
}

/// A percentage from 0 to 100, the single argument of `kw`.
fn percent(kw: &str, args: &[String]) -> Result<u32, String> {
    let n: u32 = parse_uint(kw, one(kw, args)?)?;
    if n > 100 {
        return Err(format!(
            "'{kw}' expects a percentage from 0 to 100, got {n}"
        ));
    }
    Ok(n)
}

/// Checks that a keyword got no argument.
pub fn no_args(kw: &str, args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "'{kw}' takes no argument, got '{}'",
            args.join(" ")
        ))
    }
}

/// Returns the single argument of a keyword.
pub fn one<'a>(kw: &str, args: &'a [String]) -> Result<&'a str, String> {
    match args {
        [a] => Ok(a),
        [] => Err(format!("'{kw}' expects an argument")),
        _ => Err(format!(
            "'{kw}' expects one argument, got '{}'",
            args.join(" ")
        )),
    }
}

fn size_arg(kw: &str, args: &[String]) -> Result<usize, String> {
    let size = parse_size(one(kw, args)?).map_err(|e| format!("'{kw}': {e}"))?;
    usize::try_from(size).map_err(|_| format!("'{kw}': size too large"))
}

/// Parses `cpu-map [auto:]PROCESS[/THREADS] CPUS...`. percore is one process, so the
/// process (or thread group) part must be `1` or `all`.
fn cpu_map(args: &[String]) -> Result<CpuMap, String> {
    let (first, cpus) = args
        .split_first()
        .filter(|(_, rest)| !rest.is_empty())
        .ok_or("'cpu-map' expects '[auto:]PROCESS[/THREADS] CPU-SET...'")?;
    let (auto, first) = match first.strip_prefix("auto:") {
        Some(rest) => (true, rest),
        None => (false, first.as_str()),
    };
    let (process, threads) = match first.split_once('/') {
        Some((p, t)) => (p, Some(t)),
        None => (first, None),
    };
    if process != "1" && process != "all" {
        return Err(format!(
            "'cpu-map': percore runs one process; the process or group part must be 1 or all, got '{process}'"
        ));
    }
    let threads = match threads {
        Some("all") | None => Vec::new(),
        Some(t) => parse_set(t, 1)?,
    };
    let mut cpu_list = Vec::new();
    for c in cpus {
        cpu_list.extend(parse_set(c, 0)?);
    }
    Ok(CpuMap {
        threads,
        cpus: cpu_list,
        auto,
    })
}

/// Parses `N`, `N-M` and comma lists of them; numbers below `min` are refused.
fn parse_set(s: &str, min: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let parse = |x: &str| -> Result<usize, String> {
            x.parse::<usize>()
                .ok()
                .filter(|&n| n >= min && n < 4096)
                .ok_or_else(|| format!("'cpu-map': invalid number '{x}' in '{s}'"))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(format!("'cpu-map': range '{part}' is reversed"));
        }
        out.extend(a..=b);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn cpu_maps() {
        let m = cpu_map(&w("auto:1/1-4 0-3")).unwrap();
        assert!(m.auto);
        assert_eq!(m.threads, [1, 2, 3, 4]);
        assert_eq!(m.cpus, [0, 1, 2, 3]);
        let m = cpu_map(&w("1/2 5")).unwrap();
        assert_eq!((m.threads, m.cpus), (vec![2], vec![5]));
        let m = cpu_map(&w("all 0,2")).unwrap();
        assert!(m.threads.is_empty());
        assert_eq!(m.cpus, [0, 2]);
        assert!(cpu_map(&w("2/1 0")).is_err());
        assert!(cpu_map(&w("1/0 0")).is_err());
        assert!(cpu_map(&w("1/1")).is_err());
        assert!(cpu_map(&w("1/3-1 0")).is_err());
    }

    #[test]
    fn tune() {
        let mut g = Global::default();
        keyword(&mut g, &w("tune.bufsize 32k")).unwrap();
        assert_eq!(g.tune.bufsize, 32768);
        assert!(keyword(&mut g, &w("tune.bufsize 1")).is_err());
        assert!(keyword(&mut g, &w("nbthread 0")).is_err());
        assert!(keyword(&mut g, &w("daemon yes")).is_err());
        assert!(keyword(&mut g, &w("stats socket /run/x.sock"))
            .unwrap_err()
            .contains("not supported"));
    }

    #[test]
    fn logs() {
        let mut g = Global::default();
        keyword(&mut g, &w("log 127.0.0.1 local0")).unwrap();
        keyword(&mut g, &w("log-tag lb1")).unwrap();
        keyword(&mut g, &w("log-send-hostname")).unwrap();
        assert_eq!(g.logs.len(), 1);
        assert_eq!(g.log_tag.as_deref(), Some("lb1"));
        assert_eq!(g.log_send_hostname, Some(LogHostname::System));
        assert!(keyword(&mut g, &w("log global")).is_err());
    }
}
