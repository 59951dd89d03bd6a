//! The relay thread: one per replica, on the master (see `mod.rs`).

/// Placeholder until the relay lands.
pub fn spawn(
    _config: super::RelayConfig,
    _to_tx: impl Fn(super::RelayMsg) -> bool + Send + 'static,
    _commands: crossbeam::channel::Receiver<super::RelayCmd>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    Err(std::io::Error::other("no relay yet"))
}
