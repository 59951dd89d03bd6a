//! The write-ahead log: vector clocks, the `.xlog`/`.snap` codec and directory, the WAL
//! writer thread and TX's side of it (the journal).

pub mod journal;
pub mod vclock;
pub mod writer;
