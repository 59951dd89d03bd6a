//! The TX thread's shared state and its inbox.
//!
//! Owned by the TX thread. [`Tx`] is what the event loop and the Lua callbacks both reach:
//! each subsystem sits in its own `RefCell`, borrowed briefly and never across a call back
//! into Lua (a Lua callback may re-enter any of them). The inbox is the one way other threads
//! reach TX: a bounded channel push plus one poke of the loop's single `mio::Waker`.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam::channel::{self, Receiver, Sender};

use crate::r#box::db::Db;
use crate::r#box::session::Sessions;
use crate::r#box::txn::Txn;
use crate::cfg::Cfg;
use crate::coio::{CoioOutput, CoioPool};
use crate::constants::TX_INBOX_CAPACITY;
use crate::fiber::FiberId;
use crate::fiber::IdMap;
use crate::fiber::sched::Sched;
use crate::lua::fiber::LuaFibers;
use crate::net::Net;
use crate::net::stdin::Stdin;

/// A message for the TX thread.
pub enum TxMsg {
    /// A coio job finished; resume `fiber` with the output.
    CoioDone { fiber: FiberId, output: CoioOutput },
    /// The interactive console's line editor produced an event.
    Stdin(StdinEvent),
    /// The WAL thread wrote (or failed to write) a batch.
    Wal(crate::wal::writer::WalReply),
    /// The snapshot thread's progress.
    Snapshot(crate::wal::snapshot::SnapshotMsg),
    /// A relay thread (master side of replication).
    /// (Boxed: a vclock or two would make every message of the inbox that large.)
    Relay(Box<crate::replication::RelayMsg>),
    /// An applier thread (replica side of replication).
    Applier(Box<crate::replication::ApplierMsg>),
}

/// What the stdin thread read.
#[derive(Debug, Clone, PartialEq)]
pub enum StdinEvent {
    /// A line, without its end-of-line character.
    Line(String),
    /// Ctrl-C at the prompt: the statement being typed is dropped.
    Interrupted,
    /// Ctrl-D or end of input.
    Eof,
}

/// The sending half of the inbox, with the waker that makes the loop look at it.
#[derive(Clone)]
pub struct TxSender {
    sender: Sender<TxMsg>,
    waker: Arc<mio::Waker>,
}

/// The inbox is gone: TX has stopped.
#[derive(Debug)]
pub struct TxGone;

impl TxSender {
    /// Push a message and wake the loop. Blocks while the inbox is full, which is
    /// backpressure on the sending thread; TX itself never sends to its own inbox.
    pub fn send(&self, msg: TxMsg) -> Result<(), TxGone> {
        self.sender.send(msg).map_err(|_| TxGone)?;
        // A failed wake means the poll is gone too; the message is then moot.
        self.waker.wake().map_err(|_| TxGone)
    }
}

/// Create the inbox for a loop whose waker is `waker`.
pub fn inbox(waker: Arc<mio::Waker>) -> (TxSender, Receiver<TxMsg>) {
    let (sender, receiver) = channel::bounded(TX_INBOX_CAPACITY);
    (TxSender { sender, waker }, receiver)
}

/// The loop's clock, read once per turn: `fiber.time()` is the time the turn began, as
/// Tarantool's `ev_now`, so many calls in one turn cost nothing and agree.
#[derive(Clone, Copy)]
pub struct LoopClock {
    pub monotonic: Instant,
    /// Seconds since the Unix epoch.
    pub realtime: f64,
}

impl LoopClock {
    pub fn now() -> LoopClock {
        let realtime = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        LoopClock {
            monotonic: Instant::now(),
            realtime,
        }
    }
}

/// The TX thread's state, shared by the loop and the Lua callbacks through an `Rc`.
pub struct Tx {
    pub sched: RefCell<Sched>,
    pub fibers: RefCell<LuaFibers>,
    pub net: RefCell<Net>,
    pub stdin: RefCell<Stdin>,
    pub coio: RefCell<CoioPool>,
    pub cfg: RefCell<Cfg>,
    /// Clone it to give another thread a way back.
    pub sender: TxSender,
    pub clock: Cell<LoopClock>,
    /// When the process started, for `box.info.uptime`.
    pub started: Instant,
    /// Set by `os.exit()` or a signal: the loop stops at the end of the turn with this code.
    pub exit_code: Cell<Option<i32>>,
    /// Set once `box.cfg{}` has run: a configured server serves until told to stop.
    pub box_configured: Cell<bool>,
    /// The database, from the first `box.cfg{}` on.
    pub db: RefCell<Option<Db>>,
    /// Transactions opened by `box.begin()`, by fiber.
    pub txns: RefCell<IdMap<Txn>>,
    /// Where committed rows go: the WAL thread, or nowhere with `wal_mode = 'none'`.
    pub journal: RefCell<crate::wal::journal::Journal>,
    /// The snapshot being written (`box.snapshot()`), if any.
    pub checkpoint: RefCell<crate::wal::snapshot::Checkpoint>,
    /// Spaces with `on_replace` triggers (only those pay for calling into Lua).
    pub trigger_spaces: RefCell<rustc_hash::FxHashSet<u32>>,
    /// Sessions of the server and its clients.
    pub sessions: RefCell<Sessions>,
    /// Which session triggers exist (only then does a connection pay for a fiber to run
    /// them).
    pub session_triggers: Cell<SessionTriggers>,
    /// The binary protocol's listener (`box.cfg.listen`).
    pub iproto_listener: Cell<Option<mio::Token>>,
    /// iproto requests being run by fibers, by fiber id: where each one's reply goes.
    pub iproto_requests: RefCell<IdMap<crate::lua::iproto::PendingRequest>>,
    /// Emptied request bodies for those requests to reuse (`lua::iproto::recycle_body`).
    pub request_bodies: RefCell<Vec<Vec<u8>>>,
    /// Relays and appliers.
    pub replication: RefCell<crate::replication::tx_replication::Replication>,
}

/// Whether any `box.session.on_connect`, `on_disconnect`, `on_auth` triggers are set.
#[derive(Clone, Copy, Debug, Default)]
pub struct SessionTriggers {
    pub on_connect: bool,
    pub on_disconnect: bool,
    pub on_auth: bool,
}

impl Tx {
    /// The user the running fiber acts as.
    pub fn current_uid(&self) -> u32 {
        let (session, euid) = self.sched.borrow().current_identity();
        euid.unwrap_or_else(|| self.sessions.borrow().uid(session))
    }
}

impl Tx {
    /// Refresh the loop clock at the start of a turn.
    pub fn tick(&self) -> LoopClock {
        let clock = LoopClock::now();
        self.clock.set(clock);
        clock
    }

    /// Ask the loop to stop with `code` at the end of this turn.
    pub fn request_exit(&self, code: i32) {
        if self.exit_code.get().is_none() {
            self.exit_code.set(Some(code));
        }
    }
}
