-- before box.cfg{}, box.cfg is a function and box.space needs it
type(box.cfg)
box.space
-- validation happens before anything is applied
box.cfg{nosuch = 1}
box.cfg{listen = true}
box.cfg{log_level = 'high'}
box.cfg{wal_mode = 'bad'}
box.cfg{rows_per_wal = 1}
box.cfg{readahead = 1}
box.cfg{replication_source = 'no port'}
box.cfg{force_recovery = 1}
type(box.cfg)
-- the first call may set static options; aliases map to the 1.6 names
box.cfg{log_level = 6, checkpoint_count = 3, memtx_memory = 536870912, force_recovery = true}
type(box.cfg)
box.cfg.log_level, box.cfg.snapshot_count, box.cfg.checkpoint_count
box.cfg.slab_alloc_arena, box.cfg.memtx_memory
box.cfg.panic_on_wal_error, box.cfg.panic_on_snap_error, box.cfg.force_recovery
box.cfg.wal_mode, box.cfg.rows_per_wal, box.cfg.snap_dir, box.cfg.memtx_dir
box.cfg.listen, box.cfg.replication_source
-- static options can not change later; setting the same value is fine
box.cfg{wal_dir = 'elsewhere'}
box.cfg{wal_dir = '.'}
box.cfg{rows_per_wal = 100}
-- dynamic options can
box.cfg{log_level = 5, snapshot_period = 3600, read_only = true}
box.cfg.log_level, box.cfg.snapshot_period, box.cfg.checkpoint_interval, box.cfg.read_only
box.cfg{wal_mode = 'fsync'}
box.cfg{wal_mode = 'none'}
box.cfg.wal_mode
box.cfg{replication = {'127.0.0.1:3301', 3302}}
box.cfg.replication_source
box.cfg{replication_source = ''}
box.cfg.replication_source
box.cfg{checkpoint_count = 2, snapshot_count = 3}
box.cfg.snapshot_count
-- box.cfg() with no table changes nothing
box.cfg()
box.cfg.snapshot_count
