//! TX's side of replication: the registries of relays and appliers.
