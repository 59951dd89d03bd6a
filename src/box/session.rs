//! Sessions: who a connection (or the server itself) acts as.
//!
//! Owned by the TX thread. Session 1 is the server's own: the init script, the interactive
//! console and background fibers run in it as admin. Every client connection gets a session
//! of its own; a fiber runs in the session of the fiber that created it.

use super::schema::{ADMIN, GUEST};

/// The server's own session.
pub const ADMIN_SESSION: u32 = 1;

/// What kind of peer a session serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    Background,
    Console,
    Binary,
}

impl SessionKind {
    pub fn name(self) -> &'static str {
        match self {
            SessionKind::Background => "background",
            SessionKind::Console => "console",
            SessionKind::Binary => "binary",
        }
    }
}

/// One session.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: u32,
    pub kind: SessionKind,
    /// The user requests run as (changed by `box.session.su`).
    pub uid: u32,
    /// The peer's address, if a connection.
    pub peer: Option<String>,
}

/// Every live session.
pub struct Sessions {
    sessions: crate::fiber::IdMap<Session>,
    next_id: u32,
}

impl Default for Sessions {
    fn default() -> Sessions {
        let mut sessions = crate::fiber::IdMap::default();
        sessions.insert(
            u64::from(ADMIN_SESSION),
            Session {
                id: ADMIN_SESSION,
                kind: SessionKind::Background,
                uid: ADMIN,
                peer: None,
            },
        );
        Sessions {
            sessions,
            next_id: ADMIN_SESSION + 1,
        }
    }
}

impl Sessions {
    /// Open a session for a peer, running as `uid`.
    pub fn open(&mut self, kind: SessionKind, uid: u32, peer: Option<String>) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(ADMIN_SESSION + 1);
        self.sessions.insert(
            u64::from(id),
            Session {
                id,
                kind,
                uid,
                peer,
            },
        );
        id
    }

    pub fn close(&mut self, id: u32) -> Option<Session> {
        if id == ADMIN_SESSION {
            return None;
        }
        self.sessions.remove(&u64::from(id))
    }

    pub fn get(&self, id: u32) -> Option<&Session> {
        self.sessions.get(&u64::from(id))
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut Session> {
        self.sessions.get_mut(&u64::from(id))
    }

    /// The user session `id` runs as. Fibers that outlive their session keep its user
    /// (see `lua::session::close`); an unknown id gets the least privilege, guest.
    pub fn uid(&self, id: u32) -> u32 {
        self.sessions
            .get(&u64::from(id))
            .map_or(GUEST, |session| session.uid)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_session_always_exists() {
        let mut sessions = Sessions::default();
        assert_eq!(sessions.uid(ADMIN_SESSION), ADMIN);
        let id = sessions.open(SessionKind::Binary, 0, Some("127.0.0.1:5".into()));
        assert_eq!(id, 2);
        assert_eq!(sessions.uid(id), 0);
        assert!(sessions.close(ADMIN_SESSION).is_none());
        assert!(sessions.close(id).is_some());
        // A closed session's id no longer grants anything.
        assert_eq!(sessions.uid(id), GUEST);
    }
}
