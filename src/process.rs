//! Executing requests in TX: the one path from a data request to a committed change,
//! shared by the Lua API (lua/box_data.rs, lua/box_fast.rs) and the binary protocol
//! (net/iproto.rs), as Tarantool's `box_process1`/`box_process_rw`.
//!
//! Owned by the TX thread. Free of Lua: a caller that must run `on_replace` triggers
//! passes them as a closure.

use crate::r#box::db::{Db, Request};
use crate::r#box::tuple::Tuple;
use crate::r#box::txn::Txn;
use crate::error::{BoxError, ErrCode};
use crate::fiber::FiberId;
use crate::tx::Tx;
use crate::wal::journal::Waiter;

/// The owner id of work done outside any fiber (fiber ids start at 101).
pub const NO_FIBER: FiberId = 0;

pub fn not_configured() -> BoxError {
    BoxError::with_message(ErrCode::UNKNOWN, "Please call box.cfg{} first")
}

/// Run `body` with the database, or fail before box.cfg{}.
pub fn with_db<R>(
    tx: &Tx,
    body: impl FnOnce(&mut Db) -> Result<R, BoxError>,
) -> Result<R, BoxError> {
    let mut db = tx.db.borrow_mut();
    let db = db.as_mut().ok_or_else(not_configured)?;
    body(db)
}

/// The fiber running now ([`NO_FIBER`] outside fibers, which only the loop itself is).
pub fn fiber_id(tx: &Tx) -> FiberId {
    tx.sched.borrow().current().unwrap_or(NO_FIBER)
}

/// Execute a change (`request.uid` is who asks), call `triggers(txn, first new
/// statement)`, and commit, unless `owner` (a fiber) has a `box.begin()` open: then the
/// change joins that transaction. The new tuple (or the deleted one) comes back.
pub fn apply(
    tx: &Tx,
    request: &Request,
    owner: Option<FiberId>,
    triggers: impl FnOnce(&Txn, usize) -> Result<(), BoxError>,
) -> Result<Option<Tuple>, BoxError> {
    let fiber = owner.unwrap_or(NO_FIBER);
    let open = match owner {
        Some(fiber) => tx.txns.borrow_mut().remove(&fiber),
        None => None,
    };
    let multi = open.is_some();
    let mut txn = open.unwrap_or_else(Txn::autocommit);
    let before = txn.stmts.len();
    let result = match with_db(tx, |db| db.execute_one(&mut txn, request)) {
        Ok(tuple) => tuple,
        Err(err) => {
            // Nothing of this statement is in `txn`: keep or drop it as it was.
            let _ = finish(tx, fiber, txn, multi);
            return Err(err);
        }
    };
    if let Err(err) = triggers(&txn, before) {
        undo_since(tx, &mut txn, before);
        let _ = finish(tx, fiber, txn, multi);
        return Err(err);
    }
    finish(tx, fiber, txn, multi)?;
    Ok(result)
}

/// Keep an open transaction for its fiber, or commit an implicit one.
fn finish(tx: &Tx, fiber: FiberId, txn: Txn, multi: bool) -> Result<(), BoxError> {
    if multi {
        tx.txns.borrow_mut().insert(fiber, txn);
        return Ok(());
    }
    commit(tx, txn)
}

/// Hand a transaction's rows to the journal. With a WAL thread the commit completes later:
/// the running fiber waits for it (`internal.data.commit_wait`), or a caller outside fibers
/// claims it for its reply ([`Journal::claim`](crate::wal::journal::Journal::claim)); a
/// failed write rolls it back then.
pub fn commit(tx: &Tx, txn: Txn) -> Result<(), BoxError> {
    if txn.is_empty() {
        return Ok(());
    }
    let waiter = match fiber_id(tx) {
        NO_FIBER => Waiter::Nobody,
        fiber => Waiter::Fiber(fiber),
    };
    tx.journal.borrow_mut().commit(txn, waiter);
    Ok(())
}

/// Undo the statements a failed step added to `txn`.
fn undo_since(tx: &Tx, txn: &mut Txn, before: usize) {
    let tail = Txn {
        stmts: txn.stmts.split_off(before),
        multi_statement: txn.multi_statement,
    };
    let _ = with_db(tx, |db| {
        db.rollback(tail);
        Ok(())
    });
}

/// The WAL thread answered a batch: wake the fibers that wait, send the replies of binary
/// protocol requests (their error replies if the write failed, after rolling back).
pub fn on_wal_reply(tx: &Tx, reply: crate::wal::writer::WalReply) {
    use crate::wal::journal::Outcome;
    let failed = matches!(reply, crate::wal::writer::WalReply::Failed { .. });
    if let crate::wal::writer::WalReply::Written { vclock, .. } = &reply {
        crate::replication::tx_replication::on_written(tx, vclock);
    }
    let outcomes = tx.journal.borrow_mut().on_reply(reply, |txn| {
        let _ = with_db(tx, |db| {
            db.rollback(txn);
            Ok(())
        });
    });
    crate::wal::snapshot::on_wal_reply(tx, failed);
    if failed {
        crate::replication::tx_replication::on_wal_failed(tx);
    }
    for outcome in outcomes {
        match outcome {
            Outcome::Fiber(fiber) => {
                tx.sched
                    .borrow_mut()
                    .wakeup(fiber, crate::fiber::WakeReason::Woken);
            }
            Outcome::Relay { relay, result } => {
                crate::replication::tx_replication::on_registered(tx, relay, result);
            }
            Outcome::Applier(applier) => {
                crate::replication::tx_replication::on_batch_written(tx, applier);
            }
            Outcome::Iproto { token, sync, reply } => {
                crate::lua::iproto::write_reply(tx, token, |out, schema_id| match reply {
                    Ok(tuple) => crate::proto::xrow::write_data_reply(
                        out,
                        sync,
                        schema_id,
                        tuple.iter().map(|t| t.data()),
                    ),
                    Err(err) => crate::proto::xrow::write_error_reply(out, sync, schema_id, &err),
                });
            }
        }
    }
}
