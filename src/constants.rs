//! Every limit of the server, each with the reason for its value.
//!
//! Owned by nobody: plain constants read by every thread. A limit that is not here is a bug:
//! every queue, buffer, batch and per-turn budget in Tarantula is bounded by one of these.

/// The Tarantool version we speak on the wire and print in greetings. Connectors choose the
/// protocol dialect from it (1.6.9: CALL is type 6, no ID request, no VOTE).
pub const TARANTOOL_VERSION: &str = "1.6.9";

/// Tarantula's own version, from Cargo.toml.
pub const TARANTULA_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Size of an iproto or console greeting: two 64-byte lines.
pub const GREETING_SIZE: usize = 128;

/// Fiber ids below this are reserved, as in Tarantool (1 is the scheduler); the first user
/// fiber is 101, so log lines read `main/101/...` like Tarantool's.
pub const FIBER_ID_MIN: u64 = 101;

/// Fibers resumed in one loop turn before the loop polls sockets again. Bounds the latency a
/// burst of ready fibers adds to network I/O, while keeping the per-turn poll cost amortised.
pub const FIBER_RESUMES_PER_TURN_MAX: usize = 4096;

/// How deep `fiber.create` may nest immediate starts (a fiber creating a fiber from its first
/// slice, and so on). Each level is a nested `lua_resume` on the TX thread's C stack; past this
/// depth the new fiber is queued instead of started at once, so recursion cannot overflow it.
pub const FIBER_START_NESTING_MAX: usize = 64;

/// Finished fiber coroutines kept for reuse. Creating a coroutine (and collecting it later)
/// is most of what `fiber.create` costs; reusing one costs a resume. Idle coroutines hold
/// about 1 KiB each, so the pool stays small.
pub const FIBER_POOL_MAX: usize = 1024;

/// Fiber coroutines held through mlua handles; the rest go through the Lua registry. A
/// handle resumes without a registry lookup, but handles share one auxiliary Lua stack with
/// every other Lua value Rust holds, and LuaJIT caps a stack a C caller grows at 8,000
/// slots (LUAI_MAXCSTACK), so fibers take half.
pub const FIBER_THREAD_HANDLES_MAX: usize = 4096;

/// Live fibers at once. Each costs a Lua coroutine (about 1 KiB plus its stack); a million is
/// far beyond any sane workload yet keeps a runaway `while true do fiber.create(f) end` from
/// eating the machine.
pub const FIBER_COUNT_MAX: usize = 1_000_000;

/// Maximum size of one console statement (a line, or lines up to the delimiter). Scripts sent
/// through `tarantoolctl` or net.box console can be large, but not unbounded.
pub const CONSOLE_STATEMENT_SIZE_MAX: usize = 16 * 1024 * 1024;

/// Bytes of console replies queued for one client before its fiber waits for the client to
/// read. A client that stops reading holds at most this much server memory.
pub const CONSOLE_OUTPUT_SIZE_MAX: usize = 4 * 1024 * 1024;

/// Bytes read from a socket per read call.
pub const SOCKET_READ_CHUNK: usize = 64 * 1024;

/// Client connections (console and iproto together) served at once; accept pauses above it.
pub const CONNECTION_COUNT_MAX: usize = 10_000;

/// Bytes a `net.box` connection reads per call before it files the replies it holds; the
/// replies themselves are bounded by the requests in flight (each has a waiting fiber).
pub const NETBOX_READAHEAD: usize = 1024 * 1024;

/// Outgoing `net.box` connections open at once.
pub const NETBOX_CONNECTION_COUNT_MAX: usize = 10_000;

/// Remembered answers of access checks (user, object); the cache starts over when full.
pub const ACCESS_CACHE_MAX: usize = 65_536;

/// Recovery logs a progress line every this many rows, as Tarantool does.
pub const RECOVERY_PROGRESS_ROWS: u64 = 100_000;

/// Batches queued for the WAL thread; when full, TX keeps adding to the batch it holds.
pub const WAL_QUEUE_CAPACITY: usize = 64;

/// Bytes of rows a relay collects before one write to its replica's socket: large enough
/// that a catch-up of millions of rows makes few system calls, small enough to keep per
/// replica (the JOIN's read view is streamed in such chunks, tuples dropped as they go).
pub const RELAY_WRITE_CHUNK_SIZE: usize = 1024 * 1024;

/// How long one write to a replica's socket may block before the relay gives up on the
/// replica: a replica that reads nothing for this long is gone or stuck, and the socket
/// buffers it fills are the master's memory.
pub const RELAY_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a relay waits, after the final OK of a JOIN, for the replica's SUBSCRIBE. The
/// replica writes its whole snapshot first, so this is generous; it only frees the thread
/// of a replica that died in between without closing its socket.
pub const RELAY_SUBSCRIBE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(3600);

/// Read timeout of a relay's socket while it waits for SUBSCRIBE: how soon it notices a
/// Stop from TX (it checks between timeouts).
pub const RELAY_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Largest packet a relay reads from its replica (SUBSCRIBE, acks): both carry two UUIDs
/// and a vclock at most (under 1 KiB); more is not a replica speaking, and bounds the
/// buffer a peer can make the relay hold.
pub const RELAY_REQUEST_SIZE_MAX: usize = 64 * 1024;

/// Acks a relay's socket reader queues for the relay loop; when full, the reader stops
/// reading (backpressure on the replica's acks, which are cumulative: the last one counts).
pub const RELAY_ACK_QUEUE_CAPACITY: usize = 64;

/// At most one `Progress` (how far a replica is) per this interval, so that neither rows
/// streaming nor the replica's acks wake TX per WAL write; the last state is sent this long
/// after it changed at the latest.
pub const RELAY_PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Capacity of the TX inbox (messages from the WAL, relay, applier, coio and stdin threads).
/// Senders block when it is full, which is backpressure on those threads, never on TX.
pub const TX_INBOX_CAPACITY: usize = 4096;

/// Worker threads that run blocking calls (file I/O of `fio`, name resolution) for fibers.
pub const COIO_THREADS: usize = 4;

/// Jobs queued for the coio workers; a fiber submitting past it waits for a free slot.
pub const COIO_QUEUE_CAPACITY: usize = 1024;

/// mio events taken per poll call.
pub const POLL_EVENTS_MAX: usize = 1024;

/// Lines the interactive console keeps in its history.
pub const CONSOLE_HISTORY_MAX: usize = 1000;

/// Server ids are 1..VCLOCK_MAX-1 (id 0 is reserved): the vclock has this many components.
pub const VCLOCK_MAX: usize = 32;

/// Commands queued from TX to one relay or applier thread: a handful at a time (acks are
/// sent with `try_send` and may be dropped when the thread is behind; the next one, or the
/// answer to the master's next heartbeat, covers).
pub const REPLICATION_CHANNEL_CAPACITY: usize = 64;

/// Largest iproto packet accepted. A packet is read into memory whole before it runs, so
/// this bounds what one connection can make the server hold; 1.6 allowed 2 GiB, but tuples
/// are capped far lower (`slab_alloc_maximal`, 1 MiB by default, at most this much).
pub const IPROTO_PACKET_SIZE_MAX: usize = 128 * 1024 * 1024;

/// Largest iproto reply. A reply is a packet too: peers read it whole, and Tarantula's own
/// client accepts no more than it sends; a bigger reply becomes an ER_MEMORY_ISSUE error.
/// The length prefix could hold 4 GiB.
pub const IPROTO_REPLY_SIZE_MAX: usize = IPROTO_PACKET_SIZE_MAX;
const _: () = assert!(IPROTO_REPLY_SIZE_MAX <= u32::MAX as usize);

/// Bytes of replies queued for one iproto client above which its next requests wait: a
/// client that does not read holds at most this of server memory, plus one reply, plus the
/// replies of its requests already running in fibers (at most `net_msg_max`, and at most
/// [`IPROTO_REQUESTS_PER_TURN_MAX`] started per loop turn).
pub const IPROTO_OUTPUT_SIZE_MAX: usize = 4 * 1024 * 1024;

/// Requests of one iproto connection run per loop turn before the loop serves the others:
/// a client pipelining thousands of requests cannot starve the rest.
pub const IPROTO_REQUESTS_PER_TURN_MAX: usize = 256;

/// Replies sent at a time while one client alone has work: it reads them and sends its next
/// requests while the server runs the rest of its batch (select and call at 1 connection
/// with 64 requests in flight: about 1.7 times the requests a second of one send per batch).
/// 16 rather than 32: ping, select and call at 1 x 64 1.2-1.5 times as fast, replace the
/// same (the extra sends cost TX more than the client's earlier start gains there); 8 made
/// ping faster again but call and replace slower.
pub const IPROTO_REPLY_BATCH: usize = 16;

/// A poll that took longer than this slept: nothing was ready when it began.
pub const POLL_SLEPT: std::time::Duration = std::time::Duration::from_micros(5);

/// [`IPROTO_REPLY_BATCH`] when the loop's last poll slept ([`POLL_SLEPT`]): the server
/// waits for its client, so the client should get its replies sooner even at the cost of
/// more sends (ping at 1 x 64: 1.4 to 2 times the requests a second of a batch of 16; call
/// and replace, which keep the server busy, within 10% either way).
pub const IPROTO_REPLY_BATCH_IDLE: usize = 8;

/// SELECTs in a row run together, their tree searches overlapping their cache misses
/// (`Db::select_many`): at most this many (select at 4 connections x 64 in flight: 8
/// measured a few percent slower; `BpsTree::bounds_many` takes up to 16 at once).
pub const IPROTO_SELECT_BATCH: usize = 16;

/// INSERTs and REPLACEs in a row decoded together, so that their primary key searches
/// start loading what they will touch before the first runs (`Db::warm_writes`), at most
/// this many (`BpsTree::bounds_many` takes up to 16 at once).
pub const IPROTO_WRITE_BATCH: usize = 16;

/// Request bodies kept for reuse by the requests that run in fibers (CALL, EVAL, ...), at
/// most this many, each of at most [`IPROTO_BODY_POOLED_SIZE_MAX`] bytes: a pipeline of
/// calls then copies its bodies without allocating.
pub const IPROTO_BODY_POOL_MAX: usize = 256;
/// See [`IPROTO_BODY_POOL_MAX`].
pub const IPROTO_BODY_POOLED_SIZE_MAX: usize = 4096;

/// Changes handed to the WAL thread at a time while one client alone has work, so that the
/// WAL writes them while TX runs the rest of the batch (16 rather than 32: replace at 1
/// connection x 64 with wal_mode 'write' about 8% faster; the replies still wait for the
/// WAL, so the batch the client sees is the WAL's).
pub const IPROTO_WAL_BATCH: usize = 16;

/// Rows an applier hands TX in one message. TX applies a message's rows as one batch, so this
/// bounds TX's work per message; with the bounded TX inbox it makes a fast master wait for a
/// slow replica instead of filling the replica's memory.
pub const APPLIER_BATCH_ROWS_MAX: usize = 1024;

/// Bytes of rows an applier hands TX in one message, for the same reason as
/// [`APPLIER_BATCH_ROWS_MAX`] when rows are big (one row bigger than this still goes alone).
pub const APPLIER_BATCH_SIZE_MAX: usize = 1024 * 1024;

/// Bytes an applier asks for in one read of its socket: one read is at most one batch of
/// rows in flight to TX, and the buffer holds at most this plus one partial packet.
pub const APPLIER_READ_SIZE: usize = 64 * 1024;

/// An applier's socket read timeout, and how often it polls a pending connect: between two
/// ticks it looks at TX's commands, so Stop and acks wait at most this long.
pub const APPLIER_READ_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// How long an applier waits before it reconnects after a network error: Tarantool's fixed
/// "will retry every 1.00 second".
pub const APPLIER_RECONNECT_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Heartbeat periods (`replication_timeout`) of silence after which an applier that has seen
/// a heartbeat on the connection calls the link dead, as 1.7+ does (a 1.6 master sends no
/// heartbeats, so there silence is normal and never counted).
pub const APPLIER_DEAD_LINK_TIMEOUTS: u32 = 4;

/// Batches of rows an applier hands TX before TX has written them (each at most
/// [`APPLIER_BATCH_SIZE_MAX`]): the replica's memory for rows in transit stays bounded when
/// its WAL is slower than the master, and the master's relay waits on TCP meanwhile.
pub const APPLIER_BATCHES_IN_FLIGHT_MAX: usize = 8;
