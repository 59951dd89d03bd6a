//! TX's side of replication: the relays and appliers of this server, the JOIN and SUBSCRIBE
//! requests that start relays, `replication_source` that starts appliers, what their
//! threads report, and the rows TX applies for them.
//!
//! Owned by the TX thread.
//!
//! ```text
//!  master: JOIN ─▶ checks, read view ─▶ relay streams it ─▶ JoinSent ─▶ INSERT _cluster
//!          ─▶ written ─▶ JoinDone (final OK) ─▶ SubscribeRequest ─▶ checks ─▶ relay follows
//!  replica: box.cfg (no data, a source) ─▶ applier JOINs ─▶ JoinRows applied as a snapshot
//!          ─▶ Joined: snapshot written, WAL started ─▶ WantSubscribe ─▶ Rows applied with their
//!          origin's id and LSN ─▶ the _cluster row naming us: box.cfg returns
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crossbeam::channel::{Receiver, Sender};
use mio::Token;

use crate::r#box::db::{Request, RequestKind};
use crate::r#box::mp::{Mp, s, u};
use crate::r#box::schema::{ADMIN, CLUSTER_ID};
use crate::r#box::txn::Txn;
use crate::r#box::user;
use crate::constants::{REPLICATION_CHANNEL_CAPACITY, VCLOCK_MAX};
use crate::error::{BoxError, ErrCode};
use crate::fiber::FiberId;
use crate::proto::iproto_constants::request_type;
use crate::proto::xrow;
use crate::tx::{Tx, TxMsg};
use crate::wal::journal::Waiter;
use crate::wal::vclock::Vclock;
use crate::wal::writer::WalMsg;

use super::applier::display_uri;
use super::codec;
use super::{
    ApplierCmd, ApplierConfig, ApplierMsg, ApplierState, RelayCmd, RelayConfig, RelayMsg,
    RelayStart, Rows, SubscribeRequest, SubscribeStart,
};

// {{{ state

/// A relay as TX sees it.
struct Relay {
    commands: Sender<RelayCmd>,
    /// The replica's instance UUID.
    uuid: String,
    peer: String,
    /// The user the replica logged in as (SUBSCRIBE after JOIN is checked against it).
    uid: u32,
    /// The replica's id, once it subscribed (the relay follows the xlogs from then on).
    replica_id: Option<u32>,
    /// A JOIN's read-view vclock: the final OK carries it.
    join_vclock: Option<Vclock>,
    /// How far the replica is known to be (see [`RelayMsg::Progress`]).
    position: Vclock,
    last_seen: Instant,
    /// Keeps a relay's wake channel open where no WAL thread pokes it.
    _wake_keepalive: Option<Sender<()>>,
}

/// An applier as TX sees it.
struct Applier {
    /// As configured, password included (never logged or shown).
    uri: String,
    commands: Sender<ApplierCmd>,
    state: ApplierState,
    message: Option<String>,
    master_id: u32,
    /// When anything last came from the master.
    last_seen: Instant,
    /// Seconds between the last row's timestamp and its arrival.
    lag: f64,
    /// The thread is running.
    running: bool,
}

impl Applier {
    /// Running and not stopped by an error: TX takes its rows (a stopped applier may not
    /// have exited yet).
    fn is_live(&self) -> bool {
        self.running && self.state != ApplierState::Stopped
    }
}

/// Starting a new cluster here, when an election chooses this server.
pub type LocalStart = Box<dyn FnOnce(&Tx) -> Result<(), BoxError>>;

/// A new server of a mesh choosing whom to join: every peer is probed; the first that has
/// data is joined, else the server with the smallest UUID (this one included) starts the
/// cluster and the others join it (each with the same answers picks the same one).
struct Election {
    /// The peers, in the order of `replication_source`.
    peers: Vec<String>,
    answers: BTreeMap<String, Result<super::probe::Probe, String>>,
    own_uuid: String,
    local: Option<LocalStart>,
}

/// A new replica's first `box.cfg{}`, waiting until it is joined and registered.
#[derive(Default)]
pub struct Bootstrap {
    election: Option<Election>,
    applier: u64,
    waiter: Option<FiberId>,
    /// The master started the JOIN: the connect deadline no longer applies (a big JOIN
    /// takes its time).
    connected: bool,
    /// `replication_connect_timeout` from the start.
    connect_deadline: Option<Instant>,
    joined: bool,
    error: Option<BoxError>,
    done: bool,
}

/// The relays and appliers of this server.
#[derive(Default)]
pub struct Replication {
    next_id: u64,
    relays: HashMap<u64, Relay>,
    appliers: BTreeMap<u64, Applier>,
    bootstrap: Option<Bootstrap>,
    /// Where each registered replica was last seen (kept after its relay ends, for the
    /// removal of old xlogs; since this process started).
    replica_vclocks: BTreeMap<u32, Vclock>,
    /// Replicas whose relay ended, why (None: asked to) and when: `box.info` shows them
    /// stopped until they subscribe again.
    gone_downstreams: BTreeMap<u32, (Option<String>, Instant)>,
    /// Old xlogs have been removed by replicas' positions since the start (see
    /// `cleanup_paused`).
    cleanup_resumed: bool,
}

impl Replication {
    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Whether a new replica's bootstrap is still under way (`box.info.status`).
    pub fn is_bootstrapping(&self) -> bool {
        self.bootstrap.as_ref().is_some_and(|b| !b.done)
    }
}

// }}}

// {{{ master: JOIN and SUBSCRIBE

/// A JOIN or SUBSCRIBE taken off an iproto connection.
#[derive(Debug, PartialEq, Eq)]
pub struct ReplicationRequest {
    pub kind: u32,
    pub sync: u64,
    pub body: Vec<u8>,
    /// The connection sent VOTE first: a Tarantool 1.10 or later.
    pub voted: bool,
}

/// Serve a JOIN or SUBSCRIBE of connection `token` (user `uid`): an error reply keeps the
/// connection; an accepted request hands the socket to a new relay thread.
pub fn on_request(tx: &Tx, token: Token, uid: u32, request: ReplicationRequest) {
    let accepted = match request.kind {
        request_type::JOIN => prepare_join(tx, uid, &request),
        _ => codec::decode_subscribe(&request.body)
            .and_then(|subscribe| prepare_subscribe(tx, uid, request.sync, &subscribe))
            .map(|(start, uuid)| (RelayStart::Subscribe(start), uuid)),
    };
    let (start, uuid) = match accepted {
        Ok(accepted) => accepted,
        Err(err) => {
            log::error!("{}", err.message);
            crate::lua::iproto::reply_now(tx, token, |out, schema_id| {
                xrow::write_error_reply(out, request.sync, schema_id, &err)
            });
            return;
        }
    };
    let Some((stream, peer)) = crate::lua::iproto::detach(tx, token) else {
        return;
    };
    if let Err(err) = start_relay(tx, stream, peer, uid, uuid, start) {
        log::error!("can't start a relay: {}", err.message);
    }
}

/// JOIN: the rights of the manual, a writable master; the read view to send.
fn prepare_join(
    tx: &Tx,
    uid: u32,
    request: &ReplicationRequest,
) -> Result<(RelayStart, String), BoxError> {
    let uuid = codec::decode_join(&request.body)?;
    if request.voted {
        // It would fail on the first system row of a 1.6 schema, with a puzzling message.
        return Err(BoxError::new(
            ErrCode::UNSUPPORTED,
            &[&"Tarantula", &"replicas of Tarantool 1.10 or later"],
        ));
    }
    let view = crate::process::with_db(tx, |db| {
        db.access.check_universe(uid, user::READ)?;
        db.access
            .check_space(uid, CLUSTER_ID, ADMIN, "_cluster", user::WRITE)?;
        if db.read_only {
            return Err(BoxError::new(ErrCode::READONLY, &[]));
        }
        if uuid == db.instance_uuid {
            return Err(BoxError::new(ErrCode::CONNECTION_TO_SELF, &[]));
        }
        Ok(crate::wal::snapshot::read_view(db))
    })?;
    let start = RelayStart::Join {
        sync: request.sync,
        view,
    };
    Ok((start, uuid))
}

/// SUBSCRIBE: read access, our cluster, a registered replica, a WAL to read.
fn prepare_subscribe(
    tx: &Tx,
    uid: u32,
    sync: u64,
    request: &SubscribeRequest,
) -> Result<(SubscribeStart, String), BoxError> {
    let replica_id = crate::process::with_db(tx, |db| {
        db.access.check_universe(uid, user::READ)?;
        let ours = db.cluster_uuid.clone().unwrap_or_default();
        if request.cluster_uuid != ours {
            return Err(BoxError::new(
                ErrCode::CLUSTER_ID_MISMATCH,
                &[&request.cluster_uuid, &ours],
            ));
        }
        if request.instance_uuid == db.instance_uuid {
            return Err(BoxError::new(ErrCode::CONNECTION_TO_SELF, &[]));
        }
        db.cluster
            .iter()
            .find(|(_, uuid)| **uuid == request.instance_uuid)
            .map(|(id, _)| *id)
            .ok_or_else(|| BoxError::new(ErrCode::UNKNOWN_SERVER, &[&request.instance_uuid]))
    })?;
    if !tx.journal.borrow().is_async() {
        return Err(BoxError::new(
            ErrCode::UNSUPPORTED,
            &[
                &"wal_mode = 'none'",
                &"replication (there are no xlogs to send)",
            ],
        ));
    }
    let start = SubscribeStart {
        sync,
        replica_id,
        vclock: request.vclock.clone(),
        master_vclock: tx.journal.borrow().vclock.clone(),
        heartbeats: request.version.is_some(),
    };
    Ok((start, request.instance_uuid.clone()))
}

/// A channel the WAL thread pokes after each write.
fn watch_wal(tx: &Tx) -> (Receiver<()>, Option<Sender<()>>) {
    let (sender, receiver) = crossbeam::channel::bounded(1);
    let keep = sender.clone();
    if tx.journal.borrow().inject(WalMsg::Watch(sender)) {
        (receiver, None)
    } else {
        (receiver, Some(keep))
    }
}

fn start_relay(
    tx: &Tx,
    stream: std::net::TcpStream,
    peer: String,
    uid: u32,
    uuid: String,
    start: RelayStart,
) -> Result<(), BoxError> {
    let (master_id, join_vclock) = {
        let db = tx.db.borrow();
        let master_id = db.as_ref().map_or(0, |db| db.server_id);
        let join_vclock =
            matches!(start, RelayStart::Join { .. }).then(|| tx.journal.borrow().committed());
        (master_id, join_vclock)
    };
    match &start {
        RelayStart::Join { .. } => log::info!("joining replica {uuid} at {peer}"),
        RelayStart::Subscribe(start) => log_subscribed(tx, &uuid, &peer, start),
    }
    let (wake, keepalive) = watch_wal(tx);
    let (commands, inbox) = crossbeam::channel::bounded(REPLICATION_CHANNEL_CAPACITY);
    let (replica_id, position) = match &start {
        RelayStart::Subscribe(start) => (Some(start.replica_id), start.vclock.clone()),
        RelayStart::Join { .. } => (None, Vclock::new()),
    };
    let id = tx.replication.borrow_mut().take_id();
    if let Some(replica_id) = replica_id {
        tx.replication
            .borrow_mut()
            .replica_vclocks
            .insert(replica_id, position.clone());
    }
    let config = RelayConfig {
        id,
        stream,
        peer: peer.clone(),
        master_id,
        wal_dir: tx.cfg.borrow().wal_dir().into(),
        timeout: replication_timeout(tx),
        wake,
        start,
    };
    let to_tx = tx.sender.clone();
    super::relay::spawn(
        config,
        move |msg| to_tx.send(TxMsg::Relay(Box::new(msg))).is_ok(),
        inbox,
    )
    .map_err(|err| BoxError::system("can't start the relay thread", &err))?;
    tx.replication.borrow_mut().relays.insert(
        id,
        Relay {
            commands,
            uuid,
            peer,
            uid,
            replica_id,
            join_vclock,
            position,
            last_seen: Instant::now(),
            _wake_keepalive: keepalive,
        },
    );
    Ok(())
}

fn log_subscribed(tx: &Tx, uuid: &str, peer: &str, start: &SubscribeStart) {
    log::info!("subscribed replica {uuid} at {peer}");
    log::info!(
        "remote vclock {} local vclock {}",
        start.vclock.to_text(),
        tx.journal.borrow().vclock.to_text()
    );
}

fn replication_timeout(tx: &Tx) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(tx.cfg.borrow().replication_timeout())
        .unwrap_or(std::time::Duration::from_secs(1))
}

/// `replication_connect_timeout`.
fn connect_timeout(tx: &Tx) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(tx.cfg.borrow().replication_connect_timeout())
        .unwrap_or(std::time::Duration::from_secs(30))
}

/// What a relay thread says.
pub fn on_relay_msg(tx: &Tx, msg: RelayMsg) {
    match msg {
        RelayMsg::JoinSent { relay } => register_replica(tx, relay),
        RelayMsg::SubscribeRequest {
            relay,
            sync,
            request,
        } => subscribe_after_join(tx, relay, sync, &request),
        RelayMsg::Progress { relay, position } => {
            let mut replication = tx.replication.borrow_mut();
            let Some(entry) = replication.relays.get_mut(&relay) else {
                return;
            };
            entry.last_seen = Instant::now();
            entry.position = position.clone();
            if let Some(id) = entry.replica_id {
                replication.replica_vclocks.insert(id, position);
            }
        }
        RelayMsg::Exited { relay, error } => {
            let mut replication = tx.replication.borrow_mut();
            let Some(entry) = replication.relays.remove(&relay) else {
                return;
            };
            if let Some(id) = entry.replica_id {
                let gone = (error.clone(), Instant::now());
                replication.gone_downstreams.insert(id, gone);
            }
            match error {
                Some(error) => log::error!(
                    "relay to replica {} at {} stopped: {error}",
                    entry.uuid,
                    entry.peer
                ),
                None => log::info!("relay to replica {} at {} stopped", entry.uuid, entry.peer),
            }
        }
    }
}

fn send_relay(tx: &Tx, relay: u64, cmd: RelayCmd) {
    if let Some(entry) = tx.replication.borrow().relays.get(&relay) {
        let _ = entry.commands.send(cmd);
    }
}

/// The JOIN's rows are out: give the replica the smallest free id in `_cluster` (an
/// ordinary, replicated write); the final OK goes once it is written.
fn register_replica(tx: &Tx, relay: u64) {
    log::info!("initial data sent.");
    let Some(uuid) = tx
        .replication
        .borrow()
        .relays
        .get(&relay)
        .map(|entry| entry.uuid.clone())
    else {
        return;
    };
    match insert_cluster_row(tx, relay, &uuid) {
        Ok(true) => {}
        Ok(false) => on_registered(tx, relay, Ok(())),
        Err(err) => on_registered(tx, relay, Err(err)),
    }
}

/// Insert `[id, uuid]` into `_cluster` unless the UUID is there; true while the write waits.
fn insert_cluster_row(tx: &Tx, relay: u64, uuid: &str) -> Result<bool, BoxError> {
    let txn = crate::process::with_db(tx, |db| {
        if db.cluster.values().any(|known| known == uuid) {
            return Ok(None);
        }
        let id = (1..VCLOCK_MAX as u32)
            .find(|id| !db.cluster.contains_key(id))
            .ok_or_else(|| BoxError::new(ErrCode::REPLICA_MAX, &[&(VCLOCK_MAX - 1)]))?;
        let tuple = Mp::Array(vec![u(u64::from(id)), s(uuid)]).to_vec();
        let mut request = Request::new(RequestKind::Insert, CLUSTER_ID);
        request.tuple = &tuple;
        let mut txn = Txn::autocommit();
        db.execute(&mut txn, &request)?;
        log::info!("assigned id {id} to replica {uuid}");
        Ok(Some(txn))
    })?;
    Ok(match txn {
        Some(txn) => tx.journal.borrow_mut().commit(txn, Waiter::Relay(relay)),
        None => false,
    })
}

/// A joined replica subscribes from the read view's vclock, maybe on a new connection
/// after loading the view: the xlogs after it stay until then.
fn keep_for_new_replica(tx: &Tx, relay: u64, vclock: &Vclock) {
    let uuid = match tx.replication.borrow().relays.get(&relay) {
        Some(entry) => entry.uuid.clone(),
        None => return,
    };
    let id = tx.db.borrow().as_ref().and_then(|db| {
        db.cluster
            .iter()
            .find(|(_, known)| **known == uuid)
            .map(|(id, _)| *id)
    });
    if let Some(id) = id {
        let mut replication = tx.replication.borrow_mut();
        replication.replica_vclocks.insert(id, vclock.clone());
    }
}

/// The `_cluster` row of a JOIN is written (or failed): finish the JOIN.
pub fn on_registered(tx: &Tx, relay: u64, result: Result<(), BoxError>) {
    let vclock = tx
        .replication
        .borrow()
        .relays
        .get(&relay)
        .and_then(|entry| entry.join_vclock.clone());
    let Some(vclock) = vclock else {
        return;
    };
    let cmd = match result {
        Ok(()) => {
            log::info!("final data sent.");
            keep_for_new_replica(tx, relay, &vclock);
            RelayCmd::JoinDone { vclock }
        }
        Err(err) => RelayCmd::JoinFailed(err),
    };
    send_relay(tx, relay, cmd);
}

fn subscribe_after_join(tx: &Tx, relay: u64, sync: u64, request: &SubscribeRequest) {
    let Some((uid, peer)) = tx
        .replication
        .borrow()
        .relays
        .get(&relay)
        .map(|entry| (entry.uid, entry.peer.clone()))
    else {
        return;
    };
    let result = prepare_subscribe(tx, uid, sync, request);
    if let Ok((start, uuid)) = &result {
        log_subscribed(tx, uuid, &peer, start);
        if let Some(entry) = tx.replication.borrow_mut().relays.get_mut(&relay) {
            entry.replica_id = Some(start.replica_id);
            entry.position = start.vclock.clone();
        }
        tx.replication
            .borrow_mut()
            .replica_vclocks
            .insert(start.replica_id, start.vclock.clone());
    }
    send_relay(
        tx,
        relay,
        RelayCmd::Subscribe(result.map(|(start, _)| start)),
    );
}

// }}}

// {{{ replica: appliers

/// Does this server start as a replica: its first source is not its own `listen`?
pub fn is_replica_source(source: &str, listen: Option<&str>) -> bool {
    let Some(listen) = listen else {
        return true;
    };
    let port = |uri: &str| match crate::cfg::parse_uri(uri).ok()?.address {
        crate::cfg::UriAddress::Tcp { host, service } => Some((service, host)),
        crate::cfg::UriAddress::Unix { path } => Some((path, None)),
    };
    match (port(source), port(listen)) {
        (Some((source_port, source_host)), Some((listen_port, listen_host))) => {
            let local = |host: &Option<String>| {
                host.as_deref().is_none_or(|host| {
                    matches!(host, "localhost" | "127.0.0.1" | "0.0.0.0" | "::" | "::1")
                })
            };
            !(source_port == listen_port
                && (source_host == listen_host || (local(&source_host) && local(&listen_host))))
        }
        _ => source != listen,
    }
}

/// Start joining `source` as a new replica with `instance_uuid`: `box.cfg{}` waits (see
/// [`bootstrap_wait`]).
pub fn start_bootstrap(tx: &Tx, source: &str, instance_uuid: &str) -> Result<(), BoxError> {
    log::info!("bootstrapping replica from {}", display_uri(source));
    let id = start_applier(tx, source, Some(instance_uuid.to_string()))?;
    tx.replication.borrow_mut().bootstrap = Some(Bootstrap {
        applier: id,
        connect_deadline: Some(Instant::now() + connect_timeout(tx)),
        ..Bootstrap::default()
    });
    Ok(())
}

/// A new server with several sources and no data: probe them all, then join one or start
/// the cluster here (`local`).
pub fn start_election(tx: &Tx, peers: Vec<String>, local: LocalStart) -> Result<(), BoxError> {
    log::info!("choosing a bootstrap leader among {} peers", peers.len());
    let deadline = Instant::now() + connect_timeout(tx);
    for peer in &peers {
        let (uri, to_tx) = (peer.clone(), tx.sender.clone());
        std::thread::Builder::new()
            .name(format!("probe/{}", display_uri(peer)))
            .spawn(move || {
                let answer = super::probe::probe_until(&uri, deadline);
                let msg = ApplierMsg::Probed { uri, answer };
                let _ = to_tx.send(TxMsg::Applier(Box::new(msg)));
            })
            .map_err(|err| BoxError::system("can't start a probe thread", &err))?;
    }
    tx.replication.borrow_mut().bootstrap = Some(Bootstrap {
        election: Some(Election {
            peers,
            answers: BTreeMap::new(),
            own_uuid: own_instance_uuid(tx),
            local: Some(local),
        }),
        ..Bootstrap::default()
    });
    Ok(())
}

/// The outcome of an election with every answer in.
#[derive(Debug, PartialEq)]
enum Leader {
    /// Join this peer.
    Peer(String),
    /// Start the cluster here.
    Me,
    /// Nobody answered.
    Nobody,
}

/// Choose: the first peer with data, else the smallest UUID among those that answered and
/// this server.
fn choose_leader(
    peers: &[String],
    answers: &BTreeMap<String, Result<super::probe::Probe, String>>,
    own_uuid: &str,
) -> Leader {
    let answered: Vec<(&String, &super::probe::Probe)> = peers
        .iter()
        .filter_map(|peer| match answers.get(peer) {
            Some(Ok(probe)) => Some((peer, probe)),
            _ => None,
        })
        .collect();
    if let Some((peer, _)) = answered.iter().find(|(_, probe)| probe.booted) {
        return Leader::Peer((*peer).clone());
    }
    if answered.is_empty() {
        return Leader::Nobody;
    }
    match answered.iter().min_by(|a, b| a.1.uuid.cmp(&b.1.uuid)) {
        Some((peer, probe)) if probe.uuid.as_str() < own_uuid => Leader::Peer((*peer).clone()),
        _ => Leader::Me,
    }
}

fn on_probed(tx: &Tx, uri: String, answer: Result<super::probe::Probe, String>) {
    let decided = {
        let mut replication = tx.replication.borrow_mut();
        let Some(election) = replication
            .bootstrap
            .as_mut()
            .and_then(|bootstrap| bootstrap.election.as_mut())
        else {
            return;
        };
        if let Err(err) = &answer {
            log::warn!("no answer from {}: {err}", display_uri(&uri));
        }
        // A peer with data ends the election at once: there is a cluster to join.
        let booted = matches!(&answer, Ok(probe) if probe.booted);
        election.answers.insert(uri, answer);
        if election.answers.len() < election.peers.len() && !booted {
            return;
        }
        let leader = choose_leader(&election.peers, &election.answers, &election.own_uuid);
        (leader, election.local.take())
    };
    finish_election(tx, decided);
}

fn finish_election(tx: &Tx, decided: (Leader, Option<LocalStart>)) {
    let result = match decided {
        (Leader::Peer(uri), _) => {
            log::info!("bootstrapping replica from {}", display_uri(&uri));
            start_applier(tx, &uri, Some(own_instance_uuid(tx))).map(|id| {
                if let Some(bootstrap) = tx.replication.borrow_mut().bootstrap.as_mut() {
                    bootstrap.election = None;
                    bootstrap.applier = id;
                }
            })
        }
        (Leader::Me, Some(local)) => {
            log::info!("this server is the bootstrap leader");
            local(tx).map(|()| {
                if let Some(bootstrap) = tx.replication.borrow_mut().bootstrap.as_mut() {
                    bootstrap.election = None;
                    bootstrap.joined = true;
                    bootstrap.done = true;
                }
            })
        }
        (Leader::Me, None) => Err(BoxError::with_message(ErrCode::UNKNOWN, "no local start")),
        (Leader::Nobody, _) => Err(BoxError::cfg(
            "replication_source",
            "can't connect to any master in replication_connect_timeout",
        )),
    };
    if let Err(err) = result
        && let Some(bootstrap) = tx.replication.borrow_mut().bootstrap.as_mut()
    {
        bootstrap.election = None;
        bootstrap.error = Some(err);
    }
    wake_bootstrap(tx);
}

fn own_instance_uuid(tx: &Tx) -> String {
    tx.db
        .borrow()
        .as_ref()
        .map(|db| db.instance_uuid.clone())
        .unwrap_or_default()
}

/// `box.cfg{}` of a new replica: Ok(Some(seconds)) when it must wait more, at most that
/// long (the caller parks the fiber); Ok(None) when done.
pub fn bootstrap_wait(tx: &Tx, fiber: FiberId) -> Result<Option<f64>, BoxError> {
    let mut guard = tx.replication.borrow_mut();
    let replication = &mut *guard;
    let Some(bootstrap) = replication.bootstrap.as_mut() else {
        return Ok(None);
    };
    if let Some(err) = bootstrap.error.take() {
        let applier = bootstrap.applier;
        replication.bootstrap = None;
        if let Some(entry) = replication.appliers.remove(&applier) {
            let _ = entry.commands.send(ApplierCmd::Stop);
        }
        return Err(err);
    }
    if bootstrap.done {
        return Ok(None);
    }
    let remaining = match bootstrap.connect_deadline.filter(|_| !bootstrap.connected) {
        Some(deadline) if Instant::now() >= deadline => {
            let (uri, last) = replication
                .appliers
                .get(&bootstrap.applier)
                .map(|entry| (display_uri(&entry.uri), entry.message.clone()))
                .unwrap_or_default();
            let last = last
                .map(|message| format!(": {message}"))
                .unwrap_or_default();
            bootstrap.error = Some(BoxError::cfg(
                "replication_source",
                &format!("can't join the master {uri} in replication_connect_timeout{last}"),
            ));
            return Ok(Some(0.0));
        }
        Some(deadline) => deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64(),
        None => f64::INFINITY,
    };
    bootstrap.waiter = Some(fiber);
    Ok(Some(remaining))
}

fn wake_bootstrap(tx: &Tx) {
    let waiter = tx
        .replication
        .borrow_mut()
        .bootstrap
        .as_mut()
        .and_then(|bootstrap| bootstrap.waiter.take());
    if let Some(fiber) = waiter {
        tx.sched
            .borrow_mut()
            .wakeup(fiber, crate::fiber::WakeReason::Woken);
    }
}

fn fail_bootstrap(tx: &Tx, applier: u64, err: BoxError) {
    let failed = match tx.replication.borrow_mut().bootstrap.as_mut() {
        Some(bootstrap) if bootstrap.applier == applier && !bootstrap.done => {
            bootstrap.error = Some(err);
            true
        }
        _ => false,
    };
    if failed {
        wake_bootstrap(tx);
    }
}

fn start_applier(tx: &Tx, uri: &str, join_as: Option<String>) -> Result<u64, BoxError> {
    let (commands, inbox) = crossbeam::channel::bounded(REPLICATION_CHANNEL_CAPACITY);
    let id = tx.replication.borrow_mut().take_id();
    let config = ApplierConfig {
        id,
        uri: uri.to_string(),
        join_as,
        timeout: replication_timeout(tx),
        connect_timeout: connect_timeout(tx),
    };
    let to_tx = tx.sender.clone();
    super::applier::spawn(
        config,
        move |msg| to_tx.send(TxMsg::Applier(Box::new(msg))).is_ok(),
        inbox,
    )
    .map_err(|err| BoxError::system("can't start the applier thread", &err))?;
    tx.replication.borrow_mut().appliers.insert(
        id,
        Applier {
            uri: uri.to_string(),
            commands,
            state: ApplierState::Connect,
            message: None,
            master_id: 0,
            last_seen: Instant::now(),
            lag: 0.0,
            running: true,
        },
    );
    Ok(id)
}

/// `replication_source` is now `sources`: stop appliers of sources no longer listed,
/// restart stopped ones, start new ones; running appliers of listed sources keep running.
pub fn configure(tx: &Tx, sources: &[String]) -> Result<(), BoxError> {
    // A server listed among its own sources (a mesh where every server has one list)
    // does not replicate from itself.
    let listen = own_listen(tx);
    let sources: Vec<String> = sources
        .iter()
        .filter(|source| is_replica_source(source, listen.as_deref()))
        .cloned()
        .collect();
    let mut stale = Vec::new();
    let mut keep = Vec::new();
    for (id, applier) in &tx.replication.borrow().appliers {
        if sources.contains(&applier.uri) && applier.is_live() {
            keep.push(applier.uri.clone());
        } else {
            stale.push(*id);
        }
    }
    for id in stale {
        if let Some(applier) = tx.replication.borrow_mut().appliers.remove(&id)
            && applier.running
        {
            let _ = applier.commands.send(ApplierCmd::Stop);
        }
    }
    if !sources.is_empty() {
        log::info!("connecting to {} replicas", sources.len());
    }
    for source in &sources {
        if !keep.contains(source) {
            start_applier(tx, source, None)?;
        }
    }
    Ok(())
}

/// The address this server's binary protocol is bound to (the port `listen = 0` got), or
/// `listen` as configured.
pub fn own_listen(tx: &Tx) -> Option<String> {
    let bound = tx
        .iproto_listener
        .get()
        .and_then(|token| tx.net.borrow().listener_name(token));
    bound.or_else(|| tx.cfg.borrow().listen().map(str::to_string))
}

/// Stop every relay and applier (the server is stopping).
pub fn stop_all(tx: &Tx) {
    let replication = tx.replication.borrow();
    for relay in replication.relays.values() {
        let _ = relay.commands.try_send(RelayCmd::Stop);
    }
    for applier in replication.appliers.values() {
        let _ = applier.commands.try_send(ApplierCmd::Stop);
    }
}

fn send_applier(tx: &Tx, applier: u64, cmd: ApplierCmd) {
    if let Some(entry) = tx.replication.borrow().appliers.get(&applier) {
        let _ = entry.commands.send(cmd);
    }
}

/// What replicated rows need of Lua (kept out of this module, which knows no Lua).
pub struct LuaHooks<'a> {
    /// Spaces changed definition: `box.space` follows.
    pub on_schema: &'a dyn Fn(),
    /// Run the `on_replace` triggers of the spaces a row's statements touched; an error
    /// refuses the row, as a local change would be refused.
    pub on_replace: &'a dyn Fn(&Txn) -> Result<(), BoxError>,
}

/// What an applier thread says.
pub fn on_applier_msg(tx: &Tx, msg: ApplierMsg, hooks: &LuaHooks<'_>) {
    match msg {
        ApplierMsg::State {
            applier,
            state,
            message,
        } => on_state(tx, applier, state, message),
        ApplierMsg::Greeted { applier, .. } => {
            if let Some(entry) = tx.replication.borrow_mut().appliers.get_mut(&applier) {
                entry.last_seen = Instant::now();
            }
        }
        ApplierMsg::JoinRows { applier, rows } => on_join_rows(tx, applier, &rows),
        ApplierMsg::Joined { applier, vclock } => on_joined(tx, applier, vclock),
        ApplierMsg::WantSubscribe { applier } => on_want_subscribe(tx, applier),
        ApplierMsg::Subscribed {
            applier, master_id, ..
        } => {
            if let Some(entry) = tx.replication.borrow_mut().appliers.get_mut(&applier) {
                entry.master_id = master_id;
                entry.last_seen = Instant::now();
            }
        }
        ApplierMsg::Rows {
            applier,
            rows,
            received,
        } => on_rows(tx, applier, &rows, received, hooks),
        ApplierMsg::Heartbeat { applier, .. } => {
            let vclock = tx.journal.borrow().committed();
            if let Some(entry) = tx.replication.borrow_mut().appliers.get_mut(&applier) {
                entry.last_seen = Instant::now();
                // Answered with what is written, as Tarantool does: an ack dropped while
                // the applier was behind (the channel was full) is made good within a
                // heartbeat period, so the master learns where this replica stopped.
                if entry.state == ApplierState::Follow {
                    let _ = entry.commands.try_send(ApplierCmd::Ack(vclock));
                }
            }
        }
        ApplierMsg::Probed { uri, answer } => on_probed(tx, uri, answer),
        ApplierMsg::Exited { applier } => {
            if let Some(entry) = tx.replication.borrow_mut().appliers.get_mut(&applier) {
                entry.running = false;
                if entry.state != ApplierState::Stopped {
                    entry.state = ApplierState::Off;
                }
            }
        }
    }
}

fn on_state(tx: &Tx, applier: u64, state: ApplierState, message: Option<String>) {
    if let Some(entry) = tx.replication.borrow_mut().appliers.get_mut(&applier) {
        entry.state = state;
        entry.message = message.clone();
    }
    if state == ApplierState::Bootstrap {
        restart_join(tx, applier);
    }
    if state == ApplierState::Stopped {
        let message = message.unwrap_or_else(|| "replication stopped".to_string());
        fail_bootstrap(
            tx,
            applier,
            BoxError::with_message(ErrCode::UNKNOWN, message),
        );
    }
}

/// A JOIN (re)starts: whatever an interrupted attempt loaded is dropped.
fn restart_join(tx: &Tx, applier: u64) {
    let joining = tx
        .replication
        .borrow()
        .bootstrap
        .as_ref()
        .is_some_and(|bootstrap| bootstrap.applier == applier && !bootstrap.joined);
    if !joining {
        return;
    }
    let mut db = tx.db.borrow_mut();
    if let Some(current) = db.as_ref() {
        let mut fresh = crate::r#box::db::Db::new(&current.instance_uuid);
        fresh.limits = current.limits;
        fresh.read_only = current.read_only;
        *db = Some(fresh);
    }
}

/// Stop an applier whose rows TX refused, with the error.
fn fail_applier(tx: &Tx, applier: u64, err: BoxError) {
    log::error!("can't apply a replicated row: {}", err.message);
    if let Some(entry) = tx.replication.borrow_mut().appliers.get_mut(&applier) {
        entry.state = ApplierState::Stopped;
        entry.message = Some(err.message.clone());
    }
    fail_bootstrap(tx, applier, err.clone());
    send_applier(tx, applier, ApplierCmd::Fail(err));
}

/// Whether `applier` is one TX still takes rows from (not stopped, not replaced).
fn is_current(tx: &Tx, applier: u64) -> bool {
    tx.replication
        .borrow()
        .appliers
        .get(&applier)
        .is_some_and(Applier::is_live)
}

/// A WAL write failed and rolled back replicated rows too: every applier starts over from
/// what is committed now (the rows it sent after the lost ones must not be applied over a
/// gap).
pub fn on_wal_failed(tx: &Tx) {
    let running: Vec<(u64, String)> = tx
        .replication
        .borrow()
        .appliers
        .iter()
        .filter(|(_, applier)| applier.is_live())
        .map(|(id, applier)| (*id, applier.uri.clone()))
        .collect();
    for (id, uri) in running {
        if let Some(applier) = tx.replication.borrow_mut().appliers.remove(&id) {
            let _ = applier.commands.send(ApplierCmd::Stop);
        }
        log::warn!(
            "a WAL write failed: replication from {} starts over",
            display_uri(&uri)
        );
        if let Err(err) = start_applier(tx, &uri, None) {
            log::error!("can't restart replication: {}", err.message);
        }
    }
}

/// Rows of a JOIN: loaded as a snapshot's (no WAL yet).
fn on_join_rows(tx: &Tx, applier: u64, rows: &Rows) {
    if !is_current(tx, applier) {
        return;
    }
    if let Some(bootstrap) = tx.replication.borrow_mut().bootstrap.as_mut() {
        // The master serves the JOIN: however long it takes, box.cfg waits for it.
        bootstrap.connected = true;
    }
    let loaded = crate::process::with_db(tx, |db| {
        as_replica(db, |db| {
            rows.iter()
                .try_for_each(|row| crate::wal::snapshot::load_row(db, row))
        })
    });
    match loaded {
        Ok(()) => on_batch_written(tx, applier),
        Err(err) => fail_applier(tx, applier, err),
    }
}

/// The JOIN is complete at `vclock`: write our first snapshot and start the WAL there.
fn on_joined(tx: &Tx, applier: u64, vclock: Vclock) {
    if let Err(err) = finish_join(tx, vclock) {
        fail_applier(tx, applier, err);
        return;
    }
    if let Some(bootstrap) = tx.replication.borrow_mut().bootstrap.as_mut() {
        bootstrap.joined = true;
    }
}

fn finish_join(tx: &Tx, vclock: Vclock) -> Result<(), BoxError> {
    let options = crate::wal::recovery::Options::from_cfg(&tx.cfg.borrow());
    let (uuid, view) = crate::process::with_db(tx, |db| {
        db.changed_spaces.clear();
        Ok((
            db.instance_uuid.clone(),
            crate::wal::snapshot::read_view(db),
        ))
    })?;
    {
        let mut journal = tx.journal.borrow_mut();
        journal.start_at(vclock.clone());
        journal.server_id = 0;
    }
    if options.wal_mode != crate::cfg::WalMode::None {
        crate::wal::snapshot::write_now(&options.snap_dir, &uuid, &vclock, view)?;
    }
    crate::wal::recovery::start_wal(tx, &options, &uuid, vclock, 0)
}

fn on_want_subscribe(tx: &Tx, applier: u64) {
    let ids = tx.db.borrow().as_ref().map(|db| {
        (
            db.cluster_uuid.clone().unwrap_or_default(),
            db.instance_uuid.clone(),
        )
    });
    let cmd = match ids {
        Some((cluster_uuid, instance_uuid)) => ApplierCmd::Subscribe {
            cluster_uuid,
            instance_uuid,
            vclock: tx.journal.borrow().committed(),
        },
        None => ApplierCmd::Stop,
    };
    send_applier(tx, applier, cmd);
}

/// Rows of a subscription: each applied with its origin's id and LSN unless applied already.
fn on_rows(tx: &Tx, applier: u64, rows: &Rows, received: f64, hooks: &LuaHooks<'_>) {
    if !is_current(tx, applier) {
        // An applier stopped or replaced since: its rows are not ours to apply.
        return;
    }
    tx.journal.borrow_mut().unmark();
    let mut newest = 0.0f64;
    for row in rows.iter() {
        match apply_row(tx, row, hooks.on_replace) {
            Ok(timestamp) => newest = newest.max(timestamp),
            Err(err) => {
                fail_applier(tx, applier, err);
                break;
            }
        }
    }
    if let Some(entry) = tx.replication.borrow_mut().appliers.get_mut(&applier) {
        entry.last_seen = Instant::now();
        if newest > 0.0 {
            entry.lag = (received - newest).max(0.0);
        }
    }
    // Replicated DDL: box.space follows (nothing happens when no space changed).
    (hooks.on_schema)();
    learn_server_id(tx);
    // The applier may hand over another batch once this one is written.
    if !tx.journal.borrow_mut().claim(Waiter::Applier(applier)) {
        on_batch_written(tx, applier);
    }
}

/// A batch of an applier's rows is written (or needed no write): it may send another.
pub fn on_batch_written(tx: &Tx, applier: u64) {
    send_applier(tx, applier, ApplierCmd::Applied);
}

/// Apply one replicated row; returns its timestamp.
fn apply_row(
    tx: &Tx,
    row: &[u8],
    on_replace: &dyn Fn(&Txn) -> Result<(), BoxError>,
) -> Result<f64, BoxError> {
    let (header, body) = xrow::decode_header(row)?;
    let origin = header.server_id;
    let lsn = i64::try_from(header.lsn).unwrap_or(0);
    if origin == 0 || origin as usize >= VCLOCK_MAX || lsn <= 0 {
        return Err(BoxError::with_message(
            ErrCode::INVALID_XLOG,
            format!("replicated row of server {origin} with LSN {}", header.lsn),
        ));
    }
    if lsn <= tx.journal.borrow().committed_lsn(origin) {
        return Ok(header.timestamp);
    }
    let (kind, body, txn) = match execute_row(tx, &header, body, on_replace) {
        Ok(txn) => (header.kind, body, txn),
        Err(err) if err.code == ErrCode::TUPLE_FOUND && skip_conflicts(tx) => {
            // Written as a NOP: the LSN moves on durably, so the skip survives a restart.
            log::warn!("skipping a conflicting row: {}", err.message);
            (request_type::NOP, &[][..], Txn::autocommit())
        }
        Err(err) => return Err(err),
    };
    tx.journal
        .borrow_mut()
        .commit_replicated(txn, (kind, origin, lsn), body, Waiter::Nobody);
    Ok(header.timestamp)
}

fn skip_conflicts(tx: &Tx) -> bool {
    tx.cfg.borrow().get_bool("replication_skip_conflict")
}

/// Execute a replicated row and its space's triggers; an error names the row (origin,
/// LSN, what and where).
fn execute_row(
    tx: &Tx,
    header: &xrow::Header,
    body: &[u8],
    on_replace: &dyn Fn(&Txn) -> Result<(), BoxError>,
) -> Result<Txn, BoxError> {
    if header.kind == request_type::NOP {
        return Ok(Txn::autocommit());
    }
    let decoded = xrow::decode_body(body)?;
    let request = xrow::data_request(header.kind, &decoded, ADMIN)?;
    let mut txn = Txn::autocommit();
    let executed = crate::process::with_db(tx, |db| {
        if !db.cluster.contains_key(&header.server_id) {
            return Err(BoxError::new(ErrCode::UNKNOWN_SERVER, &[&header.server_id]));
        }
        as_replica(db, |db| db.execute(&mut txn, &request)).map(|_| ())
    });
    // Triggers run with the database free: their Lua may read it.
    let refused = executed.err().or_else(|| on_replace(&txn).err());
    let Some(err) = refused else {
        return Ok(txn);
    };
    crate::process::with_db(tx, |db| {
        db.rollback(txn);
        let space = db
            .space(request.space_id)
            .map_or_else(|| request.space_id.to_string(), |s| s.def.name.clone());
        Err(row_error(err, header, &space, &request))
    })
}

/// `err` of a replicated row, its message extended with the row: 1.6 stops replication at
/// it, so the message must tell the operator which row from which server.
fn row_error(
    err: BoxError,
    header: &xrow::Header,
    space: &str,
    request: &crate::r#box::db::Request<'_>,
) -> BoxError {
    let data = if request.tuple.is_empty() {
        request.key
    } else {
        request.tuple
    };
    let shown = rmpv::decode::read_value(&mut &data[..])
        .map_or_else(|_| String::from("?"), |value| value.to_string());
    let what = match header.kind {
        request_type::INSERT => "INSERT",
        request_type::REPLACE => "REPLACE",
        request_type::UPDATE => "UPDATE",
        request_type::DELETE => "DELETE",
        request_type::UPSERT => "UPSERT",
        _ => "row",
    };
    let message = format!(
        "{} (row of server {}, LSN {}: {what} {shown} in space '{space}')",
        err.message, header.server_id, header.lsn
    );
    BoxError::with_message(err.code, message)
}

/// Run `body` as the applier does: rows from masters are applied on a read-only server too.
fn as_replica<R>(
    db: &mut crate::r#box::db::Db,
    body: impl FnOnce(&mut crate::r#box::db::Db) -> Result<R, BoxError>,
) -> Result<R, BoxError> {
    let read_only = std::mem::replace(&mut db.read_only, false);
    let result = body(db);
    db.read_only = read_only;
    result
}

/// A `_cluster` row may have named us: the WAL numbers our rows with our id from now on,
/// and a new replica's `box.cfg{}` returns.
fn learn_server_id(tx: &Tx) {
    let Some(id) = tx.db.borrow().as_ref().map(|db| db.server_id) else {
        return;
    };
    let changed = {
        let mut journal = tx.journal.borrow_mut();
        let changed = journal.server_id != id;
        if changed {
            journal.server_id = id;
            journal.inject(WalMsg::ServerId(id));
        }
        changed
    };
    if id == 0 {
        return;
    }
    let finished = match tx.replication.borrow_mut().bootstrap.as_mut() {
        Some(bootstrap) if bootstrap.joined && !bootstrap.done => {
            bootstrap.done = true;
            true
        }
        _ => false,
    };
    if changed || finished {
        wake_bootstrap(tx);
    }
    if finished {
        // Joined and registered: the other sources of the list are followed too.
        let sources = tx.cfg.borrow().replication_sources();
        if let Err(err) = configure(tx, &sources) {
            log::error!("can't start replication: {}", err.message);
        }
    }
}

/// The WAL wrote up to `vclock`: appliers tell their masters.
pub fn on_written(tx: &Tx, vclock: &Vclock) {
    let replication = tx.replication.borrow();
    for applier in replication.appliers.values() {
        if applier.running && applier.state == ApplierState::Follow {
            let _ = applier.commands.try_send(ApplierCmd::Ack(vclock.clone()));
        }
    }
}

// }}}

// {{{ box.info.replication

/// One upstream as `box.info` shows it.
pub struct UpstreamInfo {
    pub status: &'static str,
    pub idle: f64,
    pub lag: f64,
    pub peer: String,
    pub message: Option<String>,
    pub master_id: u32,
}

/// One downstream as `box.info` shows it.
pub struct DownstreamInfo {
    pub replica_id: u32,
    pub status: &'static str,
    pub idle: f64,
    pub vclock: Vclock,
    /// Why the relay stopped.
    pub message: Option<String>,
}

/// The appliers, by source URI (the first is what 1.6's `box.info.replication` shows).
pub fn upstreams(tx: &Tx) -> Vec<UpstreamInfo> {
    let replication = tx.replication.borrow();
    let mut list: Vec<UpstreamInfo> = replication
        .appliers
        .values()
        .map(|applier| UpstreamInfo {
            status: applier.state.name(),
            idle: applier.last_seen.elapsed().as_secs_f64(),
            lag: applier.lag,
            peer: display_uri(&applier.uri),
            message: applier.message.clone(),
            master_id: applier.master_id,
        })
        .collect();
    list.sort_by(|a, b| a.peer.cmp(&b.peer));
    list
}

/// The relays that follow a registered replica.
pub fn downstreams(tx: &Tx) -> Vec<DownstreamInfo> {
    let replication = tx.replication.borrow();
    let mut list: Vec<DownstreamInfo> = replication
        .relays
        .values()
        .filter_map(|relay| {
            let replica_id = relay.replica_id?;
            Some(DownstreamInfo {
                replica_id,
                status: "follow",
                idle: relay.last_seen.elapsed().as_secs_f64(),
                vclock: relay.position.clone(),
                message: None,
            })
        })
        .collect();
    // A replica whose relay ended shows as stopped (with why) until it subscribes again.
    for (id, (error, since)) in &replication.gone_downstreams {
        if list.iter().any(|live| live.replica_id == *id) {
            continue;
        }
        list.push(DownstreamInfo {
            replica_id: *id,
            status: "stopped",
            idle: since.elapsed().as_secs_f64(),
            vclock: replication
                .replica_vclocks
                .get(id)
                .cloned()
                .unwrap_or_default(),
            message: error.clone(),
        });
    }
    list
}

/// What the removal of old xlogs answers to, for `box.info.gc()`.
pub struct GcState {
    /// Every xlog is kept: some replica has not subscribed since the start.
    pub paused: bool,
    /// What every replica has ([`replicas_keep`]).
    pub keep: Option<Vclock>,
    /// Each registered replica with a known position: `replica <uuid>` and where it is.
    pub consumers: Vec<(String, Vclock)>,
}

pub fn gc_state(tx: &Tx) -> GcState {
    let (paused, keep) = keep_and_pause(tx);
    let db = tx.db.borrow();
    let replication = tx.replication.borrow();
    let consumers = db.as_ref().map_or_else(Vec::new, |db| {
        (replication.replica_vclocks.iter())
            .filter_map(|(id, vclock)| {
                let uuid = db.cluster.get(id)?;
                Some((format!("replica {uuid}"), vclock.clone()))
            })
            .collect()
    });
    GcState {
        paused,
        keep,
        consumers,
    }
}

/// The oldest vclock a replica still needs (old xlogs after it are kept).
pub fn replicas_keep(tx: &Tx) -> Option<Vclock> {
    keep_and_pause(tx).1
}

/// [`replicas_keep`], and whether that is every xlog because the removal is paused.
fn keep_and_pause(tx: &Tx) -> (bool, Option<Vclock>) {
    let (registered, own_id): (Vec<u32>, u32) = tx
        .db
        .borrow()
        .as_ref()
        .map(|db| (db.cluster.keys().copied().collect(), db.server_id))
        .unwrap_or_default();
    if cleanup_paused(tx, &registered, own_id) {
        // Nothing is known of some replica yet: keep every xlog.
        return (true, Some(Vclock::new()));
    }
    let replication = tx.replication.borrow();
    let joining = replication
        .relays
        .values()
        .filter(|relay| relay.replica_id.is_none())
        .filter_map(|relay| relay.join_vclock.as_ref());
    let keep = oldest_needed(&registered, &replication.replica_vclocks, joining);
    (false, keep)
}

/// Whether old xlogs stay whatever the replicas' positions: after a start, where the
/// replicas were is forgotten, so until each registered replica has subscribed again (or
/// `wal_cleanup_delay` has passed since the start) any of them may need any xlog. A
/// read-only server is a replica whose own replicas are rare: it does not wait.
fn cleanup_paused(tx: &Tx, registered: &[u32], own_id: u32) -> bool {
    let (delay, read_only) = {
        let cfg = tx.cfg.borrow();
        (
            cfg.get_number("wal_cleanup_delay").unwrap_or(0.0),
            cfg.read_only(),
        )
    };
    let mut replication = tx.replication.borrow_mut();
    if replication.cleanup_resumed || read_only {
        return false;
    }
    let others: Vec<&u32> = registered.iter().filter(|id| **id != own_id).collect();
    let missing = others
        .iter()
        .filter(|id| !replication.replica_vclocks.contains_key(id))
        .count();
    if missing > 0 && tx.started.elapsed().as_secs_f64() < delay {
        return true;
    }
    replication.cleanup_resumed = true;
    match missing {
        // A server alone never waited: nothing to say.
        _ if others.is_empty() => {}
        0 => log::info!("every replica has subscribed: old xlogs are removed again"),
        _ => log::info!(
            "wal_cleanup_delay passed with {missing} replicas not subscribed: old xlogs are \
             removed again"
        ),
    }
    false
}

/// What every replica has: the component-wise minimum of where each replica that
/// subscribed since start-up was last, if it is still in `_cluster`, and of the read view
/// of each JOIN under way (its replica subscribes from there once it has loaded the view,
/// which may take long enough for snapshots to pass). Component-wise, not by signature: a
/// replica's own rows, or another master's, are not rows of ours it has.
fn oldest_needed<'a>(
    registered: &[u32],
    replica_vclocks: &'a BTreeMap<u32, Vclock>,
    joining: impl Iterator<Item = &'a Vclock>,
) -> Option<Vclock> {
    replica_vclocks
        .iter()
        .filter(|(id, _)| registered.contains(id))
        .map(|(_, vclock)| vclock)
        .chain(joining)
        .fold(None, |met: Option<Vclock>, vclock| {
            Some(met.map_or_else(|| vclock.clone(), |met| met.meet(vclock)))
        })
}

// }}}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_row_is_named_in_the_error() {
        let header = xrow::Header {
            kind: request_type::INSERT,
            server_id: 2,
            lsn: 5,
            ..Default::default()
        };
        let tuple = [0x92, 0x07, 0xa1, b'x'];
        let mut request = Request::new(RequestKind::Insert, 512);
        request.tuple = &tuple;
        let err = BoxError::with_message(ErrCode::TUPLE_FOUND, "Duplicate key");
        let named = row_error(err, &header, "tester", &request);
        assert_eq!(named.code, ErrCode::TUPLE_FOUND);
        assert_eq!(
            named.message,
            "Duplicate key (row of server 2, LSN 5: INSERT [7, \"x\"] in space 'tester')"
        );
    }

    #[test]
    fn a_mesh_joins_a_booted_peer_else_the_smallest_uuid() {
        use super::super::probe::Probe;
        let peers = vec!["b".to_string(), "c".to_string()];
        let probe = |uuid: &str, booted| {
            Ok(Probe {
                uuid: uuid.to_string(),
                booted,
            })
        };
        let mut answers = BTreeMap::new();
        answers.insert("b".to_string(), probe("2", false));
        answers.insert("c".to_string(), probe("3", false));
        assert_eq!(choose_leader(&peers, &answers, "1"), Leader::Me);
        assert_eq!(
            choose_leader(&peers, &answers, "4"),
            Leader::Peer("b".to_string())
        );
        answers.insert("c".to_string(), probe("3", true));
        assert_eq!(
            choose_leader(&peers, &answers, "1"),
            Leader::Peer("c".to_string())
        );
        answers.insert("b".to_string(), Err("refused".to_string()));
        answers.insert("c".to_string(), Err("refused".to_string()));
        assert_eq!(choose_leader(&peers, &answers, "1"), Leader::Nobody);
    }

    #[test]
    fn old_xlogs_stay_for_registered_replicas_and_joins_under_way() {
        let at = |text: &str| Vclock::parse(text).unwrap();
        let seen = BTreeMap::from([
            (2, at("{1: 50, 2: 900}")),
            (3, at("{1: 20}")),
            (4, at("{1: 70, 4: 3}")),
        ]);
        // Replica 3 left _cluster: it no longer holds files. Each replica's own rows do
        // not stand for ours.
        let registered = [1, 2, 4];
        assert_eq!(
            oldest_needed(&registered, &seen, [].iter()),
            Some(at("{1: 50}"))
        );
        let joining = [at("{1: 30, 2: 900, 4: 3}")];
        assert_eq!(
            oldest_needed(&registered, &seen, joining.iter()),
            Some(at("{1: 30}"))
        );
        let joining = [at("{1: 90}"), at("{1: 80}")];
        assert_eq!(
            oldest_needed(&[1], &seen, joining.iter()),
            Some(at("{1: 80}"))
        );
        assert_eq!(oldest_needed(&[1], &seen, [].iter()), None);
    }

    #[test]
    fn own_listen_is_not_a_source() {
        assert!(!is_replica_source("3301", Some("3301")));
        assert!(!is_replica_source("localhost:3301", Some("127.0.0.1:3301")));
        assert!(!is_replica_source("u:p@localhost:3301", Some("3301")));
        assert!(is_replica_source("localhost:3302", Some("3301")));
        assert!(is_replica_source("localhost:3301", None));
    }
}
