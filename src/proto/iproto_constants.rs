//! iproto request types and keys, as Tarantool 1.6's `iproto_constants.h` numbers them.
//!
//! Owned by nobody: plain constants, used by the TX thread's iproto server, the net.box
//! client, and later the relay and applier threads.

/// Header and body keys (header keys are below 0x10, body keys at or above it).
pub mod key {
    pub const REQUEST_TYPE: u8 = 0x00;
    pub const SYNC: u8 = 0x01;
    pub const SERVER_ID: u8 = 0x02;
    pub const LSN: u8 = 0x03;
    pub const TIMESTAMP: u8 = 0x04;
    pub const SCHEMA_ID: u8 = 0x05;
    pub const SPACE_ID: u8 = 0x10;
    pub const INDEX_ID: u8 = 0x11;
    pub const LIMIT: u8 = 0x12;
    pub const OFFSET: u8 = 0x13;
    pub const ITERATOR: u8 = 0x14;
    pub const INDEX_BASE: u8 = 0x15;
    pub const KEY: u8 = 0x20;
    pub const TUPLE: u8 = 0x21;
    pub const FUNCTION_NAME: u8 = 0x22;
    pub const USER_NAME: u8 = 0x23;
    pub const SERVER_UUID: u8 = 0x24;
    pub const CLUSTER_UUID: u8 = 0x25;
    pub const VCLOCK: u8 = 0x26;
    pub const EXPR: u8 = 0x27;
    pub const OPS: u8 = 0x28;
    /// One past the last key 1.6 knows: a header key at or above it is malformed.
    pub const KEY_MAX: u8 = 0x29;
    pub const DATA: u8 = 0x30;
    pub const ERROR: u8 = 0x31;
}

/// Request types (and the OK response status, 0).
pub mod request_type {
    pub const OK: u32 = 0;
    pub const SELECT: u32 = 1;
    pub const INSERT: u32 = 2;
    pub const REPLACE: u32 = 3;
    pub const UPDATE: u32 = 4;
    pub const DELETE: u32 = 5;
    /// CALL with 1.6 result conversion (2.x calls it CALL_16).
    pub const CALL_16: u32 = 6;
    pub const AUTH: u32 = 7;
    pub const EVAL: u32 = 8;
    pub const UPSERT: u32 = 9;
    /// CALL returning the function's values as they are (1.7 and later).
    pub const CALL: u32 = 10;
    /// A row that changes nothing and only moves its origin's LSN on (2.x's NOP: a
    /// replicated row skipped by `replication_skip_conflict` is written as one).
    pub const NOP: u32 = 12;
    pub const PING: u32 = 64;
    pub const JOIN: u32 = 65;
    pub const SUBSCRIBE: u32 = 66;
    /// A replica's question for the master's state (1.10 and later send it before JOIN or
    /// SUBSCRIBE): unknown to 1.6, answered with ER_UNKNOWN_REQUEST_TYPE.
    pub const VOTE: u32 = 68;
    /// The bit of a response status that marks an error (`0x8000 | code`).
    pub const TYPE_ERROR: u32 = 0x8000;
}
