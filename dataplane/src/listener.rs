//! Listening sockets. Each executor opens its own `SO_REUSEPORT` socket for every TCP
//! bind, so the kernel spreads connections over cores with no shared accept queue.
//! UNIX sockets and inherited `fd@N` sockets are created (or adopted) once and shared:
//! every executor accepts from a duplicate of the same descriptor.

use percore_config::{Bind, BindAddr};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A bind that is shared by all executors, created before they start.
pub struct Shared {
    /// The listening descriptor; executors accept from duplicates of it.
    pub fd: OwnedFd,
}

/// What each executor listens on for one bind address.
pub enum Listening {
    /// A TCP socket of this executor's own.
    Tcp(std::net::TcpListener),
    /// A UNIX socket (shared with other executors).
    Unix(std::os::unix::net::UnixListener),
}

/// Opens this executor's TCP sockets for a bind (one per port of a range).
pub fn open_tcp(bind: &Bind, backlog: i32) -> io::Result<Vec<std::net::TcpListener>> {
    let BindAddr::Inet { ip, port, port_end } = &bind.addr else {
        return Ok(Vec::new());
    };
    let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    (*port..=*port_end)
        .map(|p| {
            let addr = SocketAddr::new(ip, p);
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            if addr.is_ipv6() {
                socket.set_only_v6(false)?;
            }
            socket.set_nonblocking(true)?;
            socket.bind(&SockAddr::from(addr)).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot bind socket [{addr}]: {e}"))
            })?;
            socket.listen(backlog)?;
            Ok(socket.into())
        })
        .collect()
}

/// Creates (UNIX path) or adopts (`fd@N`) a bind shared by all executors.
pub fn open_shared(bind: &Bind, backlog: i32) -> io::Result<Option<Shared>> {
    match &bind.addr {
        BindAddr::Inet { .. } => Ok(None),
        BindAddr::Fd(n) => {
            // SAFETY: fcntl only inspects the descriptor number.
            if unsafe { libc::fcntl(*n, libc::F_GETFD) } < 0 {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("inherited fd@{n} is not open"),
                ));
            }
            // SAFETY: the descriptor is open and handed to us by our parent; we own it now.
            Ok(Some(Shared {
                fd: unsafe { OwnedFd::from_raw_fd(*n) },
            }))
        }
        BindAddr::Unix(path) => {
            let _ = std::fs::remove_file(path);
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
            socket.bind(&SockAddr::unix(path)?).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot bind UNIX socket [{}]: {e}", path.display()),
                )
            })?;
            socket.listen(backlog)?;
            socket.set_nonblocking(true)?;
            if let Some(mode) = bind.unix_mode {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            }
            if bind.unix_user.is_some() || bind.unix_group.is_some() {
                let uid = bind.unix_user.as_deref().map(user_id).transpose()?;
                let gid = bind.unix_group.as_deref().map(group_id).transpose()?;
                std::os::unix::fs::chown(path, uid, gid)?;
            }
            Ok(Some(Shared { fd: socket.into() }))
        }
    }
}

/// Whether an adopted descriptor is a UNIX socket.
pub fn is_unix(fd: RawFd) -> bool {
    // SAFETY: a zeroed sockaddr_storage is a valid output buffer for getsockname.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: valid pointers to the buffer and its length.
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    rc == 0 && i32::from(ss.ss_family) == libc::AF_UNIX
}

/// A duplicate of a shared descriptor for one executor.
pub fn duplicate(shared: &Shared) -> io::Result<Listening> {
    let fd = shared.fd.try_clone()?;
    if is_unix(fd.as_raw_fd()) {
        Ok(Listening::Unix(std::os::unix::net::UnixListener::from(fd)))
    } else {
        Ok(Listening::Tcp(std::net::TcpListener::from(fd)))
    }
}

fn user_id(name: &str) -> io::Result<u32> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let c =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: getpwnam reads a NUL-terminated name; the result is checked for NULL.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("unknown user '{name}'"),
        ));
    }
    // SAFETY: non-null pointer returned by getpwnam.
    Ok(unsafe { (*pw).pw_uid })
}

fn group_id(name: &str) -> io::Result<u32> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let c =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: getgrnam reads a NUL-terminated name; the result is checked for NULL.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("unknown group '{name}'"),
        ));
    }
    // SAFETY: non-null pointer returned by getgrnam.
    Ok(unsafe { (*gr).gr_gid })
}
