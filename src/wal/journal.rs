//! TX's side of the WAL: committed transactions wait here for the WAL thread.
//!
//! Owned by the TX thread. A commit puts its rows in the batch of this loop turn and its
//! transaction, with whoever waits for it, at the back of the queue; at the end of the turn
//! the batch goes to the WAL thread (group commit). The answer releases the queue's front:
//!
//! ```text
//!   commit ─▶ batch (this turn) ─▶ WAL thread ─▶ Written ─▶ waiters: fiber woken / reply sent
//!                                              └▶ Failed ─▶ roll back every queued
//!                                                 transaction, newest first; waiters get
//!                                                 ER_WAL_IO; the writer resumes
//! ```
//!
//! With `wal_mode = 'none'` there is no thread: a commit takes its LSNs at once and is done.

use std::collections::VecDeque;

use crossbeam::channel::{Sender, TrySendError};
use mio::Token;

use crate::r#box::tuple::Tuple;
use crate::r#box::txn::Txn;
use crate::error::{BoxError, ErrCode};
use crate::fiber::{FiberId, IdMap};

use super::vclock::Vclock;
use super::writer::{Batch, WalMsg, WalReply};

/// Who waits for a commit.
#[derive(Debug)]
pub enum Waiter {
    /// A fiber, parked until the WAL answers (`internal.data.commit_wait`).
    Fiber(FiberId),
    /// A binary-protocol request: its reply (the tuple, if any) goes out once written, the
    /// error reply instead if the write fails.
    Iproto {
        token: Token,
        sync: u64,
        tuple: Option<Tuple>,
    },
    /// A relay registering its replica in `_cluster` (the JOIN ends once written).
    Relay(u64),
    /// An applier's batch of rows, the last of them: written, the applier may send more.
    Applier(u64),
    /// Nobody (work outside fibers, such as start-up).
    Nobody,
}

/// A transaction written to a batch and not yet answered.
struct Queued {
    batch: u64,
    txn: Txn,
    waiter: Waiter,
    /// When its batch's first transaction was committed, for `too_long_threshold` (one
    /// clock reading per batch: at a few hundred a batch, a reading per transaction, and
    /// one more for its answer, took 3% of TX's time).
    since: std::time::Instant,
}

/// What finished commits owe their waiters, for the loop to deliver.
pub enum Outcome {
    Fiber(FiberId),
    Iproto {
        token: Token,
        sync: u64,
        reply: Result<Option<Tuple>, BoxError>,
    },
    Relay {
        relay: u64,
        result: Result<(), BoxError>,
    },
    /// Written or rolled back alike: either way the batch is out of TX's hands.
    Applier(u64),
}

/// The journal of TX.
pub struct Journal {
    /// None: `wal_mode = 'none'` (or before box.cfg{}), commits are done at once.
    sender: Option<Sender<WalMsg>>,
    /// Our server id: local rows get LSNs of this component.
    pub server_id: u32,
    /// What is written (or, without a WAL thread, committed). Set from outside only with
    /// [`Journal::start_at`], which keeps `committed` at least this.
    pub vclock: Vclock,
    /// What is committed: `vclock` and every queued row (local rows counted as the WAL will
    /// number them). Replicated rows at or below it are applied already. With a WAL
    /// thread, never behind `vclock`: the WAL writes only what was committed.
    committed: Vclock,
    batch: Batch,
    next_batch: u64,
    queue: VecDeque<Queued>,
    /// Batches up to this id were rolled back; their late answers mean nothing.
    rolled_back_to: u64,
    /// Outcomes of fibers' commits, until each fiber asks for its own.
    results: IdMap<Result<(), BoxError>>,
    /// How many queued commits each fiber waits for (a fiber's every write asks).
    waiting: IdMap<u32>,
    /// The last commit was queued (see [`Journal::claim`]).
    just_queued: bool,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Fibers parked in `commit_wait`: only they are woken by a finished commit (a fiber
    /// that committed where it could not yield may be waiting for something else).
    parked: rustc_hash::FxHashSet<FiberId>,
    /// `too_long_threshold`: a commit waiting longer is logged.
    pub too_long: std::time::Duration,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            sender: None,
            server_id: 1,
            vclock: Vclock::new(),
            committed: Vclock::new(),
            batch: Batch::default(),
            next_batch: 1,
            queue: VecDeque::new(),
            rolled_back_to: 0,
            results: IdMap::default(),
            waiting: IdMap::default(),
            just_queued: false,
            thread: None,
            parked: Default::default(),
            too_long: std::time::Duration::from_millis(500),
        }
    }
}

impl Journal {
    /// Start writing through the WAL thread behind `sender`.
    pub fn attach(&mut self, sender: Sender<WalMsg>, thread: std::thread::JoinHandle<()>) {
        self.sender = Some(sender);
        self.thread = Some(thread);
    }

    /// At exit: send what this turn committed, let the WAL thread write everything queued
    /// and close its file (end marker, sync), and wait for it.
    pub fn shutdown(&mut self) {
        let Some(sender) = self.sender.take() else {
            return;
        };
        if !self.batch.is_empty() {
            let mut batch = std::mem::take(&mut self.batch);
            batch.id = self.next_batch;
            let _ = sender.send(WalMsg::Write(batch));
        }
        let _ = sender.send(WalMsg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Pass an error injection to the WAL thread; false without one.
    pub fn inject(&self, msg: WalMsg) -> bool {
        self.sender
            .as_ref()
            .is_some_and(|sender| sender.send(msg).is_ok())
    }

    /// Whether commits wait for a WAL thread.
    pub fn is_async(&self) -> bool {
        self.sender.is_some()
    }

    /// Commit `txn`: done at once without a WAL thread or without rows, else queued for
    /// `waiter` until the WAL answers. Returns whether the commit is pending.
    pub fn commit(&mut self, txn: Txn, waiter: Waiter) -> bool {
        self.just_queued = false;
        if txn.rows().next().is_none() {
            return false;
        }
        if self.sender.is_none() {
            // wal_mode = 'none': LSNs are still assigned, nothing is written.
            for _ in txn.rows() {
                self.vclock.inc(self.server_id);
            }
            return false;
        }
        for row in txn.rows() {
            self.batch
                .push_local(row.kind as u32, |out| row.encode_body(out));
            self.committed.inc(self.server_id);
        }
        self.enqueue(txn, waiter);
        true
    }

    /// Commit a row replicated from `origin`: its own body goes to the WAL with its origin
    /// and LSN (even when it changed nothing here, so the vclock moves on durably), and
    /// `txn` holds what it changed, for a rollback.
    pub fn commit_replicated(
        &mut self,
        txn: Txn,
        row: (u32, u32, i64),
        body: &[u8],
        waiter: Waiter,
    ) -> bool {
        self.just_queued = false;
        let (kind, origin, lsn) = row;
        if self.sender.is_none() {
            self.vclock.follow(origin, lsn);
            return false;
        }
        self.batch.push_replicated(kind, origin, lsn, body);
        self.committed.follow(origin, lsn);
        self.enqueue(txn, waiter);
        true
    }

    /// What is committed, queued rows included (see `committed`).
    pub fn committed(&self) -> Vclock {
        if self.sender.is_none() {
            return self.vclock.clone();
        }
        self.committed.clone()
    }

    /// The committed LSN of `origin` (see [`Journal::committed`]), without a copy.
    pub fn committed_lsn(&self, origin: u32) -> i64 {
        if self.sender.is_none() {
            return self.vclock.get(origin);
        }
        self.committed.get(origin)
    }

    /// Start from `vclock` (recovered, joined, or moved on past an existing file name):
    /// nothing is queued then.
    pub fn start_at(&mut self, vclock: Vclock) {
        debug_assert!(
            self.queue.is_empty(),
            "the journal restarts with commits queued"
        );
        self.committed = vclock.clone();
        self.vclock = vclock;
    }

    fn enqueue(&mut self, txn: Txn, waiter: Waiter) {
        if let Waiter::Fiber(fiber) = waiter {
            *self.waiting.entry(fiber).or_default() += 1;
        }
        let batch = self.next_batch;
        let since = match self.queue.back() {
            Some(last) if last.batch == batch => last.since,
            _ => std::time::Instant::now(),
        };
        self.queue.push_back(Queued {
            batch,
            txn,
            waiter,
            since,
        });
        self.just_queued = true;
    }

    /// Local rows committed and not yet written: this turn's batch and the batches the WAL
    /// has not answered (a snapshot's vclock counts them in).
    pub fn pending_rows(&self) -> u64 {
        self.queue
            .iter()
            .map(|queued| queued.txn.rows().count() as u64)
            .sum()
    }

    /// Forget whether the last commit was queued: a caller about to run a request that may
    /// commit, and then [`Journal::claim`] it, starts here.
    pub fn unmark(&mut self) {
        self.just_queued = false;
    }

    /// If the last commit (since [`Journal::unmark`]) is waiting for the WAL, make `waiter`
    /// the one it answers, and return true.
    pub fn claim(&mut self, waiter: Waiter) -> bool {
        if !std::mem::take(&mut self.just_queued) {
            return false;
        }
        if let Some(queued) = self.queue.back_mut()
            && let Waiter::Fiber(fiber) = std::mem::replace(&mut queued.waiter, waiter)
        {
            self.stop_waiting(fiber);
        }
        true
    }

    /// A fiber ended: drop an outcome it never took.
    pub fn forget(&mut self, fiber: FiberId) {
        self.results.remove(&fiber);
        self.parked.remove(&fiber);
    }

    /// Whether `fiber` has a commit waiting for the WAL.
    pub fn fiber_waits(&self, fiber: FiberId) -> bool {
        self.waiting.contains_key(&fiber)
    }

    /// One of `fiber`'s queued commits is answered (or handed to another waiter).
    fn stop_waiting(&mut self, fiber: FiberId) {
        if let Some(count) = self.waiting.get_mut(&fiber) {
            *count -= 1;
            if *count == 0 {
                self.waiting.remove(&fiber);
            }
        }
    }

    /// `fiber` is about to yield until its commits are written.
    pub fn park(&mut self, fiber: FiberId) {
        self.parked.insert(fiber);
    }

    /// The outcome of `fiber`'s last commit, taken (Ok when it had none).
    pub fn take_result(&mut self, fiber: FiberId) -> Result<(), BoxError> {
        self.results.remove(&fiber).unwrap_or(Ok(()))
    }

    /// Send this turn's batch to the WAL thread; kept for the next turn if its queue is
    /// full (the waiting commits wait a little longer).
    pub fn flush(&mut self) {
        let Some(sender) = &self.sender else {
            return;
        };
        if self.batch.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.id = self.next_batch;
        match sender.try_send(WalMsg::Write(batch)) {
            Ok(()) => self.next_batch += 1,
            Err(TrySendError::Full(WalMsg::Write(batch))) => self.batch = batch,
            Err(_) => {
                crate::syserror!("the WAL thread is gone");
                self.sender = None;
            }
        }
    }

    /// The WAL thread answered: release what it wrote, or roll back everything queued.
    /// `rollback` undoes one transaction. Returns what the waiters are owed.
    pub fn on_reply(&mut self, reply: WalReply, mut rollback: impl FnMut(Txn)) -> Vec<Outcome> {
        let mut owed = Vec::new();
        match reply {
            WalReply::Written { id, vclock } => {
                self.vclock = *vclock;
                // The oldest answered batch waited longest.
                let mut oldest = None;
                while self.queue.front().is_some_and(|queued| queued.batch <= id) {
                    let queued = self.queue.pop_front().expect("checked");
                    oldest.get_or_insert(queued.since);
                    owed.extend(self.release(queued.waiter, Ok(())));
                }
                let slowest = oldest.map_or(std::time::Duration::ZERO, |since| since.elapsed());
                if slowest > self.too_long {
                    log::warn!(
                        "too long WAL write: batch {id} took {:.3} sec",
                        slowest.as_secs_f64()
                    );
                }
            }
            WalReply::Failed { id, reason } => {
                if id <= self.rolled_back_to {
                    return owed;
                }
                log::error!(
                    "WAL write failed ({reason}): rolling back {} transactions",
                    self.queue.len()
                );
                let err = BoxError::new(ErrCode::WAL_IO, &[]);
                // Everything queued and everything of this turn: newest first.
                self.batch = Batch::default();
                while let Some(queued) = self.queue.pop_back() {
                    rollback(queued.txn);
                    owed.extend(self.release(queued.waiter, Err(err.clone())));
                }
                owed.reverse();
                // Batches sent so far fail too (the writer fails all until resumed).
                self.rolled_back_to = self.next_batch - 1;
                self.committed = self.vclock.clone();
                if let Some(sender) = &self.sender {
                    let _ = sender.send(WalMsg::Resume);
                }
            }
        }
        owed
    }

    fn release(&mut self, waiter: Waiter, result: Result<(), BoxError>) -> Option<Outcome> {
        match waiter {
            Waiter::Fiber(fiber) => {
                self.stop_waiting(fiber);
                // A failure sticks until the fiber takes it (all later commits fail too).
                if self.results.get(&fiber).is_none_or(Result::is_ok) {
                    self.results.insert(fiber, result);
                }
                self.parked.remove(&fiber).then_some(Outcome::Fiber(fiber))
            }
            Waiter::Iproto { token, sync, tuple } => Some(Outcome::Iproto {
                token,
                sync,
                reply: result.map(|()| tuple),
            }),
            Waiter::Relay(relay) => Some(Outcome::Relay { relay, result }),
            Waiter::Applier(applier) => Some(Outcome::Applier(applier)),
            Waiter::Nobody => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::r#box::txn::{JournalRow, RowKind, Stmt};

    /// A one-statement transaction marked by its space id.
    fn txn(space_id: u32) -> Txn {
        let mut txn = Txn::autocommit();
        txn.stmts.push(Stmt {
            space_id,
            old: None,
            new: None,
            alter: None,
            row: Some(JournalRow::new(RowKind::Insert, space_id)),
        });
        txn
    }

    fn attached() -> (Journal, crossbeam::channel::Receiver<WalMsg>) {
        let (sender, receiver) = crossbeam::channel::bounded(4);
        let journal = Journal {
            sender: Some(sender),
            ..Journal::default()
        };
        (journal, receiver)
    }

    fn written(id: u64, lsn: i64) -> WalReply {
        let mut vclock = Vclock::new();
        vclock.set(1, lsn);
        WalReply::Written {
            id,
            vclock: Box::new(vclock),
        }
    }

    #[test]
    fn committed_counts_queued_rows_of_every_origin_until_a_failure() {
        let (mut journal, wal) = attached();
        let mut start = Vclock::new();
        start.set(1, 10);
        start.set(2, 4);
        journal.start_at(start);
        assert!(journal.commit(txn(512), Waiter::Nobody));
        assert!(journal.commit_replicated(Txn::autocommit(), (2, 2, 7), &[0x80], Waiter::Nobody));
        let committed = journal.committed();
        assert_eq!((committed.get(1), committed.get(2)), (11, 7));
        assert_eq!(
            (journal.committed_lsn(1), journal.committed_lsn(2)),
            (11, 7)
        );
        // Written: nothing changes but the written vclock.
        journal.flush();
        let Ok(WalMsg::Write(batch)) = wal.try_recv() else {
            panic!("no batch")
        };
        assert_eq!(batch.rows[1].server_id, 2);
        assert_eq!(batch.rows[1].lsn, 7);
        // A failure rolls everything back: committed is what is written again.
        let failed = WalReply::Failed {
            id: 1,
            reason: String::from("disk"),
        };
        let mut rolled_back = 0;
        journal.on_reply(failed, |_| rolled_back += 1);
        assert_eq!(rolled_back, 2);
        let committed = journal.committed();
        assert_eq!((committed.get(1), committed.get(2)), (10, 4));
    }

    #[test]
    fn without_a_wal_thread_commits_are_done_at_once() {
        let mut journal = Journal::default();
        assert!(!journal.commit(txn(512), Waiter::Fiber(101)));
        assert!(!journal.commit(txn(513), Waiter::Nobody));
        assert_eq!(journal.vclock.get(1), 2);
        assert!(!journal.claim(Waiter::Nobody));
    }

    #[test]
    fn a_turn_is_one_batch_and_its_answer_releases_the_waiters() {
        let (mut journal, wal) = attached();
        assert!(journal.commit(txn(512), Waiter::Fiber(101)));
        assert!(journal.commit(txn(513), Waiter::Fiber(102)));
        assert!(journal.fiber_waits(102));
        let (token, sync) = (Token(7), 9);
        assert!(journal.claim(Waiter::Iproto {
            token,
            sync,
            tuple: None
        }));
        // The claimed commit is no longer the fiber's to wait for.
        assert!(!journal.fiber_waits(102));
        assert!(!journal.claim(Waiter::Nobody), "claimed twice");
        journal.park(101);
        journal.flush();
        let Ok(WalMsg::Write(batch)) = wal.try_recv() else {
            panic!("no batch")
        };
        assert_eq!((batch.id, batch.rows.len()), (1, 2));
        assert!(journal.fiber_waits(101));
        let owed = journal.on_reply(written(1, 2), |_| panic!("no rollback"));
        assert_eq!(owed.len(), 2);
        assert!(matches!(owed[0], Outcome::Fiber(101)));
        assert!(matches!(
            &owed[1],
            Outcome::Iproto {
                sync: 9,
                reply: Ok(None),
                ..
            }
        ));
        assert!(!journal.fiber_waits(101));
        assert_eq!(journal.take_result(101), Ok(()));
        assert_eq!(journal.vclock.get(1), 2);
    }

    #[test]
    fn a_failure_rolls_back_everything_queued_newest_first() {
        let (mut journal, wal) = attached();
        journal.commit(txn(1), Waiter::Fiber(101));
        journal.flush();
        journal.commit(txn(2), Waiter::Fiber(102));
        journal.flush();
        journal.commit(txn(3), Waiter::Nobody);
        let mut undone = Vec::new();
        let owed = journal.on_reply(
            WalReply::Failed {
                id: 1,
                reason: "disk full".into(),
            },
            |txn| undone.push(txn.stmts[0].space_id),
        );
        assert_eq!(undone, vec![3, 2, 1]);
        // Nobody was parked: nobody is woken, but both fibers find the error.
        assert!(owed.is_empty());
        assert_eq!(journal.take_result(101).unwrap_err().code, ErrCode::WAL_IO);
        assert_eq!(journal.take_result(102).unwrap_err().code, ErrCode::WAL_IO);
        // The writer is told to resume; the late failure of batch 2 means nothing.
        let messages: Vec<WalMsg> = wal.try_iter().collect();
        assert!(matches!(messages.last(), Some(WalMsg::Resume)));
        let owed = journal.on_reply(
            WalReply::Failed {
                id: 2,
                reason: "disk full".into(),
            },
            |_| panic!("rolled back twice"),
        );
        assert!(owed.is_empty());
        // What comes next is written as usual.
        journal.commit(txn(4), Waiter::Nobody);
        journal.flush();
        let Ok(WalMsg::Write(batch)) = wal.try_recv() else {
            panic!("no batch")
        };
        assert_eq!(batch.id, 3);
        assert!(journal.on_reply(written(3, 1), |_| panic!()).is_empty());
    }
}
