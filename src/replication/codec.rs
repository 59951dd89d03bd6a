//! The replication packets (PROTOCOL.md §7.2, §7.3): JOIN, SUBSCRIBE, the OK replies that
//! carry a vclock, heartbeats and acks, and rows framed for the wire.
//!
//! Pure; used by the relay and applier threads and by TX's iproto server.

use crate::error::{BoxError, ErrCode};
use crate::proto::iproto_constants::{key, request_type};
use crate::proto::xrow::{self, Header};
use crate::wal::vclock::Vclock;

use super::SubscribeRequest;

/// IPROTO_SERVER_VERSION, a body key of 1.7+ JOIN and SUBSCRIBE.
pub const KEY_SERVER_VERSION: u8 = 0x06;

/// The version our applier announces in SUBSCRIBE: 1.6.9, so a 2.x master sends neither a
/// RAFT row nor anything else a 1.6 replica would not know, but does send heartbeats to a
/// replica that names a version at all.
pub const APPLIER_VERSION: u32 = (1 << 16) | (6 << 8) | 9;

/// Write the 5-byte length prefix and the header map `{type, sync[, server_id]}`; returns
/// where the packet starts, for [`end`].
fn begin(out: &mut Vec<u8>, kind: u32, sync: u64, server_id: u32) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0xce, 0, 0, 0, 0]);
    let count = 2 + u32::from(server_id != 0);
    rmp::encode::write_map_len(out, count).expect("Vec write");
    rmp::encode::write_uint(out, u64::from(key::REQUEST_TYPE)).expect("Vec write");
    rmp::encode::write_uint(out, u64::from(kind)).expect("Vec write");
    rmp::encode::write_uint(out, u64::from(key::SYNC)).expect("Vec write");
    rmp::encode::write_uint(out, sync).expect("Vec write");
    if server_id != 0 {
        rmp::encode::write_uint(out, u64::from(key::SERVER_ID)).expect("Vec write");
        rmp::encode::write_uint(out, u64::from(server_id)).expect("Vec write");
    }
    start
}

fn end(out: &mut [u8], start: usize) {
    xrow::end_packet(out, start);
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    rmp::encode::write_str(out, text).expect("Vec write");
}

/// `JOIN {SERVER_UUID: uuid}` (1.6: no version, so a master streams the 1.6 way).
pub fn encode_join(out: &mut Vec<u8>, sync: u64, instance_uuid: &str) {
    let start = begin(out, request_type::JOIN, sync, 0);
    out.push(0x81);
    out.push(key::SERVER_UUID);
    write_str(out, instance_uuid);
    end(out, start);
}

/// `SUBSCRIBE {CLUSTER_UUID, SERVER_UUID, VCLOCK[, SERVER_VERSION]}`.
pub fn encode_subscribe(out: &mut Vec<u8>, sync: u64, request: &SubscribeRequest) {
    let start = begin(out, request_type::SUBSCRIBE, sync, 0);
    out.push(if request.version.is_some() {
        0x84
    } else {
        0x83
    });
    out.push(key::CLUSTER_UUID);
    write_str(out, &request.cluster_uuid);
    out.push(key::SERVER_UUID);
    write_str(out, &request.instance_uuid);
    out.push(key::VCLOCK);
    request.vclock.encode_msgpack(out);
    if let Some(version) = request.version {
        out.push(KEY_SERVER_VERSION);
        rmp::encode::write_uint(out, u64::from(version)).expect("Vec write");
    }
    end(out, start);
}

/// `OK {VCLOCK: vclock}` with header SERVER_ID: the end of a JOIN, the answer to SUBSCRIBE,
/// and (server id 0, sync 0) a replica's ack.
pub fn encode_ok_vclock(out: &mut Vec<u8>, sync: u64, server_id: u32, vclock: &Vclock) {
    let start = begin(out, request_type::OK, sync, server_id);
    out.push(0x81);
    out.push(key::VCLOCK);
    vclock.encode_msgpack(out);
    end(out, start);
}

/// A relay's heartbeat (1.7+): type OK, header SERVER_ID and TIMESTAMP, no body.
pub fn encode_heartbeat(out: &mut Vec<u8>, server_id: u32, timestamp: f64) {
    let start = out.len();
    out.extend_from_slice(&[0xce, 0, 0, 0, 0]);
    crate::wal::xlog::write_row_header(out, request_type::OK, server_id, 0, timestamp);
    end(out, start);
}

/// Frame a row (header map + body map, as in an xlog) for the wire, with `sync` added when
/// non-zero (a JOIN's rows carry the JOIN's sync). The row's own bytes are kept: the header
/// is re-encoded only to add the sync.
pub fn encode_row(out: &mut Vec<u8>, row: &[u8], sync: u64) -> Result<(), BoxError> {
    let start = out.len();
    out.extend_from_slice(&[0xce, 0, 0, 0, 0]);
    if sync == 0 {
        out.extend_from_slice(row);
    } else {
        let (header, body) = xrow::decode_header(row)?;
        write_header_with_sync(out, &header, sync);
        out.extend_from_slice(body);
    }
    end(out, start);
    Ok(())
}

fn write_header_with_sync(out: &mut Vec<u8>, header: &Header, sync: u64) {
    let count = 2
        + u32::from(header.server_id != 0)
        + u32::from(header.lsn != 0)
        + u32::from(header.timestamp != 0.0);
    rmp::encode::write_map_len(out, count).expect("Vec write");
    rmp::encode::write_uint(out, u64::from(key::REQUEST_TYPE)).expect("Vec write");
    rmp::encode::write_uint(out, u64::from(header.kind)).expect("Vec write");
    rmp::encode::write_uint(out, u64::from(key::SYNC)).expect("Vec write");
    rmp::encode::write_uint(out, sync).expect("Vec write");
    if header.server_id != 0 {
        rmp::encode::write_uint(out, u64::from(key::SERVER_ID)).expect("Vec write");
        rmp::encode::write_uint(out, u64::from(header.server_id)).expect("Vec write");
    }
    if header.lsn != 0 {
        rmp::encode::write_uint(out, u64::from(key::LSN)).expect("Vec write");
        rmp::encode::write_uint(out, header.lsn).expect("Vec write");
    }
    if header.timestamp != 0.0 {
        rmp::encode::write_uint(out, u64::from(key::TIMESTAMP)).expect("Vec write");
        rmp::encode::write_f64(out, header.timestamp).expect("Vec write");
    }
}

fn invalid(what: &str) -> BoxError {
    BoxError::new(ErrCode::INVALID_MSGPACK, &[&what])
}

/// The instance UUID of a JOIN body.
pub fn decode_join(body: &[u8]) -> Result<String, BoxError> {
    let decoded = xrow::decode_body(body)?;
    let uuid = xrow::required(decoded.server_uuid, "SERVER_UUID")?;
    uuid_text(uuid)
}

fn uuid_text(bytes: &[u8]) -> Result<String, BoxError> {
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("UUID"))?;
    uuid::Uuid::parse_str(text)
        .map(|uuid| uuid.to_string())
        .map_err(|_| invalid("UUID"))
}

/// A SUBSCRIBE body.
pub fn decode_subscribe(body: &[u8]) -> Result<SubscribeRequest, BoxError> {
    let decoded = xrow::decode_body(body)?;
    let cluster_uuid = uuid_text(xrow::required(decoded.cluster_uuid, "CLUSTER_UUID")?)?;
    let instance_uuid = uuid_text(xrow::required(decoded.server_uuid, "SERVER_UUID")?)?;
    let vclock = xrow::required(decoded.vclock, "VCLOCK")?;
    let vclock = Vclock::decode_msgpack(vclock).ok_or_else(|| invalid("VCLOCK"))?;
    Ok(SubscribeRequest {
        cluster_uuid,
        instance_uuid,
        vclock,
        version: body_uint(body, KEY_SERVER_VERSION).map(|v| v as u32),
    })
}

/// The VCLOCK of an OK body (JOIN's end, SUBSCRIBE's answer, an ack); None if it has none.
pub fn decode_ok_vclock(body: &[u8]) -> Result<Option<Vclock>, BoxError> {
    let decoded = xrow::decode_body(body)?;
    match decoded.vclock {
        None => Ok(None),
        Some(bytes) => Vclock::decode_msgpack(bytes)
            .map(Some)
            .ok_or_else(|| invalid("VCLOCK")),
    }
}

/// A uint under `wanted` in a body map, if any (keys `decode_body` does not name).
fn body_uint(body: &[u8], wanted: u8) -> Option<u64> {
    let mut data = body;
    let count = rmp::decode::read_map_len(&mut data).ok()?;
    for _ in 0..count {
        let code: u64 = rmp::decode::read_int(&mut data).ok()?;
        if code == u64::from(wanted) {
            return rmp::decode::read_int(&mut data).ok();
        }
        let len = crate::r#box::key_def::skip_value(data)?;
        data = &data[len..];
    }
    None
}

/// The error a reply packet carries, if its status is an error: `0x8000 | code` and the
/// message under 0x31.
pub fn decode_error(header: &Header, body: &[u8]) -> Option<BoxError> {
    if header.kind & request_type::TYPE_ERROR == 0 {
        return None;
    }
    let code = header.kind & !request_type::TYPE_ERROR;
    let message = error_message(body).unwrap_or_default();
    Some(BoxError::with_message(ErrCode(code), message))
}

fn error_message(body: &[u8]) -> Option<String> {
    let mut data = body;
    let count = rmp::decode::read_map_len(&mut data).ok()?;
    for _ in 0..count {
        let code: u64 = rmp::decode::read_int(&mut data).ok()?;
        let len = crate::r#box::key_def::skip_value(data)?;
        let (value, rest) = data.split_at(len);
        data = rest;
        if code == u64::from(key::ERROR) {
            return crate::r#box::mp::read_str(value)
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unframe(packet: &[u8]) -> (Header, &[u8]) {
        assert_eq!(packet[0], 0xce);
        let len = u32::from_be_bytes(packet[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, packet.len() - 5);
        xrow::decode_header(&packet[5..]).unwrap()
    }

    fn vclock(pairs: &[(u32, i64)]) -> Vclock {
        let mut vclock = Vclock::new();
        for &(id, lsn) in pairs {
            vclock.set(id, lsn);
        }
        vclock
    }

    const UUID_A: &str = "e654a428-c96c-4e57-b3eb-4c954186acdc";
    const UUID_B: &str = "9fe120f3-7e84-47ea-ac53-0b21fd1187c0";

    #[test]
    fn join_and_subscribe_round_trip() {
        let mut out = Vec::new();
        encode_join(&mut out, 7, UUID_A);
        let (header, body) = unframe(&out);
        assert_eq!((header.kind, header.sync), (request_type::JOIN, 7));
        assert_eq!(decode_join(body).unwrap(), UUID_A);

        for version in [None, Some(APPLIER_VERSION)] {
            let request = SubscribeRequest {
                cluster_uuid: UUID_B.to_string(),
                instance_uuid: UUID_A.to_string(),
                vclock: vclock(&[(1, 10), (2, 3)]),
                version,
            };
            let mut out = Vec::new();
            encode_subscribe(&mut out, 8, &request);
            let (header, body) = unframe(&out);
            assert_eq!(header.kind, request_type::SUBSCRIBE);
            assert_eq!(decode_subscribe(body).unwrap(), request);
        }
    }

    #[test]
    fn ok_vclock_and_heartbeat() {
        let mut out = Vec::new();
        encode_ok_vclock(&mut out, 5, 1, &vclock(&[(1, 6)]));
        let (header, body) = unframe(&out);
        assert_eq!((header.kind, header.sync, header.server_id), (0, 5, 1));
        assert_eq!(decode_ok_vclock(body).unwrap(), Some(vclock(&[(1, 6)])));

        let mut out = Vec::new();
        encode_heartbeat(&mut out, 2, 1234.5);
        let (header, body) = unframe(&out);
        assert_eq!(
            (header.kind, header.server_id, header.timestamp),
            (0, 2, 1234.5)
        );
        assert!(body.is_empty());
        assert_eq!(decode_ok_vclock(body).unwrap(), None);
    }

    #[test]
    fn rows_keep_their_bytes_and_gain_a_sync() {
        let mut row = Vec::new();
        crate::wal::xlog::write_row_header(&mut row, request_type::INSERT, 3, 42, 99.0);
        row.extend_from_slice(&[0x82, 0x10, 0x05, 0x21, 0x91, 0x01]);
        let mut out = Vec::new();
        encode_row(&mut out, &row, 0).unwrap();
        assert_eq!(&out[5..], &row[..]);
        let mut out = Vec::new();
        encode_row(&mut out, &row, 9).unwrap();
        let (header, body) = unframe(&out);
        assert_eq!(
            (header.kind, header.sync, header.server_id, header.lsn),
            (request_type::INSERT, 9, 3, 42)
        );
        assert_eq!(header.timestamp, 99.0);
        assert_eq!(body, &[0x82, 0x10, 0x05, 0x21, 0x91, 0x01]);
    }

    #[test]
    fn errors_and_bad_bodies() {
        let mut out = Vec::new();
        let err = BoxError::with_message(ErrCode(42), "no");
        xrow::write_error_reply(&mut out, 3, 1, &err);
        let (header, body) = unframe(&out);
        let decoded = decode_error(&header, body).unwrap();
        assert_eq!(
            (decoded.code, decoded.message.as_str()),
            (ErrCode(42), "no")
        );
        assert!(decode_join(&[0x80]).is_err());
        assert!(decode_join(&[0x81, key::SERVER_UUID, 0xa3, b'a', b'b', b'c']).is_err());
        assert!(decode_subscribe(&[0x80]).is_err());
    }
}
