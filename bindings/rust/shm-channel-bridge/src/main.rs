//! shm-channel-bridge: forwards shm_channel streams from one machine to another over Zenoh.
//!
//! One process per machine. On the sending machine `--export NAME` opens the local stream
//! `NAME` as its consumer and publishes every message on Zenoh; on the receiving machine
//! `--import NAME` subscribes and writes every message into the local stream `NAME` as its
//! producer. Both sides keep a small state file (`--state-dir`), so that a bridge killed and
//! restarted loses and duplicates nothing (the exact guarantee is in README.md of this crate).
//!
//! Wire (key expressions under `--prefix`, default `shm_channel`):
//!   `<prefix>/<NAME>/data`  exporter -> importer: u64 LE seq | u8 kind (0 message, 1 end) | bytes
//!   `<prefix>/<NAME>/ack`   importer -> exporter: u64 LE next expected seq | u64 LE session id |
//!                           u64 LE busy (blocked on a full local ring), after progress and as
//!                           a heartbeat every 100 ms.
//! The exporter keeps every message it took from the ring in an append-only spool file
//! (written before the message is released from the ring) until the importer acknowledges it;
//! it sends each at most `--window` bytes ahead of the acknowledgement, so a slow remote
//! consumer stops the exporter, whose local ring fills, which blocks the local producer. The
//! importer writes only the next expected sequence number and drops anything else (duplicates
//! and messages after a gap); it records (seq, ring end position) in a journal before each
//! write, and on restart derives the next expected seq from the ring's write position.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions as FsOpen};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shm_channel::{Error as ShmError, OpenOptions};

mod service;
mod topic;
use zenoh::qos::CongestionControl;
use zenoh::Wait;

const KIND_MSG: u8 = 0;
const KIND_END: u8 = 1;
const KIND_MARK: u8 = 2; // spool only: carries the last assigned seq and ring position
const KIND_DONE: u8 = 3; // spool only: the end of stream was acknowledged (the stream is finished)
const HEARTBEAT: Duration = Duration::from_millis(100);
const STALL: Duration = Duration::from_millis(1000);

type BoxResult<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn log(msg: &str) {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    eprintln!("shm-channel-bridge[{}] {}.{:03}: {msg}", std::process::id(), t.as_secs(), t.subsec_millis());
}

fn usage() -> ! {
    eprintln!(
        "usage: shm-channel-bridge [--listen tcp/IP:PORT]... [--connect tcp/IP:PORT]...
                          (--export NAME | --import NAME | --export-topic NAME | --import-topic NAME
                           | --export-service NAME | --import-service NAME)...
                          [--topic-drop] [--service-timeout-ms MS] [--capacity BYTES] [--window BYTES] [--state-dir DIR]
                          [--stats FILE] [--prefix KEY] [--multicast]
       shm-channel-bridge zbench (pub|sub|qserve|query) [--listen ..|--connect ..] --count N --size B
  Multicast scouting is off unless --multicast; peers are the explicit endpoints only.
  The process exits 0 once every exported stream's end was acknowledged and every
  imported stream was closed (end-of-stream forwarded)."
    );
    std::process::exit(2)
}

struct Args {
    listen: Vec<String>,
    connect: Vec<String>,
    export: Vec<String>,
    import: Vec<String>,
    export_topic: Vec<String>,
    import_topic: Vec<String>,
    topic_drop: bool,
    export_service: Vec<String>,
    import_service: Vec<String>,
    service_timeout: Duration,
    capacity: usize,
    window: usize,
    state_dir: PathBuf,
    stats: Option<PathBuf>,
    prefix: String,
    multicast: bool,
}

fn parse_num(s: Option<String>) -> usize {
    s.and_then(|v| v.parse().ok()).unwrap_or_else(|| usage())
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Args {
    let mut a = Args {
        listen: vec![],
        connect: vec![],
        export: vec![],
        import: vec![],
        export_topic: vec![],
        import_topic: vec![],
        topic_drop: false,
        export_service: vec![],
        import_service: vec![],
        service_timeout: Duration::from_secs(10),
        capacity: 1 << 20,
        window: 8 << 20,
        state_dir: PathBuf::from("."),
        stats: None,
        prefix: "shm_channel".into(),
        multicast: false,
    };
    let mut state_dir = None;
    while let Some(arg) = it.next() {
        let mut val = || it.next().filter(|v| !v.starts_with("--")).unwrap_or_else(|| usage());
        match arg.as_str() {
            "--listen" => a.listen.push(val()),
            "--connect" => a.connect.push(val()),
            "--export" => a.export.push(val()),
            "--import" => a.import.push(val()),
            "--export-topic" => a.export_topic.push(val()),
            "--import-topic" => a.import_topic.push(val()),
            "--topic-drop" => a.topic_drop = true,
            "--export-service" => a.export_service.push(val()),
            "--import-service" => a.import_service.push(val()),
            "--service-timeout-ms" => a.service_timeout = Duration::from_millis(parse_num(Some(val())) as u64),
            "--capacity" => a.capacity = parse_num(Some(val())),
            "--window" => a.window = parse_num(Some(val())),
            "--state-dir" => state_dir = Some(PathBuf::from(val())),
            "--stats" => a.stats = Some(PathBuf::from(val())),
            "--prefix" => a.prefix = val(),
            "--multicast" => a.multicast = true,
            _ => usage(),
        }
    }
    if a.export.is_empty() && a.import.is_empty() && a.export_topic.is_empty() && a.import_topic.is_empty()
        && a.export_service.is_empty() && a.import_service.is_empty()
    {
        usage();
    }
    a.state_dir = state_dir.unwrap_or_else(shm_channel::dir);
    a
}

fn zenoh_config(listen: &[String], connect: &[String], multicast: bool) -> BoxResult<zenoh::Config> {
    let mut c = zenoh::Config::default();
    let j = |v: &[String]| serde_list(v);
    c.insert_json5("mode", "\"peer\"")?;
    c.insert_json5("scouting/multicast/enabled", if multicast { "true" } else { "false" })?;
    c.insert_json5("scouting/gossip/enabled", "false")?;
    c.insert_json5("listen/endpoints", &j(listen))?;
    c.insert_json5("connect/endpoints", &j(connect))?;
    // Reconnect forever with exponential backoff 100 ms .. 2 s (zenoh does the retrying);
    // open() waits at most 1 s for the first connection, then retries in the background.
    c.insert_json5("connect/timeout_ms", "1000")?;
    c.insert_json5("connect/exit_on_failure", "false")?;
    c.insert_json5("connect/retry", "{period_init_ms: 100, period_max_ms: 2000, period_increase_factor: 2}")?;
    Ok(c)
}

fn serde_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("\"{}\"", s.replace('"', ""))).collect();
    format!("[{}]", items.join(","))
}

/// Byte position just past a message of `len` bytes whose record is written at `pos` or, if
/// it does not fit before the end of the ring, after a padding record (spec/README.md: an
/// 8-byte header, the payload rounded up to 8, records never wrap).
fn record_end(pos: u64, len: usize, capacity: u64) -> u64 {
    let total = 8 + ((len as u64 + 7) & !7);
    let off = pos & (capacity - 1);
    let start = if total > capacity - off { pos + (capacity - off) } else { pos };
    start + total
}

/// The identity of a segment: a recreated channel has other positions.
fn identity(st: &shm_channel::Stats) -> (u64, u64) {
    let t = st.created.duration_since(UNIX_EPOCH).unwrap_or_default();
    (t.as_nanos() as u64, st.creator_pid as u64)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

// ---- counters ---------------------------------------------------------------------------

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    retransmitted: AtomicU64,
    acked: AtomicU64,
    reconnects: AtomicU64,
    skipped_on_restart: AtomicU64,
    written: AtomicU64,
    duplicates: AtomicU64,
    gaps: AtomicU64,
    unacked: AtomicU64,
    missed: AtomicU64,
    lost: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
}

type AllCounters = [(String, &'static str, Arc<Counters>)];

/// What every exporter and importer thread (stream, topic, service) is given: the Zenoh
/// session, the local name, the arguments, its counters and the process-wide stop flag.
struct Job {
    session: zenoh::Session,
    name: String,
    a: Arc<Args>,
    c: Arc<Counters>,
    stop: Arc<AtomicBool>,
}

impl Job {
    /// The Zenoh key of this name: `<prefix>/<name>`, then `/<kind>` ("topic", "svc"; a
    /// stream's is the bare name).
    fn key(&self, kind: &str) -> String {
        let base = format!("{}/{}", self.a.prefix, self.name);
        if kind.is_empty() {
            base
        } else {
            format!("{base}/{kind}")
        }
    }
}

fn counters_json(name: &str, role: &str, c: &Counters) -> String {
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    format!(
        "{{\"name\":\"{name}\",\"role\":\"{role}\",\"sent\":{},\"retransmitted\":{},\"acked\":{},\
         \"reconnects\":{},\"skipped_on_restart\":{},\"written\":{},\"duplicates\":{},\"gaps\":{},\
         \"unacked\":{},\"missed\":{},\"lost\":{},\"requests\":{},\"errors\":{}}}",
        g(&c.sent), g(&c.retransmitted), g(&c.acked), g(&c.reconnects), g(&c.skipped_on_restart),
        g(&c.written), g(&c.duplicates), g(&c.gaps), g(&c.unacked), g(&c.missed), g(&c.lost),
        g(&c.requests), g(&c.errors)
    )
}

fn write_atomic(path: &Path, s: String) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    if fs::write(&tmp, s).is_ok() {
        let _ = fs::rename(&tmp, path);
    }
}

fn write_stats(path: &Path, all: &AllCounters) {
    let objs: Vec<String> = all.iter().map(|(n, r, c)| counters_json(n, r, c)).collect();
    write_atomic(path, format!("[{}]\n", objs.join(",")));
}

/// The Zenoh peer as this process sees it: connected or not, and how many times it came back.
#[derive(Default)]
struct PeerWatch {
    connected: bool,
    ever: bool,
    reconnects: u64,
    lost_at: Option<Instant>,
}

impl PeerWatch {
    fn poll(&mut self, session: &zenoh::Session, a: &Args) {
        let n = session.info().peers_zid().wait().count();
        if n > 0 && !self.connected {
            if self.ever {
                self.reconnects += 1;
                log(&format!(
                    "peer connected again after {:.1} s (reconnect {})",
                    self.lost_at.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0),
                    self.reconnects
                ));
            } else {
                log("peer connected");
            }
            self.connected = true;
            self.ever = true;
        } else if n == 0 && self.connected {
            self.connected = false;
            self.lost_at = Some(Instant::now());
            log(if a.connect.is_empty() {
                "peer lost: waiting for it to connect again"
            } else {
                "peer lost: reconnecting (retry every 100 ms, doubling to 2 s)"
            });
        }
    }
}

/// The status file `shm_channel stat` and `top` read (docs/cli.md, "Bridges"): in the segment
/// folder, `.bridge-<pid>.json`, rewritten (atomic rename) every 200 ms, removed at exit.
/// Line-oriented JSON: the header object's fields on the first line, one channel per line.
fn write_status(path: &Path, all: &AllCounters, p: &PeerWatch, a: &Args) {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
    let mut s = format!(
        "{{\"pid\":{},\"updated_ms\":{ms},\"peer\":\"{}\",\"reconnects\":{},\"endpoints\":\"{}\",\"channels\":[\n",
        std::process::id(),
        if p.connected { "connected" } else if p.ever { "lost" } else { "waiting" },
        p.reconnects,
        a.listen.iter().chain(a.connect.iter()).map(|e| e.replace('"', "")).collect::<Vec<_>>().join(" ")
    );
    let objs: Vec<String> = all.iter().map(|(n, r, c)| counters_json(n, r, c)).collect();
    s += &objs.join(",\n");
    s += "\n]}\n";
    write_atomic(path, s);
}

// ---- the spool and the journal: append-only files headed by a magic and the ring identity --

/// Reads `path` (nothing if it is absent): its bytes, and the ring identity (2 x u64) its
/// header holds if the header starts with `magic`.
fn read_headed(path: &Path, magic: &[u8; 8]) -> BoxResult<(Vec<u8>, Option<(u64, u64)>)> {
    let mut data = Vec::new();
    if let Ok(mut f) = File::open(path) {
        f.read_to_end(&mut data)?;
    }
    let ident = (data.len() >= 24 && &data[..8] == magic).then(|| (u64_at(&data, 8), u64_at(&data, 16)));
    Ok((data, ident))
}

/// Replaces `path` atomically (a temporary file renamed over it) by the header (`magic`,
/// `ident`) and `body`; returns it opened for appending, and its size.
fn rewrite_headed(path: &Path, magic: &[u8; 8], ident: (u64, u64), body: &[u8]) -> BoxResult<(File, u64)> {
    let tmp = path.with_extension("tmp");
    let mut buf = Vec::with_capacity(24 + body.len());
    buf.extend_from_slice(magic);
    buf.extend_from_slice(&ident.0.to_le_bytes());
    buf.extend_from_slice(&ident.1.to_le_bytes());
    buf.extend_from_slice(body);
    fs::write(&tmp, &buf)?;
    fs::rename(&tmp, path)?;
    Ok((FsOpen::new().append(true).open(path)?, buf.len() as u64))
}

// ---- exporter spool ---------------------------------------------------------------------

const SPOOL_MAGIC: &[u8; 8] = b"SHMBSPL1";
const SPOOL_COMPACT: u64 = 64 << 20;

struct Entry {
    seq: u64,
    end: u64,
    kind: u8,
    bytes: Vec<u8>,
}

/// Append-only file of the messages taken from the ring and not yet known to be acknowledged.
/// A record is written (one write(2)) before its message is released from the ring, so it
/// survives the process (not the kernel: no fsync). Header: magic, ring identity (2 x u64).
/// Record: seq u64 | ring end position u64 | len u32 | kind u8 | 3 zero bytes | bytes.
struct Spool {
    path: PathBuf,
    file: File,
    size: u64,
}

impl Spool {
    /// Opens or creates the spool; returns it with its records and the ring identity it holds.
    fn open(path: PathBuf) -> BoxResult<(Spool, Vec<Entry>, Option<(u64, u64)>)> {
        let (data, ident) = read_headed(&path, SPOOL_MAGIC)?;
        let mut entries = Vec::new();
        let mut valid = 0usize;
        if ident.is_some() {
            let mut at = 24;
            valid = 24;
            while at + 24 <= data.len() {
                let len = u32::from_le_bytes(data[at + 16..at + 20].try_into().unwrap()) as usize;
                if at + 24 + len > data.len() {
                    break; // torn tail: that message was not released, the ring has it again
                }
                entries.push(Entry {
                    seq: u64_at(&data, at),
                    end: u64_at(&data, at + 8),
                    kind: data[at + 20],
                    bytes: data[at + 24..at + 24 + len].to_vec(),
                });
                at += 24 + len;
                valid = at;
            }
        }
        let file = FsOpen::new().create(true).append(true).open(&path)?;
        file.set_len(valid as u64)?;
        let size = valid as u64;
        Ok((Spool { path, file, size }, entries, ident))
    }

    fn record(e: &Entry) -> Vec<u8> {
        let mut r = Vec::with_capacity(24 + e.bytes.len());
        r.extend_from_slice(&e.seq.to_le_bytes());
        r.extend_from_slice(&e.end.to_le_bytes());
        r.extend_from_slice(&(e.bytes.len() as u32).to_le_bytes());
        r.extend_from_slice(&[e.kind, 0, 0, 0]);
        r.extend_from_slice(&e.bytes);
        r
    }

    fn append(&mut self, e: &Entry) -> BoxResult<()> {
        let r = Self::record(e);
        self.file.write_all(&r)?;
        self.size += r.len() as u64;
        Ok(())
    }

    /// Rewrites the spool as header + `keep` + mark (last seq, ring position), atomically (rename).
    fn rewrite(&mut self, ident: (u64, u64), mark: &Entry, keep: &VecDeque<Entry>) -> BoxResult<()> {
        let mut body = Vec::new();
        for e in keep {
            body.extend_from_slice(&Self::record(e));
        }
        // The mark goes last: its end is the ring position now (the kept records' ends may
        // belong to a ring that was since recreated).
        body.extend_from_slice(&Self::record(mark));
        (self.file, self.size) = rewrite_headed(&self.path, SPOOL_MAGIC, ident, &body)?;
        Ok(())
    }
}

/// Streams of this process still running: an importer whose stream is closed keeps answering
/// (its heartbeat says the end was written) while any runs, so that an exporter restarted late
/// still hears that its end arrived; 2 s after the last, it ends.
static ACTIVE_STREAMS: AtomicUsize = AtomicUsize::new(0);

/// One count of ACTIVE_STREAMS, taken by main before the stream's thread starts.
struct Active(bool);

impl Active {
    fn done(&mut self) {
        if std::mem::take(&mut self.0) {
            ACTIVE_STREAMS.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.done();
    }
}

struct AckState {
    session: u64,
    next: u64,
    busy: bool,
    changed: Instant,
}

fn exporter(job: Job) -> BoxResult<()> {
    let key = job.key("");
    let Job { session, name, a, c, stop } = job;
    let _active = Active(true);
    let (mut spool, entries, old_ident) =
        Spool::open(a.state_dir.join(format!("bridge-export-{name}.spool")))?;
    // A stream whose end the importer acknowledged is finished: a bridge restarted after that
    // has nothing to send (and its channel, closed by both sides, may be gone).
    let done = entries.last().is_some_and(|e| e.kind == KIND_DONE);
    // Open the channel as it is; create it (with --capacity) only if it does not exist.
    let rx = match OpenOptions::new().consumer(&name) {
        Err(ShmError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound && done => {
            log(&format!("export {name}: finished before (end of stream acknowledged), nothing to do"));
            return Ok(());
        }
        Err(ShmError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            OpenOptions::new().create(true).capacity(a.capacity).consumer(&name)?
        }
        r => r?,
    };
    // Only a finished stream closes the consumer role: leaving on an error (or another
    // stream's fatal error) must look like a dead consumer to the local producer (it waits
    // for the next bridge), never like a consumer that closed (the producer would give up).
    let mut rx = std::mem::ManuallyDrop::new(rx);
    let mut finished = false;
    let cap = rx.capacity() as u64;
    let st = rx.stat()?;
    let ident = identity(&st);
    if done && old_ident == Some(ident) {
        log(&format!("export {name}: finished before (end of stream acknowledged), nothing to do"));
        drop(std::mem::ManuallyDrop::into_inner(rx));
        return Ok(());
    }
    // (A finished stream whose channel was recreated since: a new stream, numbered on.)
    let entries: Vec<Entry> =
        entries.into_iter().map(|e| if e.kind == KIND_DONE { Entry { kind: KIND_MARK, ..e } } else { e }).collect();
    let mut next_seq = entries.iter().map(|e| e.seq + 1).max().unwrap_or(0);
    let last_end = entries.last().map(|e| e.end);
    let eos_spooled = entries.iter().any(|e| e.kind == KIND_END);
    let mut unacked: VecDeque<Entry> = entries.into_iter().filter(|e| e.kind != KIND_MARK).collect();

    // A message spooled but not released before the previous bridge died is at the head of
    // the ring again: release it without spooling it twice (by ring position, not content).
    let mut pos = st.read_pos;
    rx.set_timeout(Some(Duration::from_millis(500)));
    match (old_ident, last_end) {
        (Some(old), Some(end)) if old == ident => {
            while pos < end {
                let m = match rx.peek() {
                    Ok(m) => m,
                    Err(e) => {
                        log(&format!("export {name}: expected a spooled message at position {pos}: {e}"));
                        break;
                    }
                };
                pos = record_end(pos, m.len(), cap);
                m.release();
                c.skipped_on_restart.fetch_add(1, Ordering::Relaxed);
            }
            if pos != end {
                return Err(format!("export {name}: ring position {pos} != spooled end {end}").into());
            }
        }
        (Some(_), _) => log(&format!("export {name}: the channel was recreated; spool positions ignored")),
        _ => {}
    }
    let mark = Entry { seq: next_seq.wrapping_sub(1), end: pos, kind: KIND_MARK, bytes: vec![] };
    spool.rewrite(ident, &mark, &unacked)?;
    if c.skipped_on_restart.load(Ordering::Relaxed) > 0 || !unacked.is_empty() {
        log(&format!(
            "export {name}: resumed: {} unacknowledged messages in the spool, {} released again, next seq {next_seq}",
            unacked.len(),
            c.skipped_on_restart.load(Ordering::Relaxed)
        ));
    }

    let publisher = session
        .declare_publisher(format!("{key}/data"))
        .congestion_control(CongestionControl::Block)
        .wait()?;
    let ack = Arc::new(Mutex::new(AckState { session: 0, next: 0, busy: false, changed: Instant::now() }));
    let ack2 = ack.clone();
    let _sub = session
        .declare_subscriber(format!("{key}/ack"))
        .callback(move |s| {
            let p = s.payload().to_bytes();
            if p.len() < 24 {
                return;
            }
            let (next, sess, busy) = (u64_at(&p, 0), u64_at(&p, 8), u64_at(&p, 16) != 0);
            let mut g = ack2.lock().unwrap();
            g.busy = busy;
            if g.session != sess || g.next != next {
                g.changed = Instant::now();
            }
            if g.session != sess || next > g.next {
                g.next = next;
            }
            g.session = sess;
        })
        .wait()?;

    let mut known_session = 0u64;
    let mut cursor = next_seq; // next seq to send
    let mut acked = unacked.front().map(|e| e.seq).unwrap_or(next_seq);
    let mut unacked_bytes: usize = unacked.iter().map(|e| e.bytes.len()).sum();
    let mut eos = eos_spooled;
    let mut wait_log = Instant::now();
    let mut wait_every = Duration::from_secs(1);
    let mut last_sent = Instant::now();
    let mut producer_dead_logged = false;
    let frame = |e: &Entry| {
        let mut f = Vec::with_capacity(9 + e.bytes.len());
        f.extend_from_slice(&e.seq.to_le_bytes());
        f.push(e.kind);
        f.extend_from_slice(&e.bytes);
        f
    };
    rx.set_timeout(Some(Duration::from_millis(20)));
    while !stop.load(Ordering::Relaxed) {
        let (sess, anext, busy, changed) = {
            let g = ack.lock().unwrap();
            (g.session, g.next, g.busy, g.changed)
        };
        if sess == 0 {
            if wait_log.elapsed() >= wait_every {
                log(&format!("export {name}: no importer heard yet on {key}, waiting (next log in {:?})", wait_every * 2));
                wait_log = Instant::now();
                wait_every = (wait_every * 2).min(Duration::from_secs(30));
            }
        } else {
            if sess != known_session {
                if known_session != 0 {
                    c.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                log(&format!("export {name}: importer session {sess:016x}, resuming at seq {anext} ({} to send again)", cursor.saturating_sub(anext)));
                known_session = sess;
                if anext > next_seq {
                    // The importer is ahead of our spool (a spool lost or deleted): continue after
                    // it rather than send numbers it would drop as duplicates.
                    log(&format!("export {name}: importer expects seq {anext}, past our next {next_seq}: continuing from there"));
                    unacked.clear();
                    unacked_bytes = 0;
                    next_seq = anext;
                    acked = anext;
                } else if anext < acked {
                    log(&format!("export {name}: importer expects seq {anext}, below what it acknowledged ({acked}): its journal was lost; those messages cannot be sent again"));
                }
                cursor = anext.max(acked);
                wait_every = Duration::from_secs(1);
            }
            if anext > acked {
                while unacked.front().is_some_and(|e| e.seq < anext) {
                    let e = unacked.pop_front().unwrap();
                    unacked_bytes -= e.bytes.len();
                }
                acked = anext;
                c.acked.store(acked, Ordering::Relaxed);
                c.unacked.store(unacked.len() as u64, Ordering::Relaxed);
                if eos && unacked.is_empty() {
                    log(&format!("export {name}: end of stream acknowledged at seq {acked}"));
                    let done = Entry { seq: acked.wrapping_sub(1), end: 0, kind: KIND_DONE, bytes: vec![] };
                    spool.rewrite(ident, &done, &VecDeque::new())?;
                    finished = true;
                    break;
                }
            }
            cursor = cursor.max(acked);
            if cursor > acked && !busy && changed.elapsed() > STALL && last_sent.elapsed() > STALL / 2 {
                // Heard from the importer, which is not blocked on its ring, but no progress:
                // messages were lost (a broken link): go back to the acknowledged seq.
                log(&format!("export {name}: no acknowledgement progress at seq {acked} for {STALL:?}: sending again from there"));
                c.reconnects.fetch_add(1, Ordering::Relaxed);
                cursor = acked;
                ack.lock().unwrap().changed = Instant::now();
            }
            // Send what is spooled and not yet sent (new or again), a bounded batch.
            let mut n = 0;
            while cursor < next_seq && n < 256 {
                let e = &unacked[(cursor - acked) as usize];
                publisher.put(frame(e)).wait()?;
                if cursor < c.sent.load(Ordering::Relaxed) {
                    c.retransmitted.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.sent.store(cursor + 1, Ordering::Relaxed);
                }
                cursor += 1;
                n += 1;
                last_sent = Instant::now();
            }
        }
        c.unacked.store(unacked.len() as u64, Ordering::Relaxed);
        if spool.size > SPOOL_COMPACT && (unacked_bytes as u64) < SPOOL_COMPACT / 4 {
            let mark = Entry { seq: next_seq.wrapping_sub(1), end: pos, kind: KIND_MARK, bytes: vec![] };
            spool.rewrite(ident, &mark, &unacked)?;
        }
        if eos || unacked_bytes >= a.window {
            thread::sleep(Duration::from_millis(1));
            continue;
        }
        // Take up to a batch of messages from the ring: spool, then release.
        for _ in 0..256 {
            if unacked_bytes >= a.window {
                break;
            }
            match rx.peek() {
                Ok(m) => {
                    let end = record_end(pos, m.len(), cap);
                    let e = Entry { seq: next_seq, end, kind: KIND_MSG, bytes: m.to_vec() };
                    if let Err(err) = spool.append(&e) {
                        // Not spooled: leave it unreleased (dropping the guard would release it),
                        // so the next bridge gets it from the ring again.
                        std::mem::forget(m);
                        return Err(err);
                    }
                    m.release();
                    pos = end;
                    unacked_bytes += e.bytes.len();
                    unacked.push_back(e);
                    next_seq += 1;
                    producer_dead_logged = false;
                }
                Err(ShmError::EndOfStream) => {
                    let e = Entry { seq: next_seq, end: pos, kind: KIND_END, bytes: vec![] };
                    spool.append(&e)?;
                    unacked.push_back(e);
                    next_seq += 1;
                    eos = true;
                    log(&format!("export {name}: local end of stream after seq {}", next_seq - 1));
                    break;
                }
                Err(ShmError::PeerDied) => {
                    if !producer_dead_logged {
                        log(&format!("export {name}: local producer died; waiting for another"));
                        producer_dead_logged = true;
                    }
                    thread::sleep(Duration::from_millis(20));
                    break;
                }
                Err(ShmError::TimedOut | ShmError::WouldBlock | ShmError::Interrupted) => break,
                Err(e) => return Err(e.into()),
            }
            if sess == 0 {
                break;
            }
        }
    }
    if finished {
        drop(std::mem::ManuallyDrop::into_inner(rx));
    }
    Ok(())
}

// ---- importer journal -------------------------------------------------------------------

const JOURNAL_MAGIC: &[u8; 8] = b"SHMBJRN1";
const JOURNAL_COMPACT: u64 = 1 << 20;
const END_CLOSED: u64 = u64::MAX;

/// Journal of the importer: header magic + ring identity; entries (seq u64, end u64): message
/// seq is (being) written so that the ring's write position becomes `end`; written before the
/// message. `end == u64::MAX`: the end of stream `seq` was forwarded (the producer closed).
struct Journal {
    path: PathBuf,
    file: File,
    size: u64,
}

impl Journal {
    fn open(path: PathBuf) -> BoxResult<(Journal, Vec<(u64, u64)>, Option<(u64, u64)>)> {
        let (data, ident) = read_headed(&path, JOURNAL_MAGIC)?;
        let mut ents = Vec::new();
        if ident.is_some() {
            let mut at = 24;
            while at + 16 <= data.len() {
                ents.push((u64_at(&data, at), u64_at(&data, at + 8)));
                at += 16;
            }
        }
        let file = FsOpen::new().create(true).append(true).open(&path)?;
        Ok((Journal { path, file, size: data.len() as u64 }, ents, ident))
    }

    fn append(&mut self, seq: u64, end: u64) -> BoxResult<()> {
        let mut r = [0u8; 16];
        r[..8].copy_from_slice(&seq.to_le_bytes());
        r[8..].copy_from_slice(&end.to_le_bytes());
        self.file.write_all(&r)?;
        self.size += 16;
        Ok(())
    }

    fn rewrite(&mut self, ident: (u64, u64), last: Option<(u64, u64)>) -> BoxResult<()> {
        let mut body = Vec::new();
        if let Some((s, e)) = last {
            body.extend_from_slice(&s.to_le_bytes());
            body.extend_from_slice(&e.to_le_bytes());
        }
        (self.file, self.size) = rewrite_headed(&self.path, JOURNAL_MAGIC, ident, &body)?;
        Ok(())
    }
}

/// The importer's producer: only a forwarded end of stream closes it (`.0 = None`); any other
/// way out (an error, a fatal error of another stream) leaves it attached and unclosed, so the
/// local consumer never takes a bridge's exit for the end of the stream.
struct NoClose(Option<shm_channel::Producer>);

impl Drop for NoClose {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            std::mem::forget(p);
        }
    }
}

fn importer(job: Job) -> BoxResult<()> {
    let key = job.key("");
    let Job { session, name, a, c, stop } = job;
    let mut tx = NoClose(Some(match OpenOptions::new().producer(&name) {
        Err(ShmError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            OpenOptions::new().create(true).capacity(a.capacity).producer(&name)?
        }
        r => r?,
    }));
    let p = tx.0.as_ref().unwrap();
    let cap = p.capacity() as u64;
    let st = p.stat()?;
    let ident = identity(&st);
    let mut pos = st.write_pos;
    let (mut journal, ents, old_ident) = Journal::open(a.state_dir.join(format!("bridge-import-{name}.journal")))?;
    // Next expected seq: one past the last journalled message the ring holds (its end is at or
    // below the write position); a journalled message beyond it was never published.
    let mut next = 0u64;
    let mut closed = false;
    if let Some(&(s, e)) = ents.last() {
        if e == END_CLOSED {
            next = s + 1;
            closed = true;
        } else if old_ident == Some(ident) {
            next = ents.iter().filter(|&&(_, e)| e <= pos).map(|&(s, _)| s + 1).max().unwrap_or(ents[0].0);
        } else {
            log(&format!("import {name}: the channel was recreated; assuming seq {s} was written"));
            next = s + 1;
        }
    }
    journal.rewrite(ident, if closed { Some((next - 1, END_CLOSED)) } else { next.checked_sub(1).map(|s| (s, pos)) })?;
    if closed {
        tx.0 = None;
    }
    if next > 0 {
        log(&format!("import {name}: resuming at seq {next}{}", if closed { " (stream already closed)" } else { "" }));
    }
    let session_id = {
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
        (t ^ ((std::process::id() as u64) << 32)) | 1
    };
    let shared_next = Arc::new(AtomicU64::new(next));
    let ack_pub = session.declare_publisher(format!("{key}/ack")).wait()?;
    let busy = Arc::new(AtomicBool::new(false));
    let ack_msg = move |n: u64, busy: bool| {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&n.to_le_bytes());
        b[8..16].copy_from_slice(&session_id.to_le_bytes());
        b[16] = busy as u8;
        b
    };
    // This stream's heartbeat only (`stop` is every stream's: a fatal error elsewhere).
    let hb_stop = Arc::new(AtomicBool::new(false));
    // Heartbeat: the exporter learns our session and next seq even while we block on a full ring.
    let hb = {
        let (n, stop, session, key, busy) = (shared_next.clone(), hb_stop.clone(), session.clone(), key.clone(), busy.clone());
        thread::spawn(move || {
            let p = session.declare_publisher(format!("{key}/ack")).wait();
            while let Ok(p) = p.as_ref() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let _ = p.put(ack_msg(n.load(Ordering::Relaxed), busy.load(Ordering::Relaxed)).to_vec()).wait();
                thread::sleep(HEARTBEAT);
            }
        })
    };
    let sub = session
        .declare_subscriber(format!("{key}/data"))
        .with(zenoh::handlers::FifoChannel::new(256))
        .wait()?;
    if let Some(tx) = tx.0.as_mut() {
        tx.set_timeout(Some(Duration::from_millis(200)));
    }
    let (mut since_ack, mut bytes_since_ack) = (0u32, 0usize);
    let mut last_gap_ack = Instant::now();
    let mut active = Active(true);
    let mut closed_at = if closed { Some(Instant::now()) } else { None };
    if closed {
        active.done();
    }
    while !stop.load(Ordering::Relaxed) {
        if closed_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) && ACTIVE_STREAMS.load(Ordering::Acquire) == 0 {
            break; // linger: the exporter hears the final acknowledgement
        }
        let sample = match sub.try_recv()? {
            Some(s) => s,
            None => {
                if since_ack > 0 {
                    ack_pub.put(ack_msg(next, false).to_vec()).wait()?;
                    since_ack = 0;
                    bytes_since_ack = 0;
                }
                match sub.recv_timeout(Duration::from_millis(50))? {
                    Some(s) => s,
                    None => continue,
                }
            }
        };
        let payload = sample.payload().to_bytes();
        if payload.len() < 9 {
            continue;
        }
        let (seq, kind) = (u64_at(&payload, 0), payload[8]);
        if seq != next {
            if seq < next {
                c.duplicates.fetch_add(1, Ordering::Relaxed);
            } else {
                c.gaps.fetch_add(1, Ordering::Relaxed);
            }
            if last_gap_ack.elapsed() > Duration::from_millis(20) {
                ack_pub.put(ack_msg(next, false).to_vec()).wait()?;
                last_gap_ack = Instant::now();
            }
            continue;
        }
        if kind == KIND_END {
            journal.append(seq, END_CLOSED)?;
            tx.0 = None; // close: the local consumer sees end-of-stream after the last message
            closed_at = Some(Instant::now());
            active.done();
            log(&format!("import {name}: end of stream forwarded after seq {seq}"));
        } else if let Some(p) = tx.0.as_mut() {
            let msg = &payload[9..];
            let end = record_end(pos, msg.len(), cap);
            journal.append(seq, end)?;
            busy.store(true, Ordering::Relaxed);
            loop {
                match p.write(msg) {
                    Ok(()) => break,
                    Err(ShmError::TimedOut | ShmError::WouldBlock | ShmError::Interrupted | ShmError::PeerDied | ShmError::ConsumerClosed) => {
                        if stop.load(Ordering::Relaxed) {
                            hb_stop.store(true, Ordering::Relaxed);
                            return Ok(());
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            busy.store(false, Ordering::Relaxed);
            pos = end;
            c.written.fetch_add(1, Ordering::Relaxed);
            bytes_since_ack += msg.len();
        }
        next = seq + 1;
        shared_next.store(next, Ordering::Relaxed);
        c.acked.store(next, Ordering::Relaxed);
        since_ack += 1;
        if since_ack >= 256 || bytes_since_ack >= (1 << 20) || kind == KIND_END {
            ack_pub.put(ack_msg(next, false).to_vec()).wait()?;
            since_ack = 0;
            bytes_since_ack = 0;
        }
        if journal.size > JOURNAL_COMPACT && kind != KIND_END {
            journal.rewrite(ident, Some((seq, pos)))?;
        }
    }
    hb_stop.store(true, Ordering::Relaxed);
    let _ = hb.join();
    Ok(())
}

// ---- plain Zenoh baseline for the benchmark ---------------------------------------------

fn zbench(mut it: impl Iterator<Item = String>) -> BoxResult<()> {
    let role = it.next().unwrap_or_else(|| usage());
    let (mut listen, mut connect, mut count, mut size) = (vec![], vec![], 100_000usize, 64usize);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--listen" => listen.push(val()),
            "--connect" => connect.push(val()),
            "--count" => count = parse_num(Some(val())),
            "--size" => size = parse_num(Some(val())),
            _ => usage(),
        }
    }
    let session = zenoh::open(zenoh_config(&listen, &connect, false)?).wait()?;
    match role.as_str() {
        "pub" => {
            // Wait for the subscriber's readiness message, then send count messages.
            let ready = session.declare_subscriber("zbench/ready").wait()?;
            ready.recv()?;
            let p = session
                .declare_publisher("zbench/data")
                .congestion_control(CongestionControl::Block)
                .wait()?;
            let mut msg = vec![0u8; size.max(8)];
            for i in 0..count as u64 {
                msg[..8].copy_from_slice(&i.to_le_bytes());
                p.put(msg[..size.max(8)].to_vec()).wait()?;
            }
            thread::sleep(Duration::from_millis(500));
        }
        "sub" => {
            let sub = session.declare_subscriber("zbench/data").with(zenoh::handlers::FifoChannel::new(256)).wait()?;
            let ready = session.declare_publisher("zbench/ready").wait()?;
            let mut got = 0usize;
            let mut t0 = None;
            while got < count {
                match sub.recv_timeout(Duration::from_millis(100))? {
                    Some(s) => {
                        if t0.is_none() {
                            t0 = Some(Instant::now());
                        }
                        let i = u64_at(&s.payload().to_bytes(), 0);
                        if i != got as u64 {
                            return Err(format!("zbench: got {i}, expected {got}").into());
                        }
                        got += 1;
                    }
                    None if got == 0 => ready.put(vec![1u8]).wait()?,
                    None => {}
                }
            }
            let secs = t0.unwrap().elapsed().as_secs_f64();
            println!("{{\"count\":{count},\"size\":{size},\"secs\":{secs:.6},\"msgs_per_s\":{:.0}}}", count as f64 / secs);
        }
        "qserve" => {
            // Round trip, Zenoh alone: a queryable answering each query with its payload.
            let q = session.declare_queryable("zbench/rtt").wait()?;
            let mut served = 0usize;
            while served < count {
                let query = q.recv()?;
                let p = query.payload().map(|p| p.to_bytes().into_owned()).unwrap_or_default();
                query.reply("zbench/rtt", p).wait()?;
                served += 1;
            }
            thread::sleep(Duration::from_millis(200));
        }
        "query" => {
            let msg = vec![7u8; size];
            // Wait until the queryable answers, then time `count` sequential queries.
            loop {
                let r = session.get("zbench/rtt").payload(msg.clone()).timeout(Duration::from_millis(500)).wait()?;
                if r.recv().is_ok() {
                    break;
                }
            }
            let t0 = Instant::now();
            for _ in 1..count {
                let r = session.get("zbench/rtt").payload(msg.clone()).timeout(Duration::from_secs(10)).wait()?;
                let s = r.recv()?.into_result().map_err(|e| format!("zbench: reply error {e:?}"))?;
                if s.payload().len() != size {
                    return Err("zbench: wrong reply size".into());
                }
            }
            let secs = t0.elapsed().as_secs_f64();
            println!("{{\"count\":{},\"size\":{size},\"secs\":{secs:.6},\"rtt_us\":{:.1}}}", count - 1, secs * 1e6 / (count - 1) as f64);
        }
        _ => usage(),
    }
    Ok(())
}

fn main() {
    let mut argv = std::env::args().skip(1).peekable();
    if argv.peek().map(String::as_str) == Some("svc-proxy") {
        argv.next();
        if let Err(e) = service::proxy_main(argv) {
            log(&format!("svc-proxy: {e}"));
            std::process::exit(1);
        }
        return;
    }
    if argv.peek().map(String::as_str) == Some("zbench") {
        argv.next();
        if let Err(e) = zbench(argv) {
            log(&format!("zbench: {e}"));
            std::process::exit(1);
        }
        return;
    }
    let a = Arc::new(parse_args(argv));
    let session = match zenoh_config(&a.listen, &a.connect, a.multicast).and_then(|c| Ok(zenoh::open(c).wait()?)) {
        Ok(s) => s,
        Err(e) => {
            log(&format!("zenoh: {e}"));
            std::process::exit(1);
        }
    };
    log(&format!(
        "up: listen {:?} connect {:?} (multicast scouting {}), export {:?} import {:?}, topics export {:?} import {:?}, services export {:?} import {:?}",
        a.listen, a.connect, if a.multicast { "on" } else { "off" }, a.export, a.import, a.export_topic, a.import_topic,
        a.export_service, a.import_service
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let mut all = Vec::new();
    let mut threads = Vec::new();
    for (names, role) in [
        (&a.export, "export"),
        (&a.import, "import"),
        (&a.export_topic, "export-topic"),
        (&a.import_topic, "import-topic"),
        (&a.export_service, "export-service"),
        (&a.import_service, "import-service"),
    ] {
        for name in names.iter() {
            if role == "export" || role == "import" {
                ACTIVE_STREAMS.fetch_add(1, Ordering::AcqRel); // given back by the thread (Active)
            }
            let c = Arc::new(Counters::default());
            all.push((name.clone(), role, c.clone()));
            let (n, st) = (name.clone(), stop.clone());
            let job = Job { session: session.clone(), name: name.clone(), a: a.clone(), c, stop: stop.clone() };
            threads.push(thread::spawn(move || {
                let r = match role {
                    "export" => exporter(job),
                    "import" => importer(job),
                    "export-topic" => topic::exporter(job),
                    "import-topic" => topic::importer(job),
                    "export-service" => service::exporter(job),
                    _ => service::importer(job),
                };
                if let Err(e) = r {
                    log(&format!("{role} {n}: fatal: {e}"));
                    st.store(true, Ordering::Relaxed);
                    return false;
                }
                true
            }));
        }
    }
    let mut ok = true;
    let status = shm_channel::dir().join(format!(".bridge-{}.json", std::process::id()));
    let mut peer = PeerWatch::default();
    while !threads.is_empty() {
        peer.poll(&session, &a);
        write_status(&status, &all, &peer, &a);
        if let Some(p) = &a.stats {
            write_stats(p, &all);
        }
        let (done, rest): (Vec<_>, Vec<_>) = threads.into_iter().partition(|t| t.is_finished());
        threads = rest;
        for t in done {
            ok &= t.join().unwrap_or(false);
        }
        if !threads.is_empty() {
            thread::sleep(Duration::from_millis(200));
        }
    }
    if let Some(p) = &a.stats {
        write_stats(p, &all);
    }
    let _ = fs::remove_file(&status);
    log(if ok { "done" } else { "failed" });
    std::process::exit(if ok { 0 } else { 1 });
}
