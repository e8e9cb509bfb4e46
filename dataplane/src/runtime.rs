//! Executors: one thread per configured core, pinned with core_affinity, each running
//! its own compio runtime with its own listeners, pools and state. The main thread only
//! starts them and relays stop requests (graceful or immediate).

use crate::connect::Origin;
use crate::core::Core;
use crate::inspect::{inspect, Inspected};
use crate::listener::{self, Listening, Shared};
use crate::plan::{Frontend, Plan};
use crate::proxy_protocol;
use crate::rules::http::{Env, TxnState};
use crate::rules::{rejects, switch_backend};
use crate::stream::{Accepted, Resume};
use compio::net::TcpStream;
use futures_channel::oneshot;
use percore_config::{Bind, Mode};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The address reported for UNIX-socket clients, which have no IP address.
const UNSPECIFIED: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// How long a connection may take to send its PROXY header when no client timeout is set.
const PROXY_HEADER_WAIT: Duration = Duration::from_secs(5);

/// Which CPU each executor runs on (`None`: not pinned).
pub type Placement = Vec<Option<usize>>;

/// Running executors.
pub struct Running {
    threads: Vec<std::thread::JoinHandle<()>>,
    /// One per executor: sending on it (or dropping it) tells the executor to stop.
    stops: Vec<oneshot::Sender<()>>,
}

impl Running {
    /// Asks every executor to stop accepting and to exit once its connections end.
    pub fn stop_gracefully(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }

    /// Waits until every executor has exited.
    pub fn wait(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// How often an executor hands freed memory back to the system.
const TRIM_EVERY: Duration = Duration::from_millis(250);

/// Starts one executor per entry of `placement`. Returns once every executor has its
/// listeners open, or the first error any of them met. `trim` returns the calling
/// thread's freed memory to the system (the binary's allocator knows how); each
/// executor calls it four times a second, so that buffers freed by connections going idle do
/// not stay resident while the executor has nothing else to do.
pub fn start(plan: Arc<Plan>, placement: &Placement, trim: fn()) -> Result<Running, String> {
    let backlog = |fe: &Frontend, b: &Bind| -> i32 {
        b.backlog
            .or(fe.maxconn)
            .unwrap_or(plan.maxconn)
            .min(i32::MAX as u32) as i32
    };
    let mut shared: Vec<(usize, usize, Shared)> = Vec::new();
    for (fi, fe) in plan.frontends.iter().enumerate() {
        for (bi, b) in fe.binds.iter().enumerate() {
            if let Some(s) = listener::open_shared(b, backlog(fe, b))
                .map_err(|e| format!("[{}] {}: {e}", b.location, fe.name))?
            {
                shared.push((fi, bi, s));
            }
        }
    }
    let shared = Arc::new(shared);
    let process_conns = Arc::new(AtomicU32::new(0));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<oneshot::Sender<()>, String>>();
    let mut threads = Vec::new();
    let executors = placement.len();
    for (index, cpu) in placement.iter().copied().enumerate() {
        let plan = plan.clone();
        let shared = shared.clone();
        let process_conns = process_conns.clone();
        let ready = ready_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("percore-{index}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                }
                let runtime = match executor_runtime() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready.send(Err(format!(
                            "executor {index}: cannot start io_uring runtime: {e}"
                        )));
                        return;
                    }
                };
                runtime.block_on(executor(
                    plan,
                    (index, executors),
                    shared,
                    process_conns,
                    ready,
                    trim,
                ));
            })
            .map_err(|e| format!("cannot start executor thread: {e}"))?;
        threads.push(thread);
    }
    drop(ready_tx);
    let mut stops = Vec::new();
    for _ in 0..placement.len() {
        match ready_rx.recv() {
            Ok(Ok(stop)) => stops.push(stop),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("an executor exited during start".into()),
        }
    }
    Ok(Running { threads, stops })
}

/// An executor's io_uring runtime. Cooperative task running: the kernel does not
/// interrupt the executor to run completion work; it runs when the executor next
/// enters the ring, which suits one thread that owns the ring. The load generator and
/// origin use the same settings.
pub fn executor_runtime() -> std::io::Result<compio::runtime::Runtime> {
    let mut proactor = compio::driver::ProactorBuilder::new();
    proactor.coop_taskrun(true).taskrun_flag(true);
    compio::runtime::RuntimeBuilder::new()
        .with_proactor(proactor)
        .build()
}

/// One executor: open listeners, accept until told to stop, then drain.
async fn executor(
    plan: Arc<Plan>,
    (index, executors): (usize, usize),
    shared: Arc<Vec<(usize, usize, Shared)>>,
    process_conns: Arc<AtomicU32>,
    ready: mpsc::Sender<Result<oneshot::Sender<()>, String>>,
    trim: fn(),
) {
    let core = Rc::new(Core::new(plan.clone(), process_conns, executors));
    let mut listening: Vec<(usize, usize, Listening)> = Vec::new();
    let mut opened = || -> Result<(), String> {
        for (fi, fe) in plan.frontends.iter().enumerate() {
            for (bi, b) in fe.binds.iter().enumerate() {
                let backlog = b
                    .backlog
                    .or(fe.maxconn)
                    .unwrap_or(plan.maxconn)
                    .min(i32::MAX as u32) as i32;
                for l in listener::open_tcp(b, backlog)
                    .map_err(|e| format!("[{}] {} '{}': {e}", b.location, "frontend", fe.name))?
                {
                    listening.push((fi, bi, Listening::Tcp(l)));
                }
            }
        }
        for (fi, bi, s) in shared.iter() {
            listening.push((*fi, *bi, listener::duplicate(s).map_err(|e| e.to_string())?));
        }
        Ok(())
    };
    if let Err(e) = opened() {
        let _ = ready.send(Err(e));
        return;
    }
    let (stop, stopped) = oneshot::channel();
    let _ = ready.send(Ok(stop));
    let accepting: Vec<_> = listening
        .into_iter()
        .map(|(fi, bi, l)| compio::runtime::spawn(accept_loop(core.clone(), fi, bi, l)))
        .collect();
    // Kept until the executor ends: dropping the task would cancel it.
    let _trimming = compio::runtime::spawn(async move {
        loop {
            compio::time::sleep(TRIM_EVERY).await;
            trim();
        }
    });
    // Idle server connections beyond the recent need are closed in steps.
    let _purging = compio::runtime::spawn(crate::pool::purge_loop(core.clone()));
    // Idle HTTP connections wait here, all in one task.
    let watching = compio::runtime::spawn(crate::idle::watch(core.clone()));
    // This executor's share of the health and agent checks: servers are dealt out in
    // turn, and a server's agent runs beside its health checks.
    let owned = plan.backends.iter().enumerate().flat_map(|(b, be)| {
        be.servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.check.enabled || s.agent.enabled)
            .map(move |(s, _)| (b, s))
    });
    let mut checking = Vec::new();
    for (_, (b, s)) in owned.enumerate().filter(|(n, _)| n % executors == index) {
        let sp = &plan.backends[b].servers[s];
        if sp.check.enabled {
            checking.push(compio::runtime::spawn(crate::checks::run(
                plan.clone(),
                b,
                s,
            )));
        }
        if sp.agent.enabled {
            checking.push(compio::runtime::spawn(crate::checks::run_agent(
                plan.clone(),
                b,
                s,
            )));
        }
    }
    let _ = stopped.await;
    drop(accepting);
    drop(checking);
    core.idle.close();
    drop(watching);
    while core.active.get() > 0 {
        compio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Accepts connections on one listener, pausing while a `maxconn` is reached.
async fn accept_loop(core: Rc<Core>, fi: usize, bi: usize, l: Listening) {
    let plan = core.plan.clone();
    let fe = &plan.frontends[fi];
    let acceptor = match l {
        Listening::Tcp(l) => compio::net::TcpListener::from_std(l).map(Acceptor::Tcp),
        Listening::Unix(l) => compio::net::UnixListener::from_std(l).map(Acceptor::Unix),
    };
    let Ok(listener) = acceptor else { return };
    // A listener bound to one address gives every connection that address as its
    // destination: no getsockname(2) per connection (one syscall in twelve of a
    // one-request connection). A wildcard bind asks the kernel for each.
    let bound = match &listener {
        Acceptor::Tcp(l) => l.local_addr().ok().filter(|a| !a.ip().is_unspecified()),
        Acceptor::Unix(_) => None,
    };
    loop {
        while core.process_conns.load(Ordering::Relaxed) >= plan.maxconn
            || fe
                .maxconn
                .is_some_and(|m| fe.conns.load(Ordering::Relaxed) >= m)
        {
            compio::time::sleep(Duration::from_millis(5)).await;
        }
        let accepted = match &listener {
            Acceptor::Tcp(l) => l.accept().await.map(|(s, peer)| {
                let local = bound.unwrap_or_else(|| s.local_addr().unwrap_or(UNSPECIFIED));
                (
                    s,
                    Origin {
                        src: peer,
                        dst: local,
                    },
                )
            }),
            Acceptor::Unix(l) => l.accept().await.and_then(|(s, _)| unix_as_tcp(s)).map(|s| {
                (
                    s,
                    Origin {
                        src: UNSPECIFIED,
                        dst: UNSPECIFIED,
                    },
                )
            }),
        };
        match accepted {
            Ok((stream, origin)) => {
                let guard = ConnGuard::new(core.clone(), fi);
                compio::runtime::spawn(handle(guard, bi, stream, origin)).detach();
            }
            Err(_) => compio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// A listener adopted by this executor's runtime, TCP or UNIX.
enum Acceptor {
    Tcp(compio::net::TcpListener),
    Unix(compio::net::UnixListener),
}

/// Treats an accepted UNIX stream as a stream socket like any other: every operation
/// the proxy uses (recv, send, shutdown, splice) works the same on both families.
fn unix_as_tcp(s: compio::net::UnixStream) -> std::io::Result<TcpStream> {
    // SAFETY: dup of a valid descriptor; the original is closed when `s` drops.
    let fd = unsafe { libc::dup(s.as_raw_fd()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    TcpStream::from_std(unsafe { std::net::TcpStream::from_raw_fd(fd) })
}

/// Counts a client connection against the limits from its accept to its close. Taken
/// before the next accept, so that a limit is seen as soon as it is reached.
pub struct ConnGuard {
    /// The executor the connection lives on.
    pub core: Rc<Core>,
    /// Its frontend.
    pub fi: usize,
}

impl ConnGuard {
    fn new(core: Rc<Core>, fi: usize) -> Self {
        core.active.set(core.active.get() + 1);
        core.process_conns.fetch_add(1, Ordering::Relaxed);
        core.plan.frontends[fi]
            .conns
            .fetch_add(1, Ordering::Relaxed);
        Self { core, fi }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.core.active.set(self.core.active.get() - 1);
        self.core.process_conns.fetch_sub(1, Ordering::Relaxed);
        self.core.plan.frontends[self.fi]
            .conns
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A new client connection: PROXY header if the bind expects one, then the mode's path.
async fn handle(guard: ConnGuard, bi: usize, client: TcpStream, mut origin: Origin) {
    let core = guard.core.clone();
    let plan = core.plan.clone();
    let fe = &plan.frontends[guard.fi];
    let bind = &fe.binds[bi];
    let accepted = Instant::now();
    let _ = client.set_nodelay(true);
    let mut txn = TxnState::new(origin.src, origin.dst);
    let env = Env {
        core: &core,
        fe,
        be: None,
        server: None,
    };
    let rules = &fe.rules;
    // As in HAProxy, `tcp-request connection` rules see the real connection's
    // addresses, before any PROXY header.
    if rejects(&rules.tcp_connection, &rules.acls, &env, &mut txn) {
        return;
    }
    // The buffer is allocated when the client has sent something (see `stream`).
    let mut buf = Vec::new();
    if bind.accept_proxy || txn.expect_proxy {
        // Boxed: a rare step that would otherwise enlarge every connection's future.
        let reading = Box::pin(read_proxy_header(&client, fe, accepted, plan.tune.bufsize));
        let Some((pending, header)) = reading.await else {
            return;
        };
        buf = pending;
        origin.src = header.src.unwrap_or(origin.src);
        origin.dst = header.dst.unwrap_or(origin.dst);
        (txn.src, txn.dst) = (origin.src, origin.dst);
        txn.proxy_tlvs = header.tlvs;
    }
    if rejects(&rules.tcp_session, &rules.acls, &env, &mut txn) {
        return;
    }
    let bufsize = plan.tune.bufsize;
    if !rules.tcp_content.is_empty() {
        // Boxed, as the other rare steps, to keep every connection's future small.
        let set = Inspected::request(rules);
        let inspecting = Box::pin(inspect(&client, buf, set, &env, &mut txn, bufsize));
        match inspecting.await {
            Some(inspected) => buf = inspected,
            None => return,
        }
    }
    crate::log::connect_from(&core, fe, txn.src, txn.dst);
    match fe.mode {
        Mode::Http => {
            // A task of its own, which this one hands the connection to and ends: an
            // idle connection then costs what it keeps, not also this accept-time
            // future waiting on it.
            let conn = Box::new(Accepted {
                client,
                cbuf: buf,
                accepted,
                txn,
            });
            compio::runtime::spawn(crate::idle::serve(guard, Resume::New(conn))).detach();
        }
        Mode::Tcp => {
            let mut cx = env.context(&txn, &[], &[]);
            cx.payload = &buf;
            let Some(be) = switch_backend(fe, &cx) else {
                return;
            };
            let backend = &plan.backends[be];
            if fe.own_backend != Some(be) && !backend.rules.tcp_content.is_empty() {
                let env = Env {
                    be: Some(backend),
                    ..env
                };
                let set = Inspected::request(&backend.rules);
                let inspecting = inspect(&client, buf, set, &env, &mut txn, bufsize);
                match Box::pin(inspecting).await {
                    Some(inspected) => buf = inspected,
                    None => return,
                }
            }
            let relaying = Box::pin(crate::tcp::relay(
                &core,
                fe,
                be,
                client,
                buf,
                (origin, accepted),
                &mut txn,
            ));
            relaying.await
        }
    }
}

/// Reads the PROXY protocol header an `accept-proxy` bind requires. Returns the bytes
/// that followed it and the header, or `None` when the connection must be closed.
async fn read_proxy_header(
    client: &TcpStream,
    fe: &Frontend,
    accepted: Instant,
    bufsize: usize,
) -> Option<(Vec<u8>, proxy_protocol::ProxyHeader)> {
    let at = Some(
        accepted
            + fe.settings
                .timeouts
                .client
                .unwrap_or(PROXY_HEADER_WAIT)
                .min(PROXY_HEADER_WAIT),
    );
    let mut buf = Vec::with_capacity(bufsize);
    let mut wd = crate::io::Watchdog::default();
    wd.until(at);
    loop {
        match proxy_protocol::parse(&buf) {
            Ok(Some((header, len))) => {
                buf.drain(..len);
                return Some((buf, header));
            }
            Ok(None) => {}
            Err(_) => return None,
        }
        let (res, b) = crate::io::read_more(client, buf, &mut wd).await;
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return None;
        }
    }
}
