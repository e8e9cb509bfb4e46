//! HAProxy's command line, as percore understands it.

use std::path::PathBuf;

/// Printed after a command-line error.
pub const USAGE: &str = "Usage : percore [-f <cfgfile|cfgdir>]* [ -vdVD ] [ -c ] [ -q ] [ -p <pidfile> ] [ -L <name> ] [ -cc <expr> ]
        -v displays version ; -vv shows known build options.
        -d enters debug mode (stays in the foreground) ; -db only disables background mode.
        -D goes daemon ; -c checks the configuration and exits ; -cc evaluates a condition
        -V enters verbose mode (disables quiet mode) ; -q quiet mode : don't display messages
        -p writes pids of all children to this file ; -L sets the local peer name";

/// What the command asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Load the configuration and run (or only check it, with `-c`).
    Run,
    /// `-v` / `-vv`.
    Version {
        /// `-vv`: also the build options.
        build: bool,
    },
    /// `-cc EXPR`.
    Condition(String),
}

/// The parsed command line.
#[derive(Debug)]
pub struct Args {
    /// What to do.
    pub action: Action,
    /// `-f` files and directories, in order.
    pub files: Vec<PathBuf>,
    /// `-c`.
    pub check_only: bool,
    /// `-d` / `-db`: stay in the foreground even if the config says `daemon`.
    pub foreground: bool,
    /// `-D`.
    pub daemon: bool,
    /// `-p`.
    pub pidfile: Option<PathBuf>,
    /// `-L`.
    pub local_peer: Option<String>,
    /// `-q`.
    pub quiet: bool,
    /// `-V`.
    pub verbose: bool,
}

/// Parses the arguments after the program name.
pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        action: Action::Run,
        files: Vec::new(),
        check_only: false,
        foreground: false,
        daemon: false,
        pidfile: None,
        local_peer: None,
        quiet: false,
        verbose: false,
    };
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .ok_or_else(|| format!("option '{flag}' expects an argument"))
        };
        match a.as_str() {
            "-f" => args.files.push(value("-f")?.into()),
            "-c" => args.check_only = true,
            "-d" | "-db" => args.foreground = true,
            "-D" => args.daemon = true,
            "-p" => args.pidfile = Some(value("-p")?.into()),
            "-L" => args.local_peer = Some(value("-L")?),
            "-q" => args.quiet = true,
            "-V" => args.verbose = true,
            "-v" => args.action = Action::Version { build: false },
            "-vv" => args.action = Action::Version { build: true },
            "-cc" => args.action = Action::Condition(value("-cc")?),
            "-sf" | "-st" | "-x" | "-W" | "-Ws" | "-S" => {
                return Err(format!(
                "option '{a}' is not supported yet (hitless reloads and master-worker are planned)"
            ))
            }
            "--" => {
                args.files.extend(it.by_ref().map(PathBuf::from));
                break;
            }
            other if other.starts_with('-') => return Err(format!("unknown option '{other}'")),
            file => args.files.push(file.into()),
        }
    }
    if args.action == Action::Run && args.files.is_empty() {
        return Err("No configuration file specified (use -f)".into());
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Args, String> {
        parse(s.split(' ').map(String::from))
    }

    #[test]
    fn flags() {
        let a = p("-f a.cfg -f dir -c -q -L me -p /tmp/pid").unwrap();
        assert_eq!(a.files, [PathBuf::from("a.cfg"), PathBuf::from("dir")]);
        assert!(a.check_only && a.quiet);
        assert_eq!(a.local_peer.as_deref(), Some("me"));
        assert_eq!(p("-vv").unwrap().action, Action::Version { build: true });
        assert_eq!(p("-cc 1").unwrap().action, Action::Condition("1".into()));
        assert!(p("-sf 123 -f a").unwrap_err().contains("not supported yet"));
        assert!(p("-c").is_err());
        assert!(p("-f").is_err());
        assert!(p("-z -f a").is_err());
    }
}
