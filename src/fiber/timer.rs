//! Deadlines of waiting fibers, as a min-heap that sets the loop's poll timeout.
//!
//! Owned by the TX thread. Entries are never removed early: a fiber woken before its
//! deadline bumps its wait sequence number, and the stale entry is skipped when it expires.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::FiberId;

/// One deadline: (when, fiber, the fiber's wait sequence number at registration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline {
    pub at: Instant,
    pub fiber: FiberId,
    pub wait_seq: u64,
}

/// Pending deadlines, earliest first.
#[derive(Default)]
pub struct TimerHeap {
    heap: BinaryHeap<Reverse<Deadline>>,
}

impl TimerHeap {
    pub fn push(&mut self, deadline: Deadline) {
        self.heap.push(Reverse(deadline));
    }

    /// The earliest deadline, stale or not (a stale one only causes an early wakeup).
    pub fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(d)| d.at)
    }

    /// Remove and return the earliest deadline if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Deadline> {
        match self.heap.peek() {
            Some(Reverse(d)) if d.at <= now => self.heap.pop().map(|Reverse(d)| d),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let start = Instant::now();
        let mut timers = TimerHeap::default();
        for (ms, fiber) in [(30, 1), (10, 2), (20, 3)] {
            let at = start + Duration::from_millis(ms);
            timers.push(Deadline {
                at,
                fiber,
                wait_seq: 0,
            });
        }
        assert_eq!(timers.next_at(), Some(start + Duration::from_millis(10)));
        assert!(timers.pop_due(start).is_none());
        let now = start + Duration::from_millis(25);
        let order: Vec<_> = std::iter::from_fn(|| timers.pop_due(now))
            .map(|d| d.fiber)
            .collect();
        assert_eq!(order, vec![2, 3]);
        assert_eq!(timers.len(), 1);
    }
}
