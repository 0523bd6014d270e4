//! Every limit and timeout of the server, in one place, with units in the names.

use std::time::Duration;

/// Largest form body read from a PUT/POST. etcd 3.4's v2 API has no limit of its own:
/// Go's `Request.ParseForm` stops at 10 MiB and answers `http: POST too large`, and
/// etcd turns that into error 210. We keep the same number so that any value real
/// etcd accepts (2 MiB values work there) is accepted here too.
pub const REQUEST_BODY_BYTES_MAX: usize = 10 << 20;

/// How long a client may take to send a whole request body, from the moment a handler
/// starts reading it. etcd 3.4 sets no `ReadTimeout` on its client `http.Server`
/// (embed/serve.go), so a body trickled byte by byte holds its goroutine forever; we
/// cut it off instead. 60 s lets a body of [`REQUEST_BODY_BYTES_MAX`] through a link of
/// 1.4 Mbit/s, and a form of a few KiB through anything; a slower body is answered with
/// error 210 and its connection closed.
pub const REQUEST_BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Buffered events per watcher, as etcd's watcher channel (100). A watcher whose
/// buffer is full is dropped by the store, which ends its response, as in etcd.
pub const WATCH_EVENTS_BUFFERED_MAX: usize = 100;

/// How many watchers may wait at once on this server. etcd has no limit; this one only
/// guards memory. Beyond it a watch is refused with error 300 (HTTP 500).
pub const WATCHERS_MAX: usize = 200_000;

/// How long a watch response stays open without an event. etcd 3.4 uses
/// `math.MaxInt64` nanoseconds (`defaultWatchTimeout`), i.e. never; so do we.
pub const WATCH_TIMEOUT: Option<Duration> = None;

/// How often the server notes the leader it sees, for `/v2/stats/self`'s leader
/// uptime: 500 ms, the pace of the expiry ticker that did it before expiry moved into
/// the node, keeps that uptime within half a second.
pub const LEADER_SEEN_TICK: Duration = Duration::from_millis(500);

/// How long a request waits for consensus, as etcd's `ReqTimeout`:
/// 5 s for queueing and disk, plus two election timeouts for a possible election.
pub fn request_timeout(election_timeout_ms: u64) -> Duration {
    Duration::from_secs(5) + Duration::from_millis(2 * election_timeout_ms)
}

/// How long `/health` waits for its quorum read (etcd: 1 s).
pub const HEALTH_QUORUM_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// How long shutdown waits for open connections (watches included) to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// etcd's largest election timeout, in milliseconds (`maxElectionMs`).
pub const ELECTION_TIMEOUT_MS_MAX: u64 = 50_000;

/// How long a client may take to send a request head (hyper's `header_read_timeout`,
/// and the first head a new connection sends). Bounds idle and slowloris connections.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a new connection's first request is read to decide whether it is a
/// watch; a longer head is handed to hyper as is.
pub const REQUEST_HEAD_PEEK_BYTES_MAX: usize = 8 << 10;

/// How many header lines a request head may have: hyper's default. The connection
/// layer's own parser reads as many, so it checks every head hyper would serve.
/// (Go has no count limit, only `MaxHeaderBytes`, 1 MiB.)
pub const REQUEST_HEADERS_MAX: usize = 100;

/// The largest HTTP/2 header block (its frames, as sent) whose `:authority` the
/// connection layer mends (`conn::h2_authority`); a larger one reaches h2 unchanged.
/// hyper's own limit on a decoded header list is 16 KiB, which HPACK only shrinks.
pub const H2_HEADER_BLOCK_BYTES_MAX: usize = 64 << 10;

/// How many bytes a client may pipeline behind a pending watch before it is closed.
pub const PIPELINED_BYTES_MAX: usize = 64 << 10;

/// How long a write to a client may block (a client that stopped reading its watch),
/// on the lean path and under hyper alike; the connection is then closed. Go has no
/// such limit in etcd 3.4 (no `WriteTimeout`); without one a watcher that never reads
/// would hold its connection and buffers for good.
pub const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Pending connections the kernel may queue per listener (it caps this at somaxconn).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Largest v3 write proposed through the log, encoded, unless `--max-request-bytes`
/// says otherwise (etcd's default, 1.5 MiB); a larger one is refused with etcd's
/// "request is too large". See [`RequestBytesMax`].
pub const V3_PROPOSAL_BYTES_MAX: usize = 3 << 19;

/// What etcd adds to `--max-request-bytes` for gRPC's own framing to make its gRPC
/// server's message limit (`grpcOverheadBytes`, 512 KiB).
pub const GRPC_OVERHEAD_BYTES: usize = 512 << 10;

/// Largest gRPC message a v3 call may send by default: [`V3_PROPOSAL_BYTES_MAX`] plus
/// [`GRPC_OVERHEAD_BYTES`].
pub const GRPC_MESSAGE_BYTES_MAX: usize = V3_PROPOSAL_BYTES_MAX + GRPC_OVERHEAD_BYTES;

/// The largest message gRPC's framing can announce (its length prefix is 4 bytes): a
/// limit above it refuses nothing more.
const GRPC_FRAME_BYTES_MAX: usize = u32::MAX as usize;

/// Above this `--max-request-bytes`, etcd warns at start "exceeded recommended request
/// limit" (10 MiB), and so does Beacon.
pub const REQUEST_BYTES_RECOMMENDED_MAX: u64 = 10 << 20;

/// `--max-request-bytes`, and the limits that follow from it as they follow in etcd.
///
/// etcd takes any unsigned value and so does Beacon. What one request may make the
/// server hold stays bounded by the value the operator chose: tonic (as grpc-go)
/// allocates a message's announced length once it is under the limit, and gRPC cannot
/// announce more than 4 GiB, so [`Self::grpc_message`] never exceeds that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestBytesMax {
    proposal: usize,
}

impl RequestBytesMax {
    /// The limits for `--max-request-bytes=max_request_bytes`.
    pub fn new(max_request_bytes: u64) -> Self {
        RequestBytesMax {
            proposal: usize::try_from(max_request_bytes).unwrap_or(usize::MAX),
        }
    }

    /// Largest v3 request proposed through the log, encoded (etcd's check in
    /// `processInternalRaftRequestOnce`).
    pub fn proposal(self) -> usize {
        self.proposal
    }

    /// Largest gRPC message a call may send: the proposal limit plus
    /// [`GRPC_OVERHEAD_BYTES`] (etcd's `grpc.MaxRecvMsgSize`). A watch answer past it
    /// is cut in fragments when its watcher asked for them, as etcd cuts at the same
    /// size.
    pub fn grpc_message(self) -> usize {
        self.proposal
            .saturating_add(GRPC_OVERHEAD_BYTES)
            .min(GRPC_FRAME_BYTES_MAX)
    }

    /// Largest JSON request the gateway reads (`/v3/...`): a body, or one request of a
    /// stream. etcd's gateway reads any body and its gRPC server then refuses a message
    /// over [`Self::grpc_message`]; base64 makes the largest such message's JSON a third
    /// larger, and field names add more, so four times that bounds every JSON request
    /// etcd would take.
    pub fn gateway_request(self) -> usize {
        self.grpc_message().saturating_mul(4)
    }
}

impl Default for RequestBytesMax {
    fn default() -> Self {
        RequestBytesMax::new(V3_PROPOSAL_BYTES_MAX as u64)
    }
}

/// Requests of a gateway stream (watch, keep-alive) read ahead of the service taking
/// them; past it, the gateway reads no more of the body until the service catches up.
pub const GATEWAY_STREAM_REQUESTS_QUEUED_MAX: usize = 16;

/// Keep-alive answers a lease stream may have waiting for its client to read them;
/// past it, the stream reads no more requests until the client catches up.
pub const LEASE_KEEP_ALIVES_QUEUED_MAX: usize = 16;

/// Leaders an `Election.Observe` stream may have waiting for its client to read them
/// (etcd's recipe hands them over one at a time); past it, the observer waits, and
/// reads what changed meanwhile from storage.
pub const OBSERVE_RESPONSES_QUEUED_MAX: usize = 16;

/// Most times a v2v3 write (`--experimental-enable-v2v3`) reads its keys and tries to
/// commit, when other writes keep changing them in between (etcd's tries forever).
pub const V2V3_WRITE_ATTEMPTS_MAX: usize = 16;

/// Watch answers a stream may have waiting for its client to read them (etcd's
/// `chanBufLen`); past it, the stream's watchers wait, and catch up from storage.
pub const WATCH_RESPONSES_QUEUED_MAX: usize = 128;

/// Most revisions one catch-up answer of a watcher covers (etcd's batch).
pub const WATCH_CATCH_UP_REVISIONS_MAX: i64 = 1000;

/// Most watchers one watch stream may hold; a create past it is refused as etcd refuses
/// a bad one (a cancelled create with the reason). etcd has no limit.
pub const WATCHERS_PER_STREAM_MAX: usize = 100_000;

/// How often a watcher that asked for progress notifications and heard nothing since
/// hears the current revision, unless `--experimental-watch-progress-notify-interval`
/// says otherwise (etcd's default, 10 minutes).
pub const WATCH_PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);

/// The shortest progress notification interval: a shorter flag is raised to it, with a
/// warning (etcd's minWatchProgressInterval).
pub const WATCH_PROGRESS_NOTIFY_INTERVAL_MIN: Duration = Duration::from_millis(100);

/// How long a `simple` auth token lives without use, unless `--auth-token-ttl` says
/// otherwise (etcd's default, 300 seconds).
pub const AUTH_TOKEN_TTL_DEFAULT: Duration = Duration::from_secs(300);

/// How many times a `jwt` login checks its password while the auth store keeps
/// changing under it (etcd retries without bound); the last check's token may then be
/// refused as stale, and the client logs in again.
pub const LOGIN_CHECKS_MAX: u32 = 8;

/// Most calls one HTTP/2 connection may have open at once, unless
/// `--max-concurrent-streams` says otherwise (etcd's default has no bound).
pub const GRPC_STREAMS_PER_CONNECTION_MAX: u32 = 1024;

/// How long a gRPC connection may be silent before the server pings it
/// (`--grpc-keepalive-interval`; grpc-go's default, so etcd's).
pub const GRPC_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2 * 60 * 60);

/// How long the server waits for the answer to that ping before closing the
/// connection (`--grpc-keepalive-timeout`; grpc-go's and etcd's default).
pub const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// A gRPC client that pings sooner than this after its previous ping, three times in
/// a row while it has a call open, is told GOAWAY `too_many_pings` and closed
/// (`--grpc-keepalive-min-time`; etcd's default). See `conn::ping_policy`.
pub const GRPC_PING_INTERVAL_MIN: Duration = Duration::from_secs(5);

/// The minimum time between a client's pings while it has no call open (grpc-go's
/// defaultPingTimeout, under etcd's "PermitWithoutStream: false").
pub const GRPC_IDLE_PING_INTERVAL_MIN: Duration = Duration::from_secs(2 * 60 * 60);

/// Pings in a row sooner than the minimum a client is forgiven; the next one closes
/// its connection (grpc-go's maxPingStrikes).
pub const GRPC_PING_STRIKES_MAX: u8 = 2;

/// The minimum when `--grpc-keepalive-min-time` is 0: etcd then hands grpc-go none,
/// and grpc-go's own default applies.
pub const GRPC_PING_INTERVAL_MIN_UNSET: Duration = Duration::from_secs(5 * 60);

/// The v3 keyspace's space quota when `--quota-backend-bytes` is 0 (etcd's default,
/// 2 GiB); a negative flag turns the quota off, as in etcd.
pub const QUOTA_BACKEND_BYTES_DEFAULT: u64 = 2 << 30;

/// The quota above which etcd warns that it is past what it was made for (8 GiB);
/// Beacon warns alike.
pub const QUOTA_BACKEND_BYTES_WARN: u64 = 8 << 30;

/// Bytes of a backup sent in one `Maintenance.Snapshot` message: etcd's
/// `snapshotSendBufferSize` (32 KiB), so a client sees the same chunks.
pub const SNAPSHOT_CHUNK_BYTES: usize = 32 * 1024;

/// Chunks of a backup read ahead of a slow client: what one backup holds in memory is
/// this many chunks (plus the one being read), whatever the snapshot's size.
pub const SNAPSHOT_CHUNKS_QUEUED_MAX: usize = 4;

/// How long a backup waits for the snapshot it streams to be written. Encoding is
/// linear in the data (seconds for millions of keys), so this is generous; etcd has no
/// such wait, as it streams its database file as it is.
pub const SNAPSHOT_BUILD_TIMEOUT: Duration = Duration::from_secs(300);

/// A periodic `--auto-compaction-retention` longer than this compacts once per this
/// interval rather than once per retention (etcd's compactor caps its interval at an
/// hour), to the revision sampled a retention ago.
pub const AUTO_COMPACTION_INTERVAL_MAX: Duration = Duration::from_secs(60 * 60);

/// How many revision samples a periodic compaction interval holds: etcd's compactor
/// samples the revision every tenth of it (`retryDivisor`), and retries a failed
/// compaction at that pace too.
pub const AUTO_COMPACTION_SAMPLES_PER_INTERVAL: u32 = 10;

/// The shortest wait between two checks of the periodic compactor. etcd has none: a
/// retention under a second, or a negative one (which etcd accepts and reads as "keep
/// nothing old"), spins its loop and proposes a compaction on every turn. Beacon checks
/// at most ten times a second, which bounds the entries the compactor adds to the log.
pub const AUTO_COMPACTION_CHECK_INTERVAL_MIN: Duration = Duration::from_millis(100);

/// How often the revision compactor (`--auto-compaction-mode=revision`) compacts to
/// the current revision less the retention: every 5 minutes, etcd's `revInterval`, and
/// as long again after a compaction that failed.
pub const AUTO_COMPACTION_REVISION_INTERVAL: Duration = Duration::from_secs(5 * 60);
