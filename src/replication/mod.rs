//! Replication: relays (master side) and appliers (replica side), and the messages they
//! exchange with TX. PROTOCOL.md §7 has the wire facts.
//!
//! ```text
//!  master                                            replica
//!  TX: JOIN/SUBSCRIBE checked ─▶ relay thread  ◀──socket──▶  applier thread ─▶ TX: apply rows
//!       ▲   RelayMsg │  ▲ RelayCmd                          ApplierMsg │  ▲ ApplierCmd
//!       └────────────┘  └── WAL thread wakes relays (no rows,         ▼  │
//!                            relays read the xlogs themselves)        TX (box.cfg, WAL)
//! ```
//!
//! - `relay`: one thread per replica on the master: streams a JOIN's read view, then the
//!   xlogs from the replica's vclock, woken by the WAL thread after each write; heartbeats.
//! - `applier`: one thread per replication source on the replica: connect, auth, JOIN or
//!   SUBSCRIBE, decode rows and hand them to TX in batches; reconnects every second.
//! - the rest of this file: the types both threads share with TX (TX owns the registries of
//!   relays and appliers, in `tx_replication`).

pub mod applier;
pub mod codec;
pub mod probe;
pub mod relay;
pub mod tx_replication;

use std::time::Duration;

use crate::error::BoxError;
use crate::wal::vclock::Vclock;

/// Rows packed in one buffer: each row is a whole packet without its length prefix
/// (header map then body map), exactly as it came off the wire or out of an xlog.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rows {
    pub data: Vec<u8>,
    /// Where each row ends in `data` (the first starts at 0).
    pub ends: Vec<usize>,
}

impl Rows {
    pub fn push(&mut self, row: &[u8]) {
        self.data.extend_from_slice(row);
        self.ends.push(self.data.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let row = &self.data[start..end];
            start = end;
            row
        })
    }
}

/// An applier's state, as `box.info.replication` names it (PROTOCOL.md §7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplierState {
    Off,
    Connect,
    Auth,
    Connected,
    Bootstrap,
    Follow,
    Stopped,
    Disconnected,
}

impl ApplierState {
    pub fn name(self) -> &'static str {
        match self {
            ApplierState::Off => "off",
            ApplierState::Connect => "connect",
            ApplierState::Auth => "auth",
            ApplierState::Connected => "connected",
            ApplierState::Bootstrap => "bootstrap",
            ApplierState::Follow => "follow",
            ApplierState::Stopped => "stopped",
            ApplierState::Disconnected => "disconnected",
        }
    }
}

/// What TX gives a new applier thread.
#[derive(Clone, Debug)]
pub struct ApplierConfig {
    /// TX's handle for this applier (messages carry it).
    pub id: u64,
    /// `[user:password@]host:port` as configured.
    pub uri: String,
    /// JOIN first with this instance UUID (a new replica), else SUBSCRIBE straight away.
    pub join_as: Option<String>,
    /// `replication_timeout`: heartbeat period of the master; 4 of them silent is a dead link.
    pub timeout: Duration,
    /// `replication_connect_timeout`: for connect and the greeting.
    pub connect_timeout: Duration,
}

/// Applier thread to TX.
#[derive(Debug)]
pub enum ApplierMsg {
    /// The state changed; `message` says why for Stopped and Disconnected.
    State {
        applier: u64,
        state: ApplierState,
        message: Option<String>,
    },
    /// The greeting was read: who the master is.
    Greeted {
        applier: u64,
        master_uuid: String,
        version: String,
        peer: String,
    },
    /// Rows of a JOIN's read view (snapshot rows: INSERTs, server id 0).
    JoinRows { applier: u64, rows: Rows },
    /// The JOIN is over: the master's vclock of the read view.
    Joined { applier: u64, vclock: Vclock },
    /// Connected (and joined, if asked) and ready to subscribe: TX answers with
    /// [`ApplierCmd::Subscribe`] carrying what it has applied, or [`ApplierCmd::Stop`].
    WantSubscribe { applier: u64 },
    /// The master accepted SUBSCRIBE: its server id and its vclock then.
    Subscribed {
        applier: u64,
        master_id: u32,
        vclock: Vclock,
    },
    /// Rows of the subscription, in the order received, and when they were (seconds since
    /// the epoch: the lag is measured to their arrival, not to when TX gets to them).
    Rows {
        applier: u64,
        rows: Rows,
        received: f64,
    },
    /// A heartbeat: the link is alive; `timestamp` is the master's clock.
    Heartbeat { applier: u64, timestamp: f64 },
    /// The thread has ended (after Stop, or stopped by an error).
    Exited { applier: u64 },
    /// A mesh's new server probed a peer (see `probe`): its UUID and whether it has data,
    /// or why it did not answer.
    Probed {
        uri: String,
        answer: Result<probe::Probe, String>,
    },
}

/// TX to an applier thread.
#[derive(Debug)]
pub enum ApplierCmd {
    /// Subscribe from `vclock` (what TX has applied, queued rows included).
    Subscribe {
        cluster_uuid: String,
        instance_uuid: String,
        vclock: Vclock,
    },
    /// These rows are written: tell the master (a 1.7+ master shows it downstream).
    Ack(Vclock),
    /// One batch of rows this applier handed over is applied and written: it may hand over
    /// another (at most `APPLIER_BATCHES_IN_FLIGHT_MAX` are in transit).
    Applied,
    /// TX refused the rows (a conflict): stop with this error, state Stopped.
    Fail(BoxError),
    /// End the thread (source removed or the server stops).
    Stop,
}

/// What TX gives a new relay thread, with the socket it takes over from the TX loop.
pub struct RelayConfig {
    /// TX's handle for this relay.
    pub id: u64,
    /// The replica's connection, now blocking and owned by the relay.
    pub stream: std::net::TcpStream,
    /// The peer address, for log lines.
    pub peer: String,
    /// Our server id (the OK replies' header SERVER_ID).
    pub master_id: u32,
    /// Where the xlogs are.
    pub wal_dir: std::path::PathBuf,
    /// `replication_timeout`: heartbeat period when idle.
    pub timeout: Duration,
    /// Pokes from the WAL thread after each write (coalesced: capacity 1).
    pub wake: crossbeam::channel::Receiver<()>,
    /// How the relay begins.
    pub start: RelayStart,
}

/// The request that made the relay.
// Sent once per connection or per batch of rows, never per row: size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum RelayStart {
    /// JOIN: send these rows (INSERTs into each space, server id 0, LSN 1..N, the JOIN's
    /// sync), then [`RelayMsg::JoinSent`]; wait for [`RelayCmd::JoinDone`] (or Failed)
    /// and send the final OK; then read the replica's next request (SUBSCRIBE) and pass it
    /// to TX as [`RelayMsg::SubscribeRequest`].
    Join {
        sync: u64,
        view: Vec<crate::wal::snapshot::SpaceView>,
    },
    /// SUBSCRIBE, accepted by TX.
    Subscribe(SubscribeStart),
}

/// An accepted SUBSCRIBE.
#[derive(Clone, Debug)]
pub struct SubscribeStart {
    pub sync: u64,
    /// The subscriber's server id: its own rows are not sent back to it.
    pub replica_id: u32,
    /// The subscriber's vclock: rows at or below it are not sent.
    pub vclock: Vclock,
    /// Our vclock now, for the OK reply.
    pub master_vclock: Vclock,
    /// The subscriber sent a version (1.7+): it takes heartbeats.
    pub heartbeats: bool,
}

/// TX to a relay thread.
// Sent once per connection or per batch of rows, never per row: size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum RelayCmd {
    /// The replica is registered; send the final OK with this vclock.
    JoinDone { vclock: Vclock },
    /// Registration or the JOIN failed: send this error and end.
    JoinFailed(BoxError),
    /// TX's answer to [`RelayMsg::SubscribeRequest`].
    Subscribe(Result<SubscribeStart, BoxError>),
    /// End the thread.
    Stop,
}

/// A relay thread to TX.
#[derive(Debug)]
// Sent once per connection or per batch of rows, never per row: size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum RelayMsg {
    /// Every row of the JOIN's read view is sent: TX registers the replica.
    JoinSent { relay: u64 },
    /// The replica asks to subscribe on the JOIN's connection: TX checks and answers with
    /// [`RelayCmd::Subscribe`].
    SubscribeRequest {
        relay: u64,
        sync: u64,
        request: SubscribeRequest,
    },
    /// Following: how far the replica is known to be. A 1.7+ replica acknowledges what it
    /// has written: its last ack, or until the first one the vclock it subscribed with (rows
    /// sent may die unwritten with the replica, and old xlogs are removed by this). A 1.6
    /// replica never acks: the last row sent is all there is.
    Progress { relay: u64, position: Vclock },
    /// The thread has ended; why, if not asked to.
    Exited { relay: u64, error: Option<String> },
}

/// A decoded SUBSCRIBE body.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscribeRequest {
    pub cluster_uuid: String,
    pub instance_uuid: String,
    pub vclock: Vclock,
    /// IPROTO_SERVER_VERSION (0x06), sent by 1.7+ replicas.
    pub version: Option<u32>,
}

/// `major.minor.patch` as IPROTO_SERVER_VERSION packs it.
pub fn version_id(major: u32, minor: u32, patch: u32) -> u32 {
    (major << 16) | (minor << 8) | patch
}
