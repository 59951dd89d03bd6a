//! Vector clock: the LSN of every server id of the replica set (PROTOCOL.md §7.1).
//!
//! Pure values, owned by whoever holds one: the WAL thread keeps the authoritative vclock,
//! TX a copy, and every xlog/snap header and relay cursor one of its own.
//!
//! A component is either absent or an LSN ≥ 0. Absent reads as −1 (as in Tarantool 1.6,
//! where a server's component appears with LSN 0 once it registers), so a row
//! `(server_id, lsn)` with `lsn > get(server_id)` is new. The signature (the sum of the present
//! components) names files and orders them; comparison is component-wise with absent = −1.
//!
//! Text form (file headers, `box.info.vclock` in logs): `{1: 10, 2: 5}`, ids ascending, `{}`
//! when empty. Msgpack form (replication bodies, key 0x26): a map `{id: lsn}`.

use std::cmp::Ordering;

/// Components of a vclock: server ids are `0..VCLOCK_MAX` (PROTOCOL.md §7.1).
pub use crate::constants::VCLOCK_MAX;

const _: () = assert!(VCLOCK_MAX <= u32::BITS as usize);

/// LSNs of server ids `0..VCLOCK_MAX`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vclock {
    /// LSN per server id; 0 where the id is absent, so derived equality is exact.
    lsn: [i64; VCLOCK_MAX],
    /// Bit `id` is set when component `id` is present.
    map: u32,
}

impl Vclock {
    /// An empty vclock (`{}`).
    pub fn new() -> Vclock {
        Vclock::default()
    }

    /// The LSN of `id`, or −1 if the component is absent (or `id` is out of range).
    pub fn get(&self, id: u32) -> i64 {
        if self.has(id) {
            self.lsn[id as usize]
        } else {
            -1
        }
    }

    /// Whether component `id` is present.
    pub fn has(&self, id: u32) -> bool {
        (id as usize) < VCLOCK_MAX && self.map & (1 << id) != 0
    }

    /// Set component `id` to `lsn` (any value ≥ 0, up or down). Panics on an id out of range
    /// or a negative LSN: both are programmer errors (decoders check their input).
    pub fn set(&mut self, id: u32, lsn: i64) {
        assert!((id as usize) < VCLOCK_MAX, "vclock id {id} out of range");
        assert!(lsn >= 0, "negative LSN {lsn} for server {id}");
        self.lsn[id as usize] = lsn;
        self.map |= 1 << id;
    }

    /// Remove component `id`.
    pub fn clear(&mut self, id: u32) {
        assert!((id as usize) < VCLOCK_MAX, "vclock id {id} out of range");
        self.lsn[id as usize] = 0;
        self.map &= !(1 << id);
    }

    /// Advance component `id` to `lsn`, which must be above the current value: an LSN that
    /// does not grow means a row was applied twice or commit order broke, and Tarantool panics
    /// there too ("LSN for %u is used twice or COMMIT order is broken").
    pub fn follow(&mut self, id: u32, lsn: i64) {
        let current = self.get(id);
        assert!(
            lsn > current,
            "LSN for {id} is used twice or COMMIT order is broken: confirmed: {current}, new: {lsn}"
        );
        self.set(id, lsn);
    }

    /// Increment component `id` and return the new LSN. An absent component starts from 0, so
    /// the first LSN of a server is 1.
    pub fn inc(&mut self, id: u32) -> i64 {
        let lsn = self.get(id).max(0) + 1;
        self.set(id, lsn);
        lsn
    }

    /// The sum of the present components: the name of the files that start at this vclock.
    pub fn signature(&self) -> i64 {
        self.iter().map(|(_, lsn)| lsn).sum()
    }

    /// Whether no component is present.
    pub fn is_empty(&self) -> bool {
        self.map == 0
    }

    /// Component-wise order (absent = −1): `Less` if every component is ≤ and one is <,
    /// `Equal` if all are equal, `None` if some are below and others above.
    pub fn compare(&self, other: &Vclock) -> Option<Ordering> {
        let mut less_or_equal = true;
        let mut greater_or_equal = true;
        for id in 0..VCLOCK_MAX as u32 {
            let (ours, theirs) = (self.get(id), other.get(id));
            less_or_equal &= ours <= theirs;
            greater_or_equal &= ours >= theirs;
        }
        match (less_or_equal, greater_or_equal) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Greater),
            (false, false) => None,
        }
    }

    /// Whether every component is at most `other`'s (absent = −1): all rows up to `self`
    /// are within `other`.
    pub fn is_within(&self, other: &Vclock) -> bool {
        matches!(self.compare(other), Some(Ordering::Less | Ordering::Equal))
    }

    /// The component-wise minimum (absent where either is absent): what both have.
    pub fn meet(&self, other: &Vclock) -> Vclock {
        let mut met = Vclock::new();
        for (id, lsn) in self.iter() {
            if other.has(id) {
                met.set(id, lsn.min(other.get(id)));
            }
        }
        met
    }

    /// The present components, ids ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u32, i64)> + '_ {
        (0..VCLOCK_MAX as u32)
            .filter(|id| self.has(*id))
            .map(|id| (id, self.lsn[id as usize]))
    }

    /// `{1: 10, 2: 5}` as Tarantool prints it (`{}` when empty).
    pub fn to_text(&self) -> String {
        let parts: Vec<String> = self
            .iter()
            .map(|(id, lsn)| format!("{id}: {lsn}"))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }

    /// Parse the text form. Spaces around tokens are optional; an id out of range, a
    /// repeated id, a negative LSN or anything else unexpected gives `None`.
    pub fn parse(text: &str) -> Option<Vclock> {
        let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?.trim();
        let mut vclock = Vclock::new();
        if inner.is_empty() {
            return Some(vclock);
        }
        for part in inner.split(',') {
            let (id, lsn) = part.split_once(':')?;
            let id: u32 = id.trim().parse().ok()?;
            let lsn: i64 = lsn.trim().parse().ok()?;
            if id as usize >= VCLOCK_MAX || lsn < 0 || vclock.has(id) {
                return None;
            }
            vclock.set(id, lsn);
        }
        Some(vclock)
    }

    /// Append the msgpack map `{id: lsn}` (ids ascending, shortest uint encodings).
    pub fn encode_msgpack(&self, out: &mut Vec<u8>) {
        let count = self.map.count_ones();
        rmp::encode::write_map_len(out, count).expect("Vec write");
        for (id, lsn) in self.iter() {
            rmp::encode::write_uint(out, u64::from(id)).expect("Vec write");
            rmp::encode::write_uint(out, lsn as u64).expect("Vec write");
        }
    }

    /// Decode a msgpack map `{id: lsn}` that fills `bytes` exactly. Ids must be in range and
    /// not repeated, LSNs non-negative integers; anything else gives `None`.
    pub fn decode_msgpack(bytes: &[u8]) -> Option<Vclock> {
        let mut data = bytes;
        let count = rmp::decode::read_map_len(&mut data).ok()?;
        if count as usize > VCLOCK_MAX {
            return None;
        }
        let mut vclock = Vclock::new();
        for _ in 0..count {
            let id: u64 = rmp::decode::read_int(&mut data).ok()?;
            let lsn: i64 = rmp::decode::read_int(&mut data).ok()?;
            if id as usize >= VCLOCK_MAX || lsn < 0 || vclock.has(id as u32) {
                return None;
            }
            vclock.set(id as u32, lsn);
        }
        data.is_empty().then_some(vclock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vclock(text: &str) -> Vclock {
        Vclock::parse(text).expect(text)
    }

    #[test]
    fn text_round_trip() {
        for text in [
            "{}",
            "{1: 10}",
            "{1: 10, 2: 5}",
            "{0: 3, 31: 9223372036854775807}",
        ] {
            assert_eq!(vclock(text).to_text(), text);
        }
        assert_eq!(vclock(" {2:5,1 : 10} ").to_text(), "{1: 10, 2: 5}");
        for bad in [
            "",
            "{",
            "1: 2",
            "{1 2}",
            "{32: 1}",
            "{1: -1}",
            "{1: 1, 1: 2}",
            "{1: x}",
        ] {
            assert_eq!(Vclock::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn get_set_follow_inc() {
        let mut clock = Vclock::new();
        assert_eq!(clock.get(1), -1);
        assert_eq!(clock.get(99), -1);
        assert_eq!(clock.inc(1), 1);
        assert_eq!(clock.inc(1), 2);
        clock.follow(2, 7);
        assert_eq!(clock.get(2), 7);
        clock.set(3, 0);
        assert!(clock.has(3));
        assert_eq!(clock.to_text(), "{1: 2, 2: 7, 3: 0}");
        clock.clear(3);
        assert_eq!(clock, vclock("{1: 2, 2: 7}"));
    }

    #[test]
    #[should_panic(expected = "used twice")]
    fn follow_refuses_an_lsn_that_does_not_grow() {
        let mut clock = vclock("{1: 5}");
        clock.follow(1, 5);
    }

    #[test]
    fn signature_is_the_sum() {
        assert_eq!(Vclock::new().signature(), 0);
        assert_eq!(vclock("{1: 10, 2: 5}").signature(), 15);
        assert_eq!(vclock("{0: 1, 1: 36, 2: 5}").signature(), 42);
    }

    #[test]
    fn compare_is_component_wise() {
        let compare = |a: &str, b: &str| vclock(a).compare(&vclock(b));
        assert_eq!(
            compare("{1: 10, 2: 5}", "{1: 10, 2: 5}"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare("{1: 9, 2: 5}", "{1: 10, 2: 5}"),
            Some(Ordering::Less)
        );
        assert_eq!(compare("{1: 10}", "{1: 10, 2: 5}"), Some(Ordering::Less));
        assert_eq!(
            compare("{1: 11, 2: 5}", "{1: 10, 2: 5}"),
            Some(Ordering::Greater)
        );
        assert_eq!(compare("{1: 11, 2: 4}", "{1: 10, 2: 5}"), None);
        assert_eq!(compare("{}", "{1: 0}"), Some(Ordering::Less));
    }

    #[test]
    fn meet_and_within() {
        let a = Vclock::parse("{1: 10, 2: 5, 3: 1}").unwrap();
        let b = Vclock::parse("{1: 7, 2: 9}").unwrap();
        assert_eq!(a.meet(&b), Vclock::parse("{1: 7, 2: 5}").unwrap());
        assert_eq!(b.meet(&a), a.meet(&b));
        assert!(a.meet(&b).is_within(&a) && a.meet(&b).is_within(&b));
        assert!(a.is_within(&a));
        assert!(!a.is_within(&b) && !b.is_within(&a));
        assert!(Vclock::new().is_within(&b));
    }

    #[test]
    fn msgpack_round_trip() {
        for text in ["{}", "{1: 10, 2: 5}", "{0: 1, 31: 4294967296}"] {
            let mut out = Vec::new();
            vclock(text).encode_msgpack(&mut out);
            assert_eq!(Vclock::decode_msgpack(&out), Some(vclock(text)));
        }
        let mut out = Vec::new();
        vclock("{1: 10, 2: 300}").encode_msgpack(&mut out);
        assert_eq!(out, [0x82, 0x01, 0x0a, 0x02, 0xcd, 0x01, 0x2c]);
        // Out-of-range id, negative LSN, repeated id, trailing bytes, not a map.
        for bad in [
            &[0x81, 0x20, 0x01][..],
            &[0x81, 0x01, 0xff],
            &[0x82, 0x01, 0x01, 0x01, 0x02],
            &[0x80, 0x00],
            &[0x90],
        ] {
            assert_eq!(Vclock::decode_msgpack(bad), None, "{bad:x?}");
        }
    }
}
