//! Pipes for zero-copy TCP forwarding (`splice` socket -> pipe -> socket), kept per
//! executor and bounded by `maxpipes`, as HAProxy does.

use std::os::fd::{FromRawFd, OwnedFd};
use std::rc::Rc;

/// One pipe: read end and write end.
pub struct Pipe {
    /// Read end.
    pub read: Rc<OwnedFd>,
    /// Write end.
    pub write: Rc<OwnedFd>,
}

/// An executor's pipes: created on demand up to `limit`, reused after.
pub struct PipePool {
    free: Vec<Pipe>,
    created: usize,
    limit: usize,
    size: Option<usize>,
}

impl PipePool {
    /// A pool that creates at most `limit` pipes of `size` bytes (system default if unset).
    pub fn new(limit: usize, size: Option<usize>) -> Self {
        Self {
            free: Vec::new(),
            created: 0,
            limit,
            size,
        }
    }

    /// Takes a pipe, or `None` when the limit is reached (the caller copies instead).
    pub fn take(&mut self) -> Option<Pipe> {
        if let Some(p) = self.free.pop() {
            return Some(p);
        }
        if self.created >= self.limit {
            return None;
        }
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors on success.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return None;
        }
        if let Some(size) = self.size {
            // SAFETY: a valid pipe descriptor; failure only leaves the default size.
            unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, size as libc::c_int) };
        }
        self.created += 1;
        // SAFETY: both descriptors were just created and are owned here.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Some(Pipe {
            read: Rc::new(read),
            write: Rc::new(write),
        })
    }

    /// Returns an empty pipe for reuse. A pipe that may still hold data is dropped.
    pub fn give_back(&mut self, pipe: Pipe, empty: bool) {
        if empty {
            self.free.push(pipe);
        } else {
            self.created -= 1;
        }
    }
}
