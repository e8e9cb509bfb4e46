//! Client connections between requests, held by their executor. An HTTP connection
//! that goes idle gives up its task and is parked here; one task per executor waits
//! for all parked connections at once, so that a connection waiting for its next
//! request costs what it keeps and its wait, not also a task and a session's future.
//! When the client speaks, leaves, or stays silent until its deadline, the connection
//! gets a task again. Nothing here reads a request or answers one: it only waits and
//! hands over.

use crate::core::Core;
use crate::io::IoFail;
use crate::runtime::ConnGuard;
use crate::stream::{self, Idle, Resume};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Poll, Waker};

/// One executor's parked connections on their way to its watcher.
pub struct IdleSet {
    /// Connections parked since the watcher last looked.
    new: RefCell<Vec<Parked>>,
    /// How to have the watcher look.
    watcher: RefCell<Option<Waker>>,
    /// False once the executor stops: a connection that goes idle then is closed, as
    /// HAProxy closes idle connections on a soft stop.
    open: Cell<bool>,
}

/// An idle connection and its count against the limits.
pub struct Parked {
    guard: ConnGuard,
    idle: Idle,
}

impl Default for IdleSet {
    fn default() -> Self {
        Self {
            new: RefCell::default(),
            watcher: RefCell::default(),
            open: Cell::new(true),
        }
    }
}

impl IdleSet {
    /// Sets a connection aside until its client speaks (or its deadline).
    fn park(&self, parked: Parked) {
        if !self.open.get() {
            return;
        }
        self.new.borrow_mut().push(parked);
        if let Some(w) = self.watcher.borrow().as_ref() {
            w.wake_by_ref();
        }
    }

    /// Closes the connections parked and those that go idle from now on.
    pub fn close(&self) {
        self.open.set(false);
        let closing = std::mem::take(&mut *self.new.borrow_mut());
        drop(closing);
    }

    /// Takes the connections parked since the last look; `waker` is woken at the next.
    fn take_new(&self, waker: &Waker) -> Vec<Parked> {
        let mut w = self.watcher.borrow_mut();
        if !w.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *w = Some(waker.clone());
        }
        std::mem::take(&mut *self.new.borrow_mut())
    }
}

/// Serves a client connection in HTTP mode until it closes, parking it whenever it
/// goes idle.
pub async fn serve(guard: ConnGuard, from: Resume) {
    let core = guard.core.clone();
    let plan = core.plan.clone();
    if let Some(idle) = stream::serve(&core, &plan.frontends[guard.fi], from).await {
        core.idle.park(Parked { guard, idle });
    }
}

/// The executor's watcher: waits for every parked connection and gives each that
/// wakes a task again. Dropping it closes the connections it holds.
pub async fn watch(core: Rc<Core>) {
    let mut waiting = FuturesUnordered::new();
    loop {
        let (parked, woke) = std::future::poll_fn(|cx| {
            for p in core.idle.take_new(cx.waker()) {
                waiting.push(wait(p));
            }
            match waiting.poll_next_unpin(cx) {
                Poll::Ready(Some(done)) => Poll::Ready(done),
                Poll::Ready(None) | Poll::Pending => Poll::Pending,
            }
        })
        .await;
        let Parked { guard, idle } = parked;
        compio::runtime::spawn(serve(guard, Resume::Woke(idle, woke))).detach();
    }
}

/// Waits for a parked connection's client, or its deadline.
async fn wait(parked: Parked) -> (Parked, Result<(), IoFail>) {
    let woke = parked.idle.wait().await;
    (parked, woke)
}
