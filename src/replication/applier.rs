//! The applier thread: one per replication source, on the replica (see `mod.rs`).

/// Placeholder until the applier lands.
pub fn spawn(
    _config: super::ApplierConfig,
    _to_tx: impl Fn(super::ApplierMsg) -> bool + Send + 'static,
    _commands: crossbeam::channel::Receiver<super::ApplierCmd>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    Err(std::io::Error::other("no applier yet"))
}
