//! `internal.box`: `box.cfg` from Lua: convert the table, validate it with [`crate::cfg`],
//! apply each changed option to its subsystem, then commit.
//!
//! Owned by the TX thread. Validation is all-or-nothing (`Cfg::prepare`); applying happens
//! in schema order, and options that need the process set up (work_dir, the log, the pid
//! file) are applied on the first call before anything else.

use std::rc::Rc;

use mlua::{IntoLua, Lua, MultiValue, Table, Value};

use crate::cfg::{CfgChanges, CfgValue};
use crate::constants::{TARANTOOL_VERSION, TARANTULA_VERSION};
use crate::error::{BoxError, ErrCode};
use crate::net::ListenKind;
use crate::tx::Tx;

use super::util::failure;

/// The `internal.box` table.
pub fn open(lua: &Lua, tx: &Rc<Tx>) -> mlua::Result<Table> {
    let module = lua.create_table()?;
    let t = tx.clone();
    module.set(
        "cfg",
        lua.create_function(move |lua, options: Table| box_cfg(lua, &t, &options))?,
    )?;
    let t = tx.clone();
    module.set(
        "info",
        lua.create_function(move |lua, only: Option<String>| info(lua, &t, only.as_deref()))?,
    )?;
    let t = tx.clone();
    module.set(
        "bootstrap_wait",
        lua.create_function(move |lua, ()| {
            let fiber = crate::process::fiber_id(&t);
            match crate::replication::tx_replication::bootstrap_wait(&t, fiber) {
                Ok(Some(seconds)) if fiber != crate::process::NO_FIBER => {
                    let timeout = seconds.is_finite().then_some(seconds);
                    super::fiber::park(&t, timeout, false)?;
                    Ok(MultiValue::from_iter([Value::Boolean(true)]))
                }
                Ok(Some(_)) => failure(
                    lua,
                    &BoxError::with_message(ErrCode::UNKNOWN, "box.cfg can't wait outside a fiber"),
                ),
                Ok(None) => Ok(MultiValue::from_iter([Value::Boolean(false)])),
                Err(err) => failure(lua, &err),
            }
        })?,
    )?;
    let t = tx.clone();
    module.set(
        "gc_info",
        lua.create_function(move |lua, ()| gc_info(lua, &t))?,
    )?;
    let t = tx.clone();
    module.set(
        "slab_info",
        lua.create_function(move |lua, ()| slab_info(lua, &t))?,
    )?;
    let t = tx.clone();
    module.set(
        "cfg_get",
        lua.create_function(move |lua, name: String| {
            let value = t.cfg.borrow().get_by_any_name(&name);
            value.map(|value| cfg_to_lua(lua, &value)).transpose()
        })?,
    )?;
    Ok(module)
}

/// `box.cfg{...}`: returns the table of effective values, or `nil, err`.
fn box_cfg(lua: &Lua, tx: &Tx, options: &Table) -> mlua::Result<MultiValue> {
    let request = match request_from_lua(options) {
        Ok(request) => request,
        Err(err) => return failure(lua, &err),
    };
    let prepared = tx.cfg.borrow().prepare(&request);
    let changes = match prepared {
        Ok(changes) => changes,
        Err(err) => return failure(lua, &err),
    };
    if let Err(err) = apply(tx, &changes) {
        return failure(lua, &err);
    }
    log_changes(&changes);
    let first_call = changes.first_call;
    let sources_changed = changes.get("replication_source").is_some();
    tx.cfg.borrow_mut().commit(changes);
    if first_call && let Err(err) = start_data(tx) {
        return failure(lua, &err);
    }
    if !first_call && sources_changed {
        let sources = tx.cfg.borrow().replication_sources();
        if let Err(err) = crate::replication::tx_replication::configure(tx, &sources) {
            return failure(lua, &err);
        }
    }
    tx.box_configured.set(true);
    set_tuple_limits(tx);
    Ok(MultiValue::from_iter([Value::Table(effective_table(
        lua, tx,
    )?)]))
}

/// `box.info.replication`: 1.6's `{status, idle, lag, message}` of the first source, and
/// the per-server table of later Tarantool (`[id] = {id, uuid, lsn, upstream, downstream}`).
fn replication_info(
    lua: &Lua,
    tx: &Tx,
    db: &crate::r#box::db::Db,
    written: &crate::wal::vclock::Vclock,
) -> mlua::Result<Table> {
    use crate::replication::tx_replication::{downstreams, upstreams};
    let replication = lua.create_table()?;
    let upstreams = upstreams(tx);
    let fill = |table: &Table, upstream: &crate::replication::tx_replication::UpstreamInfo| {
        table.set("status", upstream.status)?;
        table.set("idle", upstream.idle)?;
        table.set("lag", upstream.lag)?;
        if let Some(message) = &upstream.message {
            table.set("message", message.as_str())?;
        }
        Ok::<_, mlua::Error>(())
    };
    let upstream_table = |upstream: &crate::replication::tx_replication::UpstreamInfo| {
        let table = lua.create_table()?;
        fill(&table, upstream)?;
        table.set("peer", upstream.peer.as_str())?;
        Ok::<_, mlua::Error>(table)
    };
    match upstreams.first() {
        Some(first) => fill(&replication, first)?,
        None => replication.set("status", "off")?,
    }
    let downstreams = downstreams(tx);
    for (id, uuid) in &db.cluster {
        let peer = lua.create_table()?;
        peer.set("id", *id)?;
        peer.set("uuid", uuid.as_str())?;
        peer.set("lsn", written.get(*id).max(0))?;
        if let Some(upstream) = upstreams.iter().find(|u| u.master_id == *id) {
            peer.set("upstream", upstream_table(upstream)?)?;
        }
        if let Some(downstream) = downstreams.iter().find(|d| d.replica_id == *id) {
            let table = lua.create_table()?;
            table.set("status", downstream.status)?;
            table.set("idle", downstream.idle)?;
            table.set("vclock", vclock_table(lua, &downstream.vclock)?)?;
            if let Some(message) = &downstream.message {
                table.set("message", message.as_str())?;
            }
            peer.set("downstream", table)?;
        }
        replication.raw_set(*id, peer)?;
    }
    Ok(replication)
}

/// A vclock as a Lua map `{id = lsn}`.
fn vclock_table(lua: &Lua, vclock: &crate::wal::vclock::Vclock) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.set_metatable(Some(super::serializer::map_mt(lua)?))?;
    for (id, lsn) in vclock.iter() {
        table.raw_set(id, lsn)?;
    }
    Ok(table)
}

/// `box.info.gc()` as Tarantool 2.x shows it: the snapshots (`checkpoints`), the oldest
/// vclock whose rows are still kept, the replicas old xlogs are kept for (`consumers`),
/// whether a snapshot is being written, and (2.8's `is_paused`) whether every xlog is kept
/// after a start until the replicas subscribe (`wal_cleanup_delay`).
fn gc_info(lua: &Lua, tx: &Tx) -> mlua::Result<Table> {
    use crate::wal::xlog::FileKind;
    let state = crate::replication::tx_replication::gc_state(tx);
    let snap_dir = std::path::PathBuf::from(tx.cfg.borrow().snap_dir());
    let snaps = crate::wal::xdir::scan(&snap_dir, FileKind::Snap).unwrap_or_default();
    let checkpoints = lua.create_table()?;
    let mut oldest = None;
    for (signature, path) in &snaps {
        // A snapshot whose header can't be read is left out, as recovery would leave it.
        let Ok(meta) = crate::wal::xlog::read_meta(path) else {
            continue;
        };
        let checkpoint = lua.create_table()?;
        checkpoint.set("references", lua.create_table()?)?;
        checkpoint.set("vclock", vclock_table(lua, &meta.vclock)?)?;
        checkpoint.set("signature", *signature)?;
        checkpoints.raw_set(checkpoints.raw_len() + 1, checkpoint)?;
        oldest.get_or_insert(meta.vclock);
    }
    let consumers = lua.create_table()?;
    for (name, vclock) in &state.consumers {
        let consumer = lua.create_table()?;
        consumer.set("name", name.as_str())?;
        consumer.set("vclock", vclock_table(lua, vclock)?)?;
        consumer.set("signature", vclock.signature())?;
        consumers.raw_set(consumers.raw_len() + 1, consumer)?;
    }
    let kept = match (oldest, state.keep) {
        (Some(oldest), Some(keep)) => oldest.meet(&keep),
        (oldest, keep) => oldest.or(keep).unwrap_or_default(),
    };
    let gc = lua.create_table()?;
    gc.set("vclock", vclock_table(lua, &kept)?)?;
    gc.set("signature", kept.signature())?;
    gc.set("checkpoints", checkpoints)?;
    gc.set("consumers", consumers)?;
    gc.set(
        "checkpoint_is_in_progress",
        tx.checkpoint.borrow().is_running(),
    )?;
    gc.set("is_paused", state.paused)?;
    Ok(gc)
}

/// Tuple memory and size limits from `slab_alloc_arena` and `slab_alloc_maximal`.
fn set_tuple_limits(tx: &Tx) {
    let cfg = tx.cfg.borrow();
    let limits = crate::r#box::db::TupleLimits {
        memory: cfg.memtx_memory_bytes() as usize,
        tuple_size: cfg.get_number("slab_alloc_maximal").unwrap_or(1048576.0) as usize,
    };
    if let Some(db) = tx.db.borrow_mut().as_mut() {
        db.limits = limits;
        db.read_only = cfg.read_only();
    }
}

/// `box.info`: version, pid, uptime, status, this server, vclock, cluster, replication.
/// The fields of `box.info`, in the order a whole `box.info` is built.
const INFO_FIELDS: [&str; 14] = [
    "version",
    "pid",
    "uptime",
    "status",
    "server",
    "id",
    "uuid",
    "lsn",
    "ro",
    "signature",
    "vclock",
    "cluster",
    "replication",
    "listen",
];

/// `box.info`, or (`only`) the one field asked for: `box.info.vclock` builds the vclock and
/// nothing else (a fiber may poll it).
fn info(lua: &Lua, tx: &Tx, only: Option<&str>) -> mlua::Result<Table> {
    let info = lua.create_table()?;
    for name in INFO_FIELDS {
        if only.is_none_or(|only| only == name) {
            info.set(name, info_field(lua, tx, name)?)?;
        }
    }
    Ok(info)
}

/// One field of `box.info` (nil when it has no value yet).
fn info_field(lua: &Lua, tx: &Tx, name: &str) -> mlua::Result<Value> {
    match name {
        "version" => format!("{TARANTOOL_VERSION}-0-tarantula-{TARANTULA_VERSION}").into_lua(lua),
        "pid" => std::process::id().into_lua(lua),
        "uptime" => tx.started.elapsed().as_secs().into_lua(lua),
        // The address box.cfg.listen bound (a later Tarantool's box.info.listen).
        "listen" => tx
            .iproto_listener
            .get()
            .and_then(|token| tx.net.borrow().listener_name(token))
            .into_lua(lua),
        _ => data_info_field(lua, tx, name),
    }
}

/// A field of `box.info` that describes the data (before box.cfg{}: only the status).
fn data_info_field(lua: &Lua, tx: &Tx, name: &str) -> mlua::Result<Value> {
    let db = tx.db.borrow();
    let Some(db) = db.as_ref() else {
        return match name {
            "status" => "loading".into_lua(lua),
            _ => Ok(Value::Nil),
        };
    };
    let journal = tx.journal.borrow();
    let written = &journal.vclock;
    let lsn = written.get(db.server_id).max(0);
    let ro = || tx.cfg.borrow().read_only() || db.server_id == 0;
    match name {
        "status" => {
            let bootstrapping = tx.replication.borrow().is_bootstrapping();
            (if bootstrapping {
                "hot_standby"
            } else {
                "running"
            })
            .into_lua(lua)
        }
        "server" => {
            let server = lua.create_table()?;
            server.set("id", db.server_id)?;
            server.set("uuid", db.instance_uuid.as_str())?;
            server.set("lsn", lsn)?;
            server.set("ro", ro())?;
            Ok(Value::Table(server))
        }
        "id" => db.server_id.into_lua(lua),
        "uuid" => db.instance_uuid.as_str().into_lua(lua),
        "lsn" => lsn.into_lua(lua),
        "ro" => ro().into_lua(lua),
        "signature" => written.signature().into_lua(lua),
        "vclock" => {
            let vclock = lua.create_table()?;
            vclock.set_metatable(Some(super::serializer::map_mt(lua)?))?;
            for id in db.cluster.keys() {
                vclock.raw_set(*id, written.get(*id).max(0))?;
            }
            Ok(Value::Table(vclock))
        }
        "cluster" => {
            let cluster = lua.create_table()?;
            cluster.set("uuid", db.cluster_uuid.clone())?;
            Ok(Value::Table(cluster))
        }
        "replication" => Ok(Value::Table(replication_info(lua, tx, db, written)?)),
        _ => Ok(Value::Nil),
    }
}

/// `box.slab.info()`: tuple memory against the quota (`slab_alloc_arena`).
fn slab_info(lua: &Lua, tx: &Tx) -> mlua::Result<Table> {
    let used = crate::r#box::tuple::bytes_used();
    let quota = tx.cfg.borrow().memtx_memory_bytes() as usize;
    let ratio = |part: usize, whole: usize| {
        let percent = if whole == 0 {
            0.0
        } else {
            part as f64 * 100.0 / whole as f64
        };
        format!("{percent:.2}%")
    };
    let index_bytes: usize = tx.db.borrow().as_ref().map_or(0, |db| {
        db.spaces()
            .flat_map(|space| space.all_indexes())
            .map(|index| index.memory_usage())
            .sum()
    });
    let table = lua.create_table()?;
    table.set("items_size", used)?;
    table.set("items_used", used)?;
    table.set("items_used_ratio", ratio(used, used.max(1)))?;
    table.set("arena_size", used + index_bytes)?;
    table.set("arena_used", used + index_bytes)?;
    table.set("arena_used_ratio", ratio(used + index_bytes, quota))?;
    table.set("quota_size", quota)?;
    table.set("quota_used", used)?;
    table.set("quota_used_ratio", ratio(used, quota))?;
    Ok(table)
}

/// The Lua table as `(key, value)` pairs; a value no option can take (a function, a
/// userdata) is reported with the option's expected types.
fn request_from_lua(options: &Table) -> Result<Vec<(String, CfgValue)>, BoxError> {
    let mut request = Vec::new();
    for pair in options.pairs::<Value, Value>() {
        let Ok((key, value)) = pair else { continue };
        let key = match key {
            Value::String(key) => key.to_string_lossy(),
            other => {
                let shown = other.to_string().unwrap_or_default();
                return Err(BoxError::cfg(&shown, "unexpected option"));
            }
        };
        match cfg_from_lua(&value) {
            Some(value) => request.push((key, value)),
            None if is_null(&value) => {}
            None => return Err(crate::cfg::type_error(&key)),
        }
    }
    Ok(request)
}

/// `box.NULL` (a NULL cdata) means "not given", like nil.
fn is_null(value: &Value) -> bool {
    matches!(value, Value::Nil | Value::LightUserData(_))
        || (matches!(value, Value::Other(_)) && value.to_pointer().is_null())
}

fn cfg_from_lua(value: &Value) -> Option<CfgValue> {
    match value {
        Value::Boolean(flag) => Some(CfgValue::Bool(*flag)),
        Value::Integer(number) => Some(CfgValue::Number(*number as f64)),
        Value::Number(number) => Some(CfgValue::Number(*number)),
        Value::String(text) => Some(CfgValue::Str(text.to_string_lossy())),
        Value::Table(table) => {
            let items = table
                .sequence_values::<Value>()
                .filter_map(|item| item.ok())
                .map(|item| cfg_from_lua(&item))
                .collect::<Option<Vec<CfgValue>>>()?;
            Some(CfgValue::Array(items))
        }
        _ => None,
    }
}

fn cfg_to_lua(lua: &Lua, value: &CfgValue) -> mlua::Result<Value> {
    Ok(match value {
        CfgValue::Bool(flag) => Value::Boolean(*flag),
        CfgValue::Number(number) => Value::Number(*number),
        CfgValue::Str(text) => Value::String(lua.create_string(text)?),
        CfgValue::Array(items) => {
            let table = lua.create_table()?;
            for (n, item) in items.iter().enumerate() {
                table.raw_set(n + 1, cfg_to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
    })
}

/// Every effective option, by its 1.6 name.
fn effective_table(lua: &Lua, tx: &Tx) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    for (name, value) in tx.cfg.borrow().iter() {
        table.set(name, cfg_to_lua(lua, value)?)?;
    }
    Ok(table)
}

/// Apply what changes; the first call sets the process up first.
fn apply(tx: &Tx, changes: &CfgChanges) -> Result<(), BoxError> {
    if changes.first_call {
        apply_first(tx, changes)?;
    }
    for change in &changes.changes {
        match (change.name, &change.value) {
            ("log_level", Some(CfgValue::Number(level))) => crate::log::set_level(*level as i64),
            ("log_level", None) => crate::log::set_level(5),
            ("coredump", Some(CfgValue::Bool(true))) => enable_coredump(),
            ("custom_proc_title", Some(CfgValue::Str(title))) => set_process_title(title),
            ("listen", value) => listen(tx, value.as_ref().and_then(CfgValue::as_str))?,
            ("too_long_threshold", Some(CfgValue::Number(seconds))) => {
                tx.journal.borrow_mut().too_long =
                    std::time::Duration::try_from_secs_f64(*seconds).unwrap_or_default();
            }
            _ => {}
        }
    }
    Ok(())
}

/// Serve the binary protocol on `uri` (None: stop), replacing the listener of before.
fn listen(tx: &Tx, uri: Option<&str>) -> Result<(), BoxError> {
    if let Some(token) = tx.iproto_listener.take() {
        tx.net.borrow_mut().close(token);
    }
    let Some(uri) = uri.filter(|uri| !uri.is_empty()) else {
        return Ok(());
    };
    let bound = tx.net.borrow_mut().listen(uri, ListenKind::Iproto);
    let (token, name) =
        bound.map_err(|err| BoxError::system(&format!("failed to bind to {uri}"), &err))?;
    tx.iproto_listener.set(Some(token));
    log::info!("binary: bound to {name}");
    Ok(())
}

/// The first `box.cfg{}`: change to work_dir, open the log, write the pid file.
fn apply_first(tx: &Tx, changes: &CfgChanges) -> Result<(), BoxError> {
    let value_of = |name: &str| -> Option<String> {
        match changes.get(name) {
            Some(change) => change
                .value
                .as_ref()
                .and_then(|v| v.as_str().map(str::to_string)),
            None => tx.cfg.borrow().get_str(name).map(str::to_string),
        }
    };
    if let Some(dir) = value_of("work_dir") {
        std::env::set_current_dir(&dir)
            .map_err(|err| BoxError::system(&format!("can't chdir to '{dir}'"), &err))?;
    }
    let logger = value_of("logger");
    let background = changes
        .get("background")
        .and_then(|change| change.value.as_ref())
        .and_then(CfgValue::as_bool)
        .unwrap_or(false);
    if background && logger.is_none() {
        return Err(BoxError::cfg(
            "background",
            "the daemon mode requires a logger (a log file, pipe or syslog)",
        ));
    }
    if let Some(name) = value_of("username") {
        switch_user(&name)?;
    }
    crate::log::set_json(value_of("log_format").as_deref() == Some("json"));
    crate::log::configure(logger.as_deref())
        .map_err(|err| BoxError::cfg("logger", &crate::error::strerror(&err)))?;
    if background {
        daemonize(tx)?;
    }
    if let Some(change) = changes.get("log_level")
        && let Some(CfgValue::Number(level)) = &change.value
    {
        crate::log::set_level(*level as i64);
    }
    crate::crit!("Tarantula {TARANTULA_VERSION} (Tarantool {TARANTOOL_VERSION} protocol)");
    crate::crit!("log level {}", crate::log::level());
    if let Some(path) = value_of("pid_file") {
        write_pid_file(&path)?;
    }
    Ok(())
}

/// After the first `box.cfg{}` is in effect: bootstrap a new instance or recover the data
/// of `wal_dir`, then start the WAL thread.
fn start_data(tx: &Tx) -> Result<(), BoxError> {
    use crate::replication::tx_replication;
    use crate::wal::recovery::Options;
    let listen = tx_replication::own_listen(tx);
    let (options, instance_uuid, cluster_uuid, sources) = {
        let cfg = tx.cfg.borrow();
        let uuid = |name: &str| {
            cfg.get_str(name)
                .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
        };
        (
            Options::from_cfg(&cfg),
            uuid("instance_uuid"),
            uuid("replicaset_uuid"),
            cfg.replication_sources(),
        )
    };
    if options.wal_mode != crate::cfg::WalMode::None {
        // Held for the life of the process.
        std::mem::forget(crate::wal::lock::lock_dir(&options.wal_dir)?);
    }
    let peers: Vec<String> = sources
        .iter()
        .filter(|source| tx_replication::is_replica_source(source, listen.as_deref()))
        .cloned()
        .collect();
    let first_is_peer = sources.first().is_some_and(|first| peers.contains(first));
    if first_is_peer && !options.has_data()? {
        // A new server whose data comes from a master (box.cfg waits for it): the first
        // source, or, for a mesh, the one the peers choose.
        log::info!("instance uuid {instance_uuid}");
        *tx.db.borrow_mut() = Some(crate::r#box::db::Db::new(&instance_uuid));
        tx.journal.borrow_mut().server_id = 0;
        if peers.len() == 1 {
            return tx_replication::start_bootstrap(tx, &peers[0], &instance_uuid);
        }
        let local: tx_replication::LocalStart = Box::new(move |tx: &Tx| {
            start_local(tx, &options, &instance_uuid, &cluster_uuid, &sources)
        });
        return tx_replication::start_election(tx, peers, local);
    }
    start_local(tx, &options, &instance_uuid, &cluster_uuid, &sources)
}

/// Recover the data of `wal_dir`, or bootstrap a new cluster, then start the WAL thread and
/// replication.
fn start_local(
    tx: &Tx,
    options: &crate::wal::recovery::Options,
    instance_uuid: &str,
    cluster_uuid: &str,
    sources: &[String],
) -> Result<(), BoxError> {
    use crate::replication::tx_replication;
    use crate::wal::recovery;
    let recovered = recovery::recover(options, || bootstrap(instance_uuid, cluster_uuid))?;
    let uuid = recovered.db.instance_uuid.clone();
    let server_id = recovered.db.server_id;
    {
        let mut journal = tx.journal.borrow_mut();
        journal.server_id = server_id;
        journal.start_at(recovered.vclock.clone());
    }
    *tx.db.borrow_mut() = Some(recovered.db);
    recovery::start_wal(tx, options, &uuid, recovered.vclock, server_id)?;
    for txn in recovered.unwritten {
        tx.journal
            .borrow_mut()
            .commit(txn, crate::wal::journal::Waiter::Nobody);
    }
    log::info!("ready to accept requests");
    tx_replication::configure(tx, sources)
}

/// A new instance: the bootstrap rows, then its own cluster UUID and `_cluster` entry (the
/// steps of Tarantool 1.6's first `box.cfg{}` with no data and no replication source).
fn bootstrap(
    instance_uuid: &str,
    cluster_uuid: &str,
) -> Result<(crate::r#box::db::Db, Vec<crate::r#box::txn::Txn>), BoxError> {
    use crate::r#box::db::{Db, Request, RequestKind};
    use crate::r#box::mp::{Mp, s, u};
    use crate::r#box::schema::{CLUSTER_ID, SCHEMA_ID};
    use crate::r#box::txn::Txn;
    log::info!("instance uuid {instance_uuid}");
    log::info!("initializing an empty data directory");
    let mut db = Db::new(instance_uuid);
    db.bootstrap(&crate::r#box::schema::bootstrap_uuid())?;
    let cluster = Mp::Array(vec![s("cluster"), s(cluster_uuid)]).to_vec();
    let old_entry = Mp::Array(vec![u(1)]).to_vec();
    let entry = Mp::Array(vec![u(1), s(instance_uuid)]).to_vec();
    let mut replace = Request::new(RequestKind::Replace, SCHEMA_ID);
    replace.tuple = &cluster;
    let mut delete = Request::new(RequestKind::Delete, CLUSTER_ID);
    delete.key = &old_entry;
    let mut insert = Request::new(RequestKind::Insert, CLUSTER_ID);
    insert.tuple = &entry;
    let mut txns = Vec::new();
    for request in [replace, delete, insert] {
        let mut txn = Txn::autocommit();
        db.execute(&mut txn, &request)?;
        txns.push(txn);
    }
    log::info!("assigned id {} to replica {instance_uuid}", db.server_id);
    log::info!("cluster uuid {cluster_uuid}");
    db.changed_spaces.clear();
    Ok((db, txns))
}

fn write_pid_file(path: &str) -> Result<(), BoxError> {
    let absolute = std::env::current_dir()
        .map(|dir| dir.join(path))
        .unwrap_or_else(|_| path.into());
    std::fs::write(&absolute, format!("{}\n", std::process::id()))
        .map_err(|err| BoxError::system(&format!("can't write pid file '{path}'"), &err))?;
    crate::server::remove_at_exit(absolute);
    Ok(())
}

/// `background = true`: fork, let the parent exit, and go on in a new session with the
/// standard streams on /dev/null. Only the TX thread survives a fork, so it is refused once
/// other threads run (the interactive console's line editor, busy coio workers).
fn daemonize(tx: &Tx) -> Result<(), BoxError> {
    if tx.coio.borrow().started() || tx.stdin.borrow().started() {
        return Err(BoxError::cfg(
            "background",
            "the daemon mode must be set by the first box.cfg{} of a script, before fio or the console run",
        ));
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: fork in a process whose only thread is this one (checked above, and signal
    // handling is a self-pipe with no thread of its own); the parent exits at once without
    // running Rust destructors, the child continues as the server.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(BoxError::system("fork", &std::io::Error::last_os_error()));
    }
    if pid > 0 {
        // SAFETY: _exit ends the parent without flushing buffers the child inherited.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: setsid and the dup2 calls take plain integers; /dev/null is opened read-write.
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    Ok(())
}

/// `username`: switch the process to that system user (needs the privilege to).
fn switch_user(name: &str) -> Result<(), BoxError> {
    let Ok(c_name) = std::ffi::CString::new(name) else {
        return Err(BoxError::cfg("username", "the name contains a zero byte"));
    };
    // SAFETY: getpwnam returns a pointer into static storage or null; we read two integers
    // from it at once, on the only thread that calls it.
    let (uid, gid) = unsafe {
        let entry = libc::getpwnam(c_name.as_ptr());
        if entry.is_null() {
            return Err(BoxError::cfg(
                "username",
                &format!("user '{name}' not found"),
            ));
        }
        ((*entry).pw_uid, (*entry).pw_gid)
    };
    // SAFETY: setgid/setuid take plain ids; group first, while we may still change it.
    let failed = unsafe { libc::setgid(gid) != 0 || libc::setuid(uid) != 0 };
    if failed {
        let err = std::io::Error::last_os_error();
        return Err(BoxError::cfg(
            "username",
            &format!(
                "can't switch to user '{name}': {}",
                crate::error::strerror(&err)
            ),
        ));
    }
    Ok(())
}

/// `custom_proc_title`: the process name `ps` and `top` show (the kernel keeps 15 bytes).
fn set_process_title(title: &str) {
    let mut bytes: Vec<u8> = title.bytes().filter(|&b| b != 0).take(15).collect();
    bytes.push(0);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, bytes.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

fn enable_coredump() {
    let limit = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid rlimit struct; failure only leaves the limit as is.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &limit) } != 0 {
        log::warn!(
            "can't enable core dumps: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// `set '<option>' configuration option to <value>`, as Tarantool logs each change.
fn without_passwords(value: &CfgValue) -> CfgValue {
    use crate::replication::applier::display_uri;
    match value {
        CfgValue::Str(uri) => CfgValue::Str(display_uri(uri)),
        CfgValue::Array(items) => CfgValue::Array(items.iter().map(without_passwords).collect()),
        other => other.clone(),
    }
}

fn log_changes(changes: &CfgChanges) {
    for change in &changes.changes {
        let shown = match (&change.value, change.name) {
            // Replication URIs are logged without their passwords.
            (Some(value), "replication_source") => Some(without_passwords(value)),
            (value, _) => value.clone(),
        };
        let text = shown
            .as_ref()
            .map_or_else(|| String::from("nil"), CfgValue::to_json);
        log::info!("set '{}' configuration option to {text}", change.name);
    }
}
