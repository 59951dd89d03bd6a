//! Probing a peer before a mesh bootstraps: who it is (the UUID of its greeting) and whether
//! it has data to join (a booted server answers a SELECT; a server still starting or joining
//! answers ER_LOADING).
//!
//! Runs on a short-lived thread of its own per peer (blocking sockets); the answer goes to
//! TX as [`super::ApplierMsg::Probed`].

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::cfg::UriAddress;
use crate::constants::{APPLIER_RECONNECT_DELAY, GREETING_SIZE, IPROTO_PACKET_SIZE_MAX};
use crate::error::ErrCode;
use crate::proto::iproto_constants::{key, request_type};
use crate::proto::xrow::{self, Frame};

/// What a peer said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub uuid: String,
    /// It has data: a new server may join it.
    pub booted: bool,
}

/// Probe `uri` until it answers or `deadline` passes (a second between attempts): the
/// peers of a mesh start at about the same time.
pub fn probe_until(uri: &str, deadline: Instant) -> Result<Probe, String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match probe(uri, left.max(Duration::from_millis(100))) {
            Ok(answer) => return Ok(answer),
            Err(err) if Instant::now() + APPLIER_RECONNECT_DELAY >= deadline => return Err(err),
            Err(_) => std::thread::sleep(APPLIER_RECONNECT_DELAY),
        }
    }
}

/// One attempt: connect, read the greeting, SELECT one row of `_vspace` as guest.
pub fn probe(uri: &str, timeout: Duration) -> Result<Probe, String> {
    let parsed = crate::cfg::parse_uri(uri).map_err(|_| format!("bad URI {uri}"))?;
    let UriAddress::Tcp { host, service } = parsed.address else {
        return Err("a unix socket peer cannot be probed".to_string());
    };
    let host = host.unwrap_or_else(|| "localhost".to_string());
    let addrs = (
        host.as_str(),
        service.parse::<u16>().map_err(|_| "bad port")?,
    )
        .to_socket_addrs()
        .map_err(|err| err.to_string())?;
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return ask(stream, timeout),
            Err(err) => last = err.to_string(),
        }
    }
    Err(last)
}

fn ask(mut stream: TcpStream, timeout: Duration) -> Result<Probe, String> {
    let io = |err: std::io::Error| err.to_string();
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut greeting = [0u8; GREETING_SIZE];
    stream.read_exact(&mut greeting).map_err(io)?;
    let greeting = xrow::parse_greeting(&greeting)?;
    let uuid = greeting.uuid.ok_or("a greeting without a UUID")?;
    stream.write_all(&select_packet()).map_err(io)?;
    let reply = read_packet(&mut stream)?;
    let (header, _) = xrow::decode_header(&reply).map_err(|err| err.message)?;
    Ok(Probe {
        uuid,
        booted: answer_means_booted(header.kind),
    })
}

/// Anything but ER_LOADING means the peer has data (an access error included).
pub fn answer_means_booted(status: u32) -> bool {
    status != request_type::TYPE_ERROR | ErrCode::LOADING.0
}

/// `SELECT` of one row of `_vspace` (281), which every user may read.
fn select_packet() -> Vec<u8> {
    let mut out = Vec::new();
    let start = xrow::begin_packet(&mut out, request_type::SELECT, 1, None);
    out.extend_from_slice(&[0x83, key::SPACE_ID, 0xcd, 0x01, 0x19]);
    out.extend_from_slice(&[key::LIMIT, 0x01, key::KEY, 0x90]);
    xrow::end_packet(&mut out, start);
    out
}

fn read_packet(stream: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut input = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match xrow::next_frame(&input, IPROTO_PACKET_SIZE_MAX) {
            Frame::Complete { start, end } => return Ok(input[start..end].to_vec()),
            Frame::Broken(why) => return Err(why.to_string()),
            Frame::Incomplete { .. } => {}
        }
        let count = stream.read(&mut chunk).map_err(|err| err.to_string())?;
        if count == 0 {
            return Err("the peer closed the connection".to_string());
        }
        input.extend_from_slice(&chunk[..count]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loading_means_not_booted() {
        assert!(answer_means_booted(request_type::OK));
        assert!(answer_means_booted(request_type::TYPE_ERROR | 42));
        assert!(!answer_means_booted(request_type::TYPE_ERROR | 116));
    }

    #[test]
    fn the_select_is_a_well_formed_request() {
        let packet = select_packet();
        let Frame::Complete { start, end } = xrow::next_frame(&packet, 1 << 20) else {
            panic!("not a packet")
        };
        let (header, body) = xrow::decode_header(&packet[start..end]).unwrap();
        assert_eq!(header.kind, request_type::SELECT);
        let body = xrow::decode_body(body).unwrap();
        assert_eq!((body.space_id, body.limit), (Some(281), Some(1)));
    }
}
