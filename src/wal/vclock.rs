//! Vector clocks (temporary; replaced by the codec branch's module).

pub const VCLOCK_MAX: usize = 32;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vclock {
    lsn: [i64; VCLOCK_MAX],
}

impl Vclock {
    pub fn new() -> Vclock {
        Vclock::default()
    }
    pub fn get(&self, id: u32) -> i64 {
        self.lsn.get(id as usize).copied().unwrap_or(0)
    }
    pub fn set(&mut self, id: u32, lsn: i64) {
        if let Some(slot) = self.lsn.get_mut(id as usize) {
            *slot = lsn;
        }
    }
    pub fn inc(&mut self, id: u32) -> i64 {
        let next = self.get(id) + 1;
        self.set(id, next);
        next
    }
    pub fn signature(&self) -> i64 {
        self.lsn.iter().sum()
    }
    pub fn iter(&self) -> impl Iterator<Item = (u32, i64)> + '_ {
        self.lsn
            .iter()
            .enumerate()
            .filter(|(_, lsn)| **lsn != 0)
            .map(|(id, lsn)| (id as u32, *lsn))
    }
}
