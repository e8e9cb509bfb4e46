//! Client connections between requests, held by their executor. An HTTP connection
//! that goes idle gives up its task and is parked here; one task per executor waits
//! for all parked connections at once, so that a connection waiting for its next
//! request costs what it keeps and its wait, not also a task and a session's future.
//! When the client speaks, leaves, or stays silent until its deadline, the connection
//! gets a task again. Nothing here reads a request or answers one: it only waits and
//! hands over.
//!
//! The deadlines are kept here too, in one heap per executor with one runtime timer
//! for the earliest (`Clock`): a runtime timer per connection costs its future and a
//! B-tree entry, about 150 bytes of every idle connection.

use crate::core::Core;
use crate::io::{readable, IoFail};
use crate::runtime::ConnGuard;
use crate::stream::{self, Idle, Resume};
use futures_util::future::{select, Either};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// One executor's parked connections on their way to its watcher.
pub struct IdleSet {
    /// Connections parked since the watcher last looked.
    new: RefCell<Vec<Parked>>,
    /// How to have the watcher look.
    watcher: RefCell<Option<Waker>>,
    /// False once the executor stops: a connection that goes idle then is closed, as
    /// HAProxy closes idle connections on a soft stop.
    open: Cell<bool>,
    /// The parked connections' deadlines.
    clock: RefCell<Clock>,
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
            clock: RefCell::default(),
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
/// wakes a task again; runs the one timer of their deadlines. Dropping it closes the
/// connections it holds.
pub async fn watch(core: Rc<Core>) {
    let mut waiting = FuturesUnordered::new();
    // Armed for the earliest deadline, and armed anew when that changes.
    let mut timer = Box::pin(compio::time::sleep_until(Instant::now()));
    let mut armed = None;
    loop {
        let (parked, woke) = std::future::poll_fn(|cx| loop {
            for p in core.idle.take_new(cx.waker()) {
                waiting.push(wait(p));
            }
            if let Poll::Ready(Some(done)) = waiting.poll_next_unpin(cx) {
                return Poll::Ready(done);
            }
            let Some(at) = core.idle.clock.borrow().next() else {
                return Poll::Pending;
            };
            if armed != Some(at) {
                timer.set(compio::time::sleep_until(at));
                armed = Some(at);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            armed = None;
            // Wakes the waits whose deadline passed; the loop then collects them.
            core.idle.clock.borrow_mut().expire(Instant::now());
        })
        .await;
        let Parked { guard, idle } = parked;
        compio::runtime::spawn(serve(guard, Resume::Woke(idle, woke))).detach();
    }
}

/// Waits for a parked connection's client, or its deadline.
async fn wait(parked: Parked) -> (Parked, Result<(), IoFail>) {
    let woke = {
        let polled = std::pin::pin!(readable(parked.idle.client()));
        match parked.idle.until() {
            None => polled.await,
            Some(at) => {
                let clock = &parked.guard.core.idle.clock;
                let expiry = Expiry {
                    ticket: clock.borrow_mut().arm(at),
                    clock,
                };
                match select(polled, expiry).await {
                    Either::Left((done, _)) => done,
                    Either::Right(_) => Err(IoFail::Timeout),
                }
            }
        }
    };
    (parked, woke)
}

/// The deadlines of one executor's parked connections: a heap in deadline order, and a
/// slot per armed deadline with the waker of the wait it ends. A wait that ends early
/// leaves its heap entry behind; entries whose slot has moved on are skipped when they
/// come up, and swept out when they outnumber the live ones.
#[derive(Default)]
struct Clock {
    /// By ticket key.
    slots: Vec<Slot>,
    /// Keys of free slots.
    free: Vec<u32>,
    /// Deadline, key and generation of every armed slot (and of some disarmed ones).
    due: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    /// Slots waiting for their deadline.
    live: usize,
}

/// A deadline's slot; `generation` tells its successive uses apart.
#[derive(Default)]
struct Slot {
    generation: u32,
    state: SlotState,
}

/// Where a slot's deadline stands.
#[derive(Default)]
enum SlotState {
    /// Unused.
    #[default]
    Free,
    /// Armed, with the waker of its wait once polled.
    Waiting(Option<Waker>),
    /// The deadline passed.
    Expired,
}

/// One armed deadline.
#[derive(Clone, Copy)]
struct Ticket {
    key: u32,
    generation: u32,
}

impl Clock {
    /// Arms a deadline.
    fn arm(&mut self, at: Instant) -> Ticket {
        let key = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Slot::default());
            (self.slots.len() - 1) as u32
        });
        let slot = &mut self.slots[key as usize];
        slot.state = SlotState::Waiting(None);
        let ticket = Ticket {
            key,
            generation: slot.generation,
        };
        self.live += 1;
        if self.due.len() > 2 * self.live + 64 {
            let slots = &self.slots;
            self.due.retain(|Reverse((_, k, g))| {
                let s = &slots[*k as usize];
                s.generation == *g && matches!(s.state, SlotState::Waiting(_))
            });
        }
        self.due.push(Reverse((at, key, ticket.generation)));
        ticket
    }

    /// Whether the ticket's deadline passed; if not, `waker` is woken when it does.
    fn poll(&mut self, t: Ticket, waker: &Waker) -> Poll<()> {
        match &mut self.slots[t.key as usize].state {
            SlotState::Waiting(w) => {
                if !w.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    *w = Some(waker.clone());
                }
                Poll::Pending
            }
            SlotState::Expired | SlotState::Free => Poll::Ready(()),
        }
    }

    /// Gives the ticket's slot back.
    fn disarm(&mut self, t: Ticket) {
        let slot = &mut self.slots[t.key as usize];
        if matches!(slot.state, SlotState::Waiting(_)) {
            self.live -= 1;
        }
        slot.state = SlotState::Free;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(t.key);
    }

    /// The earliest deadline in the heap (perhaps of a disarmed slot: waking for it
    /// only sweeps it out).
    fn next(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Ends the waits whose deadline is `now` or earlier.
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, key, generation))) = self.due.peek().copied() {
            if at > now {
                break;
            }
            self.due.pop();
            let slot = &mut self.slots[key as usize];
            if slot.generation != generation {
                continue;
            }
            if let SlotState::Waiting(w) = std::mem::replace(&mut slot.state, SlotState::Expired) {
                self.live -= 1;
                if let Some(w) = w {
                    w.wake();
                }
            }
        }
    }
}

/// A wait's deadline on its executor's clock: ready once it passes; disarmed when
/// dropped.
struct Expiry<'a> {
    clock: &'a RefCell<Clock>,
    ticket: Ticket,
}

impl Future for Expiry<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.clock.borrow_mut().poll(self.ticket, cx.waker())
    }
}

impl Drop for Expiry<'_> {
    fn drop(&mut self) {
        self.clock.borrow_mut().disarm(self.ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadlines_end_in_their_order_whatever_the_order_armed() {
        let mut clock = Clock::default();
        let t0 = Instant::now();
        let late = clock.arm(t0 + Duration::from_secs(3));
        let early = clock.arm(t0 + Duration::from_secs(1));
        let waker = Waker::noop();
        assert!(clock.poll(late, waker).is_pending());
        assert!(clock.poll(early, waker).is_pending());
        assert_eq!(clock.next(), Some(t0 + Duration::from_secs(1)));
        clock.expire(t0 + Duration::from_secs(2));
        assert!(clock.poll(early, waker).is_ready());
        assert!(clock.poll(late, waker).is_pending());
        assert_eq!(clock.next(), Some(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn a_reused_slot_is_not_ended_by_its_previous_deadline() {
        let mut clock = Clock::default();
        let t0 = Instant::now();
        let first = clock.arm(t0 + Duration::from_secs(1));
        clock.disarm(first);
        let second = clock.arm(t0 + Duration::from_secs(5));
        assert_eq!(second.key, first.key);
        clock.expire(t0 + Duration::from_secs(2));
        assert!(clock.poll(second, Waker::noop()).is_pending());
        assert_eq!(clock.live, 1);
    }

    #[test]
    fn waits_that_end_early_do_not_pile_up() {
        let mut clock = Clock::default();
        let far = Instant::now() + Duration::from_secs(300);
        let kept: Vec<Ticket> = (0..100).map(|_| clock.arm(far)).collect();
        for _ in 0..100_000 {
            let t = clock.arm(far);
            clock.disarm(t);
        }
        assert!(clock.due.len() <= 2 * 101 + 64, "{}", clock.due.len());
        assert_eq!(clock.live, kept.len());
    }
}
