//! The fiber scheduler: fiber table, ready queue, deadlines, wakeups and cancellation.
//!
//! Owned by the TX thread. Pure bookkeeping, no Lua and no I/O: the loop asks it which fiber
//! to resume next and how long it may sleep in `poll`; fiber bodies tell it what they wait for
//! before they yield. Invariant (see [`Sched::check_invariants`]): a fiber id is in the ready
//! queue exactly once while its status is `Ready`, and never otherwise.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use super::timer::{Deadline, TimerHeap};
use super::{FiberId, FiberStatus, IdMap, WakeReason};
use crate::constants::{FIBER_COUNT_MAX, FIBER_ID_MIN};

/// What the scheduler knows of one fiber.
#[derive(Debug)]
pub struct FiberMeta {
    pub id: FiberId,
    /// Shared with the log context, which needs it on every switch.
    pub name: Rc<str>,
    pub status: FiberStatus,
    /// Set by `fiber:cancel()`; the fiber raises "fiber is cancelled" at its next wait.
    pub cancelled: bool,
    /// Why the last wait ended; handed to the fiber when it resumes.
    pub wake_reason: WakeReason,
    /// Context switches into this fiber, for `fiber.info()`.
    pub csw: u64,
    /// Bumped on every wait, so a deadline registered for an earlier wait is stale.
    wait_seq: u64,
    /// The session the fiber runs in (inherited from the fiber that created it).
    pub session: u32,
    /// The user a setuid function runs as, instead of the session's, while it runs.
    pub euid: Option<u32>,
    /// Whether `fiber:cancel()` ends the current wait (a coio job's wait is not cancellable:
    /// the job runs to completion on its worker regardless).
    cancellable: bool,
}

/// Errors of fiber bookkeeping that a script can cause.
#[derive(Debug, PartialEq, Eq)]
pub enum SchedError {
    /// More than [`FIBER_COUNT_MAX`] fibers alive.
    TooManyFibers,
    /// A wait requested outside any fiber (from the loop itself).
    NoCurrentFiber,
}

/// The fiber table and run queue.
pub struct Sched {
    fibers: IdMap<FiberMeta>,
    ready: VecDeque<FiberId>,
    /// Fibers that yielded (`fiber.yield`) this turn: they run again next turn, after the
    /// loop has polled, as in Tarantool, so a fiber yielding in a loop does not keep the
    /// loop from its sockets and inbox.
    yielded: Vec<FiberId>,
    timers: TimerHeap,
    next_id: FiberId,
    /// The last name given to `spawn`, shared: most fibers are named "lua".
    last_name: Rc<str>,
    /// Fibers being run, innermost last: a fiber started by `fiber.create` runs nested inside
    /// its creator's slice, as in Tarantool where the creator waits until the child yields.
    running: Vec<FiberId>,
}

impl Default for Sched {
    fn default() -> Self {
        Sched::new()
    }
}

impl Sched {
    pub fn new() -> Sched {
        Sched {
            fibers: IdMap::default(),
            ready: VecDeque::new(),
            yielded: Vec::new(),
            timers: TimerHeap::default(),
            next_id: FIBER_ID_MIN,
            last_name: Rc::from("lua"),
            running: Vec::new(),
        }
    }

    /// Register a new fiber. It is neither queued nor running: the caller either starts it at
    /// once ([`Sched::begin_run`]) or queues it ([`Sched::schedule`]).
    pub fn spawn(&mut self, name: &str) -> Result<FiberId, SchedError> {
        if self.fibers.len() >= FIBER_COUNT_MAX {
            return Err(SchedError::TooManyFibers);
        }
        let id = self.next_id;
        self.next_id += 1;
        let meta = FiberMeta {
            id,
            name: self.shared_name(name),
            status: FiberStatus::Suspended,
            cancelled: false,
            wake_reason: WakeReason::Woken,
            csw: 0,
            wait_seq: 0,
            cancellable: true,
            session: self.current_session(),
            euid: None,
        };
        self.fibers.insert(id, meta);
        Ok(id)
    }

    fn shared_name(&mut self, name: &str) -> Rc<str> {
        if &*self.last_name != name {
            self.last_name = Rc::from(name);
        }
        self.last_name.clone()
    }

    /// Queue a new or suspended fiber to run.
    pub fn schedule(&mut self, id: FiberId) {
        if let Some(meta) = self.fibers.get_mut(&id)
            && meta.status == FiberStatus::Suspended
        {
            meta.status = FiberStatus::Ready;
            meta.wait_seq += 1;
            self.ready.push_back(id);
        }
    }

    /// The session of the running fiber (the server's own outside fibers).
    pub fn current_session(&self) -> u32 {
        self.current_identity().0
    }

    /// The running fiber's session (as [`Self::current_session`]) and its effective user,
    /// if a setuid call overrides the session's.
    pub fn current_identity(&self) -> (u32, Option<u32>) {
        self.current()
            .and_then(|id| self.fibers.get(&id))
            .map_or((crate::r#box::session::ADMIN_SESSION, None), |meta| {
                (meta.session, meta.euid)
            })
    }

    /// Fibers of a closing session keep running as its user.
    pub fn orphan_session(&mut self, session: u32, uid: u32) {
        for meta in self.fibers.values_mut() {
            if meta.session == session && meta.euid.is_none() {
                meta.euid = Some(uid);
            }
        }
    }

    /// The fiber running now, if any.
    pub fn current(&self) -> Option<FiberId> {
        self.running.last().copied()
    }

    /// How deep fiber starts are nested right now (1 inside a fiber resumed by the loop).
    pub fn nesting(&self) -> usize {
        self.running.len()
    }

    pub fn get(&self, id: FiberId) -> Option<&FiberMeta> {
        self.fibers.get(&id)
    }

    pub fn get_mut(&mut self, id: FiberId) -> Option<&mut FiberMeta> {
        self.fibers.get_mut(&id)
    }

    /// Every live fiber, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &FiberMeta> {
        self.fibers.values()
    }

    /// Live fibers (not dead).
    pub fn live_count(&self) -> usize {
        self.fibers.len()
    }

    /// Mark `id` running, innermost. The caller resumes its body next, with the returned
    /// name (for the log) and why its last wait ended.
    pub fn begin_run(&mut self, id: FiberId) -> Option<(Rc<str>, WakeReason)> {
        self.running.push(id);
        let meta = self.fibers.get_mut(&id)?;
        debug_assert!(
            meta.status != FiberStatus::Running,
            "fiber {id} resumed twice"
        );
        meta.status = FiberStatus::Running;
        meta.csw += 1;
        Some((meta.name.clone(), meta.wake_reason))
    }

    /// The body of `id` returned control. `finished` means it ended (returned or raised): the
    /// fiber is forgotten. Otherwise it yielded; if it registered no wait it counts as a plain
    /// yield and is queued again.
    pub fn end_run(&mut self, id: FiberId, finished: bool) {
        let popped = self.running.pop();
        debug_assert_eq!(popped, Some(id), "fiber run stack out of order");
        if finished {
            self.fibers.remove(&id);
            return;
        }
        if let Some(meta) = self.fibers.get_mut(&id)
            && meta.status == FiberStatus::Running
        {
            meta.status = FiberStatus::Ready;
            self.ready.push_back(id);
        }
    }

    /// The running fiber is about to yield until woken, or until `deadline` if given.
    pub fn suspend_current(
        &mut self,
        deadline: Option<Instant>,
        cancellable: bool,
    ) -> Result<FiberId, SchedError> {
        let id = self.current().ok_or(SchedError::NoCurrentFiber)?;
        let meta = self.fibers.get_mut(&id).ok_or(SchedError::NoCurrentFiber)?;
        meta.status = FiberStatus::Suspended;
        meta.wait_seq += 1;
        meta.cancellable = cancellable;
        meta.wake_reason = WakeReason::Woken;
        if let Some(at) = deadline {
            let wait_seq = meta.wait_seq;
            self.timers.push(Deadline {
                at,
                fiber: id,
                wait_seq,
            });
        }
        Ok(id)
    }

    /// The running fiber is about to yield to let others run; it runs again next turn.
    pub fn yield_current(&mut self) -> Result<FiberId, SchedError> {
        let id = self.current().ok_or(SchedError::NoCurrentFiber)?;
        if let Some(meta) = self.fibers.get_mut(&id) {
            meta.status = FiberStatus::Ready;
            meta.wait_seq += 1;
            self.yielded.push(id);
        }
        Ok(id)
    }

    /// A loop turn begins: the fibers that yielded in the last one are ready again.
    pub fn start_turn(&mut self) {
        self.ready.extend(self.yielded.drain(..));
    }

    /// End the wait of a suspended fiber. Returns false if it was not waiting.
    pub fn wakeup(&mut self, id: FiberId, reason: WakeReason) -> bool {
        match self.fibers.get_mut(&id) {
            Some(meta) if meta.status == FiberStatus::Suspended => {
                meta.status = FiberStatus::Ready;
                meta.wait_seq += 1;
                meta.wake_reason = reason;
                self.ready.push_back(id);
                true
            }
            _ => false,
        }
    }

    /// Mark a fiber cancelled and end its wait if the wait allows it. Returns false for an
    /// unknown (dead) fiber.
    pub fn cancel(&mut self, id: FiberId) -> bool {
        let Some(meta) = self.fibers.get_mut(&id) else {
            return false;
        };
        meta.cancelled = true;
        if meta.status == FiberStatus::Suspended && meta.cancellable {
            self.wakeup(id, WakeReason::Woken);
        }
        true
    }

    /// Wake every fiber whose deadline passed; returns how many woke.
    pub fn fire_timers(&mut self, now: Instant) -> usize {
        let mut woken = 0;
        while let Some(deadline) = self.timers.pop_due(now) {
            let current = self.fibers.get(&deadline.fiber).map(|meta| meta.wait_seq);
            if current == Some(deadline.wait_seq)
                && self.wakeup(deadline.fiber, WakeReason::Timeout)
            {
                woken += 1;
            }
        }
        woken
    }

    /// The next fiber to resume.
    pub fn pop_ready(&mut self) -> Option<FiberId> {
        self.ready.pop_front()
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.yielded.is_empty()
    }

    /// The earliest pending deadline, which bounds the loop's poll timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_at()
    }

    /// Check the ready-queue invariant. Costly: tests and debug assertions only.
    pub fn check_invariants(&self) {
        let mut queued = std::collections::HashSet::new();
        for id in self.ready.iter().chain(&self.yielded) {
            assert!(queued.insert(*id), "fiber {id} queued twice");
            let status = self.fibers.get(id).map(|meta| meta.status);
            assert!(
                status.is_none() || status == Some(FiberStatus::Ready),
                "fiber {id} queued with status {status:?}"
            );
        }
        for meta in self.fibers.values() {
            if meta.status == FiberStatus::Ready {
                assert!(
                    queued.contains(&meta.id),
                    "ready fiber {} not queued",
                    meta.id
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run(sched: &mut Sched, id: FiberId, body: impl FnOnce(&mut Sched) -> bool) {
        sched.begin_run(id);
        let finished = body(sched);
        sched.end_run(id, finished);
        sched.check_invariants();
    }

    #[test]
    fn ids_start_at_101_and_ready_is_fifo() {
        let mut sched = Sched::new();
        let a = sched.spawn("a").unwrap();
        let b = sched.spawn("b").unwrap();
        assert_eq!((a, b), (101, 102));
        sched.schedule(b);
        sched.schedule(a);
        sched.schedule(a);
        sched.check_invariants();
        assert_eq!(sched.pop_ready(), Some(b));
        assert_eq!(sched.pop_ready(), Some(a));
        assert_eq!(sched.pop_ready(), None);
    }

    #[test]
    fn sleep_wakes_on_deadline_with_timeout_reason() {
        let mut sched = Sched::new();
        let id = sched.spawn("sleeper").unwrap();
        let start = Instant::now();
        run(&mut sched, id, |s| {
            s.suspend_current(Some(start + Duration::from_millis(5)), true)
                .unwrap();
            false
        });
        assert!(!sched.has_ready());
        assert_eq!(sched.fire_timers(start), 0);
        assert_eq!(sched.fire_timers(start + Duration::from_millis(5)), 1);
        assert_eq!(sched.get(id).unwrap().wake_reason, WakeReason::Timeout);
        assert_eq!(sched.pop_ready(), Some(id));
    }

    #[test]
    fn early_wakeup_makes_the_deadline_stale() {
        let mut sched = Sched::new();
        let id = sched.spawn("f").unwrap();
        let start = Instant::now();
        run(&mut sched, id, |s| {
            s.suspend_current(Some(start), true).unwrap();
            false
        });
        assert!(sched.wakeup(id, WakeReason::Woken));
        assert!(
            !sched.wakeup(id, WakeReason::Woken),
            "a ready fiber is not woken twice"
        );
        assert_eq!(sched.pop_ready(), Some(id));
        run(&mut sched, id, |s| {
            s.suspend_current(None, true).unwrap();
            false
        });
        assert_eq!(sched.fire_timers(start + Duration::from_secs(1)), 0);
        assert!(!sched.has_ready());
    }

    #[test]
    fn a_yielding_fiber_runs_again_next_turn() {
        let mut sched = Sched::new();
        let id = sched.spawn("f").unwrap();
        run(&mut sched, id, |s| {
            s.yield_current().unwrap();
            false
        });
        assert!(sched.has_ready());
        assert_eq!(sched.pop_ready(), None, "not this turn");
        sched.check_invariants();
        sched.start_turn();
        assert_eq!(sched.pop_ready(), Some(id));
    }

    #[test]
    fn yield_without_wait_requeues_and_finish_forgets() {
        let mut sched = Sched::new();
        let id = sched.spawn("f").unwrap();
        run(&mut sched, id, |_| false);
        assert_eq!(sched.get(id).unwrap().status, FiberStatus::Ready);
        assert_eq!(sched.pop_ready(), Some(id));
        run(&mut sched, id, |_| true);
        assert!(sched.get(id).is_none());
        assert!(!sched.wakeup(id, WakeReason::Woken));
        assert!(!sched.cancel(id));
    }

    #[test]
    fn cancel_ends_only_cancellable_waits() {
        let mut sched = Sched::new();
        let sleeper = sched.spawn("sleeper").unwrap();
        let coio = sched.spawn("coio").unwrap();
        run(&mut sched, sleeper, |s| {
            s.suspend_current(None, true).unwrap();
            false
        });
        run(&mut sched, coio, |s| {
            s.suspend_current(None, false).unwrap();
            false
        });
        assert!(sched.cancel(sleeper));
        assert!(sched.cancel(coio));
        assert_eq!(sched.pop_ready(), Some(sleeper));
        assert_eq!(sched.pop_ready(), None);
        assert!(sched.get(coio).unwrap().cancelled);
    }

    #[test]
    fn nested_start_tracks_the_innermost_fiber() {
        let mut sched = Sched::new();
        let parent = sched.spawn("parent").unwrap();
        let child = sched.spawn("child").unwrap();
        sched.begin_run(parent);
        sched.begin_run(child);
        assert_eq!(sched.current(), Some(child));
        assert_eq!(sched.nesting(), 2);
        sched.suspend_current(None, true).unwrap();
        sched.end_run(child, false);
        assert_eq!(sched.current(), Some(parent));
        sched.end_run(parent, true);
        assert_eq!(sched.current(), None);
        assert_eq!(
            sched.suspend_current(None, true),
            Err(SchedError::NoCurrentFiber)
        );
        sched.check_invariants();
    }
}
