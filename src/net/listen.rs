//! Listening sockets: binding a listen URI (`port`, `host:port`, `/unix/path`, `unix/:path`).
//!
//! Owned by the TX thread. Binding resolves host names synchronously: it happens once per
//! `listen` change and `/etc/hosts` answers the usual names at once.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::FileTypeExt;

use mio::net::{TcpListener, UnixListener};

use super::ListenKind;
use super::connection::Stream;

/// The socket of a listener.
pub enum ListenSocket {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        path: String,
    },
}

impl ListenSocket {
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            ListenSocket::Tcp(listener) => listener,
            ListenSocket::Unix { listener, .. } => listener,
        }
    }

    /// Accept one client, already non-blocking.
    pub fn accept(&mut self) -> io::Result<Stream> {
        match self {
            ListenSocket::Tcp(listener) => {
                let (stream, _) = listener.accept()?;
                // Console and iproto replies are small and latency-bound.
                let _ = stream.set_nodelay(true);
                Ok(Stream::Tcp(stream))
            }
            ListenSocket::Unix { listener, .. } => {
                let (stream, _) = listener.accept()?;
                Ok(Stream::Unix(stream))
            }
        }
    }
}

/// A bound listener.
pub struct Listener {
    pub socket: ListenSocket,
    pub kind: ListenKind,
    /// The bound address as text (`127.0.0.1:3301`, `unix/:/path`).
    pub name: String,
}

/// Where a listen URI points.
#[derive(Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP host (None: all interfaces) and port.
    Tcp { host: Option<String>, port: u16 },
    /// A unix socket path.
    Unix(String),
}

/// Parse a listen URI. A bare port listens on all interfaces, as Tarantool does.
pub fn parse_listen(uri: &str) -> Result<ListenAddr, String> {
    let uri = uri.trim();
    let bad = || format!("expected host:service or /unix.socket, got '{uri}'");
    if let Some(path) = uri.strip_prefix("unix/:") {
        return if path.is_empty() {
            Err(bad())
        } else {
            Ok(ListenAddr::Unix(path.to_string()))
        };
    }
    if uri.starts_with('/') || uri.starts_with("./") {
        return Ok(ListenAddr::Unix(uri.to_string()));
    }
    // Credentials are meaningless for a listener but tolerated, as Tarantool does.
    let address = uri.rsplit_once('@').map_or(uri, |(_, rest)| rest);
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (Some(host.trim_matches(['[', ']']).to_string()), port),
        None => (None, address),
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    match host {
        Some(host) if host.is_empty() => Err(bad()),
        host => Ok(ListenAddr::Tcp { host, port }),
    }
}

impl Listener {
    /// Bind `uri` for `kind`.
    pub fn bind(uri: &str, kind: ListenKind) -> io::Result<Listener> {
        let addr =
            parse_listen(uri).map_err(|msg| io::Error::new(io::ErrorKind::InvalidInput, msg))?;
        match addr {
            ListenAddr::Tcp { host, port } => bind_tcp(host.as_deref(), port, kind),
            ListenAddr::Unix(path) => bind_unix(path, kind),
        }
    }
}

fn bind_tcp(host: Option<&str>, port: u16, kind: ListenKind) -> io::Result<Listener> {
    let host = host.unwrap_or("0.0.0.0");
    let host = if host == "*" { "0.0.0.0" } else { host };
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let mut last_error = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address");
    for addr in addrs {
        match TcpListener::bind(addr) {
            Ok(listener) => {
                let name = listener.local_addr()?.to_string();
                return Ok(Listener {
                    socket: ListenSocket::Tcp(listener),
                    kind,
                    name,
                });
            }
            Err(err) => last_error = err,
        }
    }
    Err(last_error)
}

fn bind_unix(path: String, kind: ListenKind) -> io::Result<Listener> {
    // A socket file left by a server that died is stale: nobody can be listening on it
    // once bind would fail, so remove it (Tarantool does the same).
    if let Ok(meta) = std::fs::symlink_metadata(&path)
        && meta.file_type().is_socket()
    {
        let _ = std::fs::remove_file(&path);
    }
    let listener = UnixListener::bind(&path)?;
    Ok(Listener {
        name: format!("unix/:{path}"),
        socket: ListenSocket::Unix { listener, path },
        kind,
    })
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let ListenSocket::Unix { path, .. } = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_uris() {
        let tcp = |host: Option<&str>, port| ListenAddr::Tcp {
            host: host.map(str::to_string),
            port,
        };
        assert_eq!(parse_listen("3301"), Ok(tcp(None, 3301)));
        assert_eq!(
            parse_listen("127.0.0.1:3301"),
            Ok(tcp(Some("127.0.0.1"), 3301))
        );
        assert_eq!(parse_listen("localhost:0"), Ok(tcp(Some("localhost"), 0)));
        assert_eq!(
            parse_listen("u:p@localhost:5"),
            Ok(tcp(Some("localhost"), 5))
        );
        assert_eq!(parse_listen("[::1]:5"), Ok(tcp(Some("::1"), 5)));
        assert_eq!(
            parse_listen("/tmp/x.sock"),
            Ok(ListenAddr::Unix("/tmp/x.sock".into()))
        );
        assert_eq!(
            parse_listen("unix/:/tmp/y"),
            Ok(ListenAddr::Unix("/tmp/y".into()))
        );
        assert!(parse_listen("x").is_err());
        assert!(parse_listen(":5").is_err());
        assert!(parse_listen("host:99999").is_err());
    }
}
