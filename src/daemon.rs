//! Process-level chores: going to the background (`-D` / `daemon`) with the start result
//! reported to the parent, and turning signals into stops (SIGUSR1: finish in-flight
//! work then exit; SIGTERM, SIGINT: exit at once).

use percore_dataplane::runtime::Running;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;

/// Which side of the fork this is.
pub enum Side {
    /// The parent: exit with this code once the child says how its start went.
    Parent(ExitCode),
    /// The child: report through this once started.
    Child(Notifier),
}

/// The child's channel back to the waiting parent.
pub struct Notifier(std::fs::File);

impl Notifier {
    /// Start succeeded: the parent exits 0.
    pub fn started(mut self) {
        let _ = self.0.write_all(b"ok");
    }

    /// Start failed: the parent prints `msg` and exits 1.
    pub fn failed(mut self, msg: &str) {
        let _ = self.0.write_all(msg.as_bytes());
    }
}

/// Forks into the background, before any executor thread exists.
pub fn detach() -> std::io::Result<Side> {
    let mut fds = [0; 2];
    // SAFETY: pipe fills two descriptors on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: single-threaded at this point; the child only continues Rust code.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            drop(r);
            // SAFETY: plain system calls on our own process.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    libc::dup2(null, 0);
                    libc::dup2(null, 1);
                }
            }
            Ok(Side::Child(Notifier(std::fs::File::from(w))))
        }
        _child => {
            drop(w);
            let mut answer = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut answer);
            if answer == "ok" {
                Ok(Side::Parent(ExitCode::SUCCESS))
            } else {
                if !answer.is_empty() {
                    eprintln!("{answer}");
                }
                Ok(Side::Parent(ExitCode::from(1)))
            }
        }
    }
}

/// Sets the open-file limit: `ulimit-n` when given, otherwise `maxsock`, the
/// descriptors HAProxy would reserve for the same configuration (see
/// `percore_dataplane::fds::maxsock`); capped by the hard limit, with a warning when
/// that is too low.
pub fn set_fd_limit(ulimit_n: Option<u64>, maxsock: usize, maxconn: u32) {
    let wanted = ulimit_n.unwrap_or(maxsock as u64);
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if wanted > lim.rlim_max {
            eprintln!(
                "[WARNING]  ({}) : FD limit ({}) too low for maxconn={maxconn}; wanted {wanted}",
                std::process::id(),
                lim.rlim_max
            );
        }
        lim.rlim_cur = wanted.min(lim.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

fn stop_set() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local value.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        set
    }
}

/// Blocks the stop signals in this thread and every thread started after, so that only
/// [`wait_for_stop`] receives them.
pub fn block_stop_signals() {
    let set = stop_set();
    // SAFETY: a valid signal set; no old mask wanted.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Waits for a stop signal and acts on it; returns once the process should exit.
pub fn wait_for_stop(mut running: Running) {
    let set = stop_set();
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: a valid set and output location.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        match sig {
            libc::SIGUSR1 => {
                running.stop_gracefully();
                running.wait();
                return;
            }
            _ => std::process::exit(0),
        }
    }
}
