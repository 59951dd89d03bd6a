//! The TX thread's event loop: one mio `Poll`, the inbox, signals, timers and the fibers.
//!
//! Owned by the TX thread. Each turn:
//!
//! ```text
//!   tick clock ─▶ expire deadlines ─▶ run ready fibers (bounded) ─▶ exit?
//!        ▲                                                            │
//!        └── inbox, signals, socket readiness ◀── poll(timeout) ◀─────┘
//! ```
//!
//! The poll timeout is zero while fibers are ready, else the next deadline. The loop body
//! only dispatches; what an event means is decided by `Net` (bytes) and the Lua bridge
//! (fibers).

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crossbeam::channel::Receiver;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::constants::{POLL_EVENTS_MAX, POLL_SLEPT};
use crate::fiber::WakeReason;
use crate::lua::{console, fiber, iproto};
use crate::net::{ListenKind, Readiness};
use crate::tx::{Tx, TxMsg};

/// The waker's token: the inbox has messages.
pub const WAKER_TOKEN: Token = Token(0);
/// Signals arrived.
const SIGNAL_TOKEN: Token = Token(1);

/// The loop and what only it touches.
pub struct EventLoop {
    poll: Poll,
    events: Events,
    inbox: Receiver<TxMsg>,
    signals: Signals,
    lua: mlua::Lua,
    tx: Rc<Tx>,
}

impl EventLoop {
    pub fn new(
        poll: Poll,
        inbox: Receiver<TxMsg>,
        lua: mlua::Lua,
        tx: Rc<Tx>,
    ) -> io::Result<EventLoop> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        poll.registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        Ok(EventLoop {
            poll,
            events: Events::with_capacity(POLL_EVENTS_MAX),
            inbox,
            signals,
            lua,
            tx,
        })
    }

    pub fn lua(&self) -> &mlua::Lua {
        &self.lua
    }

    /// Run until `os.exit`, a signal, or nothing is left to serve. Returns the exit code.
    pub fn run(&mut self) -> i32 {
        loop {
            let now = self.tx.tick().monotonic;
            self.tx.sched.borrow_mut().start_turn();
            self.tx.sched.borrow_mut().fire_timers(now);
            fiber::run_ready(&self.lua, &self.tx);
            iproto::serve_pending(&self.lua, &self.tx);
            // This turn's commits go to the WAL as one batch.
            self.tx.journal.borrow_mut().flush();
            if let Some(code) = self.tx.exit_code.get() {
                return code;
            }
            if !self.has_work() {
                return 0;
            }
            if let Err(err) = self.poll_once() {
                crate::syserror!("poll failed: {err}");
                return 1;
            }
        }
    }

    /// Something keeps the process alive: a fiber, a socket, or a configured box.
    fn has_work(&self) -> bool {
        self.tx.sched.borrow().live_count() > 0
            || self.tx.net.borrow().is_serving()
            || self.tx.box_configured.get()
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let sched = self.tx.sched.borrow();
        if sched.has_ready() || self.tx.net.borrow().has_pending() {
            return Some(Duration::ZERO);
        }
        // From the time now, not the turn's start: the poll rounds up to whole
        // milliseconds, and counting the turn in made a 1 ms sleep take 2.
        let now = Instant::now();
        sched
            .next_deadline()
            .map(|at| at.saturating_duration_since(now))
    }

    fn poll_once(&mut self) -> io::Result<()> {
        let timeout = self.poll_timeout();
        let before = Instant::now();
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(err) => return Err(err),
        }
        let slept = before.elapsed() > POLL_SLEPT;
        let ready: Vec<(Token, Readiness)> = self
            .events
            .iter()
            .map(|event| {
                let hangup = event.is_read_closed() || event.is_error();
                let readiness = Readiness {
                    readable: event.is_readable() || hangup,
                    writable: event.is_writable() || event.is_write_closed(),
                    hangup,
                };
                (event.token(), readiness)
            })
            .collect();
        let sockets = ready
            .iter()
            .filter(|(token, _)| *token != WAKER_TOKEN && *token != SIGNAL_TOKEN)
            .count();
        {
            let mut net = self.tx.net.borrow_mut();
            net.sole_client = sockets == 1 && !net.has_pending();
            net.idle = slept;
        }
        for (token, readiness) in ready {
            match token {
                WAKER_TOKEN => {}
                SIGNAL_TOKEN => self.on_signals(),
                token => self.on_socket(token, readiness),
            }
        }
        self.drain_inbox();
        Ok(())
    }

    fn on_socket(&mut self, token: Token, readiness: Readiness) {
        if self.tx.net.borrow().is_listener(token) {
            let uuid = self
                .tx
                .db
                .borrow()
                .as_ref()
                .map(|db| db.instance_uuid.clone());
            let uuid = uuid.unwrap_or_default();
            let accepted = self.tx.net.borrow_mut().accept(token, &uuid);
            for client in &accepted {
                match client.kind {
                    ListenKind::Console => console::spawn_client(&self.lua, &self.tx, client),
                    ListenKind::Iproto => iproto::on_accept(&self.lua, &self.tx, client),
                }
            }
            return;
        }
        let limits = iproto::limits(&self.tx);
        let wake = self.tx.net.borrow_mut().ready(token, readiness, limits);
        if self.tx.net.borrow().is_iproto(token) {
            iproto::serve(&self.lua, &self.tx, token);
            return;
        }
        let mut sched = self.tx.sched.borrow_mut();
        for fiber in wake {
            sched.wakeup(fiber, WakeReason::Woken);
        }
    }

    fn on_signals(&mut self) {
        let pending: Vec<i32> = self.signals.pending().collect();
        for signal in pending {
            match signal {
                SIGHUP => {
                    if let Err(err) = crate::log::reopen() {
                        crate::syserror!("can't reopen the log: {err}");
                    }
                }
                _ => {
                    log::info!("got signal {signal}, shutting down");
                    self.tx.request_exit(0);
                }
            }
        }
    }

    fn drain_inbox(&mut self) {
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                TxMsg::CoioDone { fiber, output } => {
                    self.tx.fibers.borrow_mut().set_coio_output(fiber, output);
                    self.tx.sched.borrow_mut().wakeup(fiber, WakeReason::Woken);
                }
                TxMsg::Wal(reply) => crate::process::on_wal_reply(&self.tx, reply),
                TxMsg::Snapshot(msg) => crate::wal::snapshot::on_thread_msg(&self.tx, msg),
                TxMsg::Relay(msg) => {
                    crate::replication::tx_replication::on_relay_msg(&self.tx, *msg)
                }
                TxMsg::Applier(msg) => {
                    let lua = &self.lua;
                    let tx = &self.tx;
                    let hooks = crate::replication::tx_replication::LuaHooks {
                        on_schema: &|| crate::lua::box_data::refresh_schema(lua, tx),
                        on_replace: &|txn| {
                            crate::lua::box_data::run_replicated_triggers(lua, tx, txn)
                        },
                    };
                    crate::replication::tx_replication::on_applier_msg(tx, *msg, &hooks);
                }
                TxMsg::Stdin(event) => {
                    let reader = self.tx.stdin.borrow_mut().on_event(event);
                    if let Some(fiber) = reader {
                        self.tx.sched.borrow_mut().wakeup(fiber, WakeReason::Woken);
                    }
                }
            }
        }
    }
}
