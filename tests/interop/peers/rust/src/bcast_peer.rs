//! Broadcast interop participant, Rust side, over the safe `shm-channel` crate's topics
//! (`Publisher` / `Subscriber`). The contract (commands, options, messages, output) is the one
//! shared with bcast_peer.c and bcast_peer.py (tests/interop/README.md, "Broadcast"):
//!
//! ```text
//! bcast_peer publish   --name N --count C [--depth D=64] [--max-payload M=4096] [--type T=bytes]
//!                      [--seed S=1] [--wait-subs K] [--rate HZ] [--hang-at I] [--start I=0]
//! bcast_peer subscribe --name N [--count C] [--type T=bytes] [--seed S=1] [--mode block|poll|latest]
//!                      [--zero-copy] [--start-after FILE] [--slow-us U] [--progress FILE]
//!                      [--expect-end EPIPE|EOWNERDEAD] [--timeout-s 60]
//!                      [--depth D=64] [--max-payload M=4096]
//! ```
//!
//! Typed topics go through the typed API (`Publisher<f64>`, `Subscriber<str>`, `Pod` types
//! for `struct:<3d` and `ndarray:|u1:4x8x3`); `bytes` through the bytes API with the tag. A message whose number
//! cannot be read back from its value (`bool`, `ndarray:|u1:4x8x3`) is numbered from the
//! subscriber's own position (`next_seq - 2`, the numbering a taking-over publisher continues
//! with `--start`).
//!
//! `--progress FILE`: after every message, 24 bytes `pwrite`n at offset 0: u64 delivered,
//! u64 last message number + 1 (0: none yet), u64 missed (the running total).

use std::fs::{File, OpenOptions as FsOpenOptions};
use std::os::unix::fs::FileExt;
use std::process::exit;
use std::time::{Duration, Instant};

use shm_channel::{AnyBitPattern, Error, Message, Pod, Subscriber, TopicOptions};

const USAGE: &str = "usage: bcast_peer publish --name N --count C [--depth D] [--max-payload M] \
[--type T] [--seed S] [--wait-subs K] [--rate HZ] [--hang-at I] [--start I]\n       \
bcast_peer subscribe --name N [--count C] [--type T] [--seed S] [--mode block|poll|latest] \
[--zero-copy] [--start-after FILE] [--slow-us U] [--progress FILE] \
[--expect-end EPIPE|EOWNERDEAD] [--timeout-s S] [--depth D] [--max-payload M]\n       \
types: bytes str f64 i64 bool struct:<3d ndarray:|u1:4x8x3";

fn usage(msg: &str) -> ! {
    eprintln!("bcast_peer: {msg}\n{USAGE}");
    exit(2)
}

// ---- message definition ----------------------------------------------------------------------

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

const I64_BIAS: u64 = 1 << 40;
const FRAME_LEN: usize = 4 * 8 * 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bytes,
    Str,
    F64,
    I64,
    Bool,
    Struct3d,
    Frame,
}

impl Kind {
    fn parse(t: &str) -> Option<Kind> {
        Some(match t {
            "bytes" => Kind::Bytes,
            "str" => Kind::Str,
            "f64" => Kind::F64,
            "i64" => Kind::I64,
            "bool" => Kind::Bool,
            "struct:<3d" => Kind::Struct3d,
            "ndarray:|u1:4x8x3" => Kind::Frame,
            _ => return None,
        })
    }
}

/// The topic's wire bytes of message `i`.
fn expected(kind: Kind, seed: u64, max_payload: u64, i: u64) -> Vec<u8> {
    match kind {
        Kind::Bytes => {
            let h = splitmix64(seed ^ i);
            let len = (h % (max_payload - 16 + 1)) as usize;
            let body: Vec<u8> = (0..len)
                .map(|k| (((h >> (8 * (k % 8))) as usize ^ k) & 0xFF) as u8)
                .collect();
            let mut m = Vec::with_capacity(16 + len);
            m.extend_from_slice(&i.to_le_bytes());
            m.extend_from_slice(&(len as u32).to_le_bytes());
            m.extend_from_slice(&crc32(&body).to_le_bytes());
            m.extend_from_slice(&body);
            m
        }
        Kind::Str => format!("msg-{i}").into_bytes(),
        Kind::F64 => (i as f64 * 0.5).to_le_bytes().to_vec(),
        Kind::I64 => (i.wrapping_sub(I64_BIAS) as i64).to_le_bytes().to_vec(),
        Kind::Bool => vec![(i & 1) as u8],
        Kind::Struct3d => [i as f64, 2.0 * i as f64, -(i as f64)]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        Kind::Frame => (0..FRAME_LEN).map(|k| (i as usize + k) as u8).collect(),
    }
}

/// The message number a value carries, when it carries one whole.
fn number_of(kind: Kind, m: &[u8]) -> Option<u64> {
    let le8 = |b: &[u8]| -> Option<[u8; 8]> { b.get(..8)?.try_into().ok() };
    match kind {
        Kind::Bytes => le8(m).map(u64::from_le_bytes),
        Kind::Str => std::str::from_utf8(m)
            .ok()?
            .strip_prefix("msg-")?
            .parse()
            .ok(),
        Kind::F64 => {
            let v = f64::from_le_bytes(le8(m)?);
            (0.0..1e15).contains(&v).then_some((v * 2.0) as u64)
        }
        Kind::I64 => Some((i64::from_le_bytes(le8(m)?) as u64).wrapping_add(I64_BIAS)),
        Kind::Struct3d => {
            let v = f64::from_le_bytes(le8(m)?);
            (0.0..1e15).contains(&v).then_some(v as u64)
        }
        Kind::Bool | Kind::Frame => None,
    }
}

// ---- the Pod types of the contract ------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Vec3 {
    x: f64,
    y: f64,
    z: f64,
}
// SAFETY: repr(C), three f64, no padding; every bit pattern is a Vec3; alignment 8.
unsafe impl Pod for Vec3 {
    const TYPE_TAG: &'static str = "struct:<3d";
}
// SAFETY: as above.
unsafe impl AnyBitPattern for Vec3 {}

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(transparent)]
struct Frame([u8; FRAME_LEN]);
// SAFETY: a byte array: no padding, every pattern valid, alignment 1.
unsafe impl Pod for Frame {
    const TYPE_TAG: &'static str = "ndarray:|u1:4x8x3";
}
// SAFETY: as above.
unsafe impl AnyBitPattern for Frame {}

/// An owned value's wire bytes (what the typed API handed out, back as bytes to check).
trait Wire {
    fn wire(&self) -> Vec<u8>;
}
impl Wire for Vec<u8> {
    fn wire(&self) -> Vec<u8> {
        self.clone()
    }
}
impl Wire for String {
    fn wire(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}
/// The typed side of [`Wire`] and [`Owned`] for each Pod type of the contract.
macro_rules! pod_wire {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            fn wire(&self) -> Vec<u8> {
                self.bytes_of().to_vec()
            }
        }
        impl Owned for $t {
            type Value = $t;
            fn borrow(v: &$t) -> &$t {
                v
            }
        }
    )*};
}
pod_wire!(f64, i64, bool, Vec3, Frame);

// ---- options --------------------------------------------------------------------------------

struct Opts {
    publish: bool,
    name: String,
    count: Option<u64>,
    depth: u32,
    max_payload: u64,
    type_tag: String,
    kind: Kind,
    seed: u64,
    wait_subs: u32,
    rate: f64,
    hang_at: Option<u64>,
    start: u64,
    mode: String,
    zero_copy: bool,
    start_after: Option<String>,
    slow_us: u64,
    progress: Option<String>,
    expect_end: Option<String>,
    timeout: Duration,
}

fn num(opt: &str, v: &str) -> u64 {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        usage(&format!("{opt}: {v}"));
    }
    v.parse().unwrap_or_else(|_| usage(&format!("{opt}: {v}")))
}

fn float(opt: &str, v: &str) -> f64 {
    match v.parse::<f64>() {
        Ok(f) if (0.0..1e12).contains(&f) => f,
        _ => usage(&format!("{opt}: {v}")),
    }
}

/// Every argument is checked before anything is opened or created.
fn parse() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let publish = match args.first().map(String::as_str) {
        Some("publish") => true,
        Some("subscribe") => false,
        Some(c) => usage(&format!("unknown command: {c}")),
        None => usage("no command"),
    };
    let mut o = Opts {
        publish,
        name: String::new(),
        count: None,
        depth: 64,
        max_payload: 4096,
        type_tag: "bytes".into(),
        kind: Kind::Bytes,
        seed: 1,
        wait_subs: 0,
        rate: 0.0,
        hang_at: None,
        start: 0,
        mode: "block".into(),
        zero_copy: false,
        start_after: None,
        slow_us: 0,
        progress: None,
        expect_end: None,
        timeout: Duration::from_secs(60),
    };
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        if a == "--zero-copy" && !publish {
            o.zero_copy = true;
            continue;
        }
        let v = match it.next() {
            Some(v) if !v.starts_with("--") => v.as_str(),
            _ => usage(&format!("option without a value: {a}")),
        };
        match (a.as_str(), publish) {
            ("--name", _) => o.name = v.to_owned(),
            ("--count", _) => o.count = Some(num(a, v)),
            ("--depth", _) => {
                o.depth = u32::try_from(num(a, v)).unwrap_or_else(|_| usage("--depth too large"))
            }
            ("--max-payload", _) => o.max_payload = num(a, v),
            ("--type", _) => {
                o.kind = Kind::parse(v).unwrap_or_else(|| usage(&format!("unknown type: {v}")));
                o.type_tag = v.to_owned();
            }
            ("--seed", _) => o.seed = num(a, v),
            ("--wait-subs", true) => {
                o.wait_subs = u32::try_from(num(a, v)).unwrap_or_else(|_| usage("--wait-subs"))
            }
            ("--rate", true) => o.rate = float(a, v),
            ("--hang-at", true) => o.hang_at = Some(num(a, v)),
            ("--start", true) => o.start = num(a, v),
            ("--mode", false) => match v {
                "block" | "poll" | "latest" => o.mode = v.to_owned(),
                _ => usage("--mode is block, poll or latest"),
            },
            ("--start-after", false) => o.start_after = Some(v.to_owned()),
            ("--slow-us", false) => o.slow_us = num(a, v),
            ("--progress", false) => o.progress = Some(v.to_owned()),
            ("--expect-end", false) => match v {
                "EPIPE" | "EOWNERDEAD" => o.expect_end = Some(v.to_owned()),
                _ => usage("--expect-end is EPIPE or EOWNERDEAD"),
            },
            ("--timeout-s", false) => {
                let s = float(a, v);
                if s <= 0.0 {
                    usage("--timeout-s must be positive");
                }
                o.timeout = Duration::from_secs_f64(s);
            }
            _ => usage(&format!("unknown option: {a}")),
        }
    }
    if o.name.is_empty() {
        usage("--name is required");
    }
    if publish && o.count.is_none() {
        usage("publish needs --count");
    }
    if !(2..=1 << 24).contains(&o.depth) {
        usage("--depth is 2 to 2^24");
    }
    if !(16..=1 << 31).contains(&o.max_payload) {
        usage("--max-payload is 16 to 2^31");
    }
    o
}

fn topic_options(o: &Opts) -> TopicOptions {
    let mut t = TopicOptions::new();
    t.create(true)
        .depth(o.depth)
        .max_payload(o.max_payload as usize)
        .mode(0o600);
    t
}

fn err_name(e: &Error) -> String {
    match e.errno() {
        Some(libc::EPIPE) => "EPIPE".into(),
        Some(libc::EOWNERDEAD) => "EOWNERDEAD".into(),
        Some(libc::EAGAIN) => "EAGAIN".into(),
        Some(libc::ETIMEDOUT) => "ETIMEDOUT".into(),
        Some(libc::EBADMSG) => "EBADMSG".into(),
        Some(libc::EMEDIUMTYPE) => "EMEDIUMTYPE".into(),
        Some(libc::EINVAL) => "EINVAL".into(),
        Some(libc::EBUSY) => "EBUSY".into(),
        Some(n) => format!("errno {n}"),
        None => "E?".into(),
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---- publish ----------------------------------------------------------------------------------

fn publish(o: &Opts) -> i32 {
    match o.kind {
        Kind::Bytes => publish_as::<[u8]>(o, |v| v.to_vec()),
        Kind::Str => publish_as::<str>(o, |v| String::from_utf8(v.to_vec()).unwrap()),
        Kind::F64 => publish_as::<f64>(o, |v| f64::from_le_bytes(v.try_into().unwrap())),
        Kind::I64 => publish_as::<i64>(o, |v| i64::from_le_bytes(v.try_into().unwrap())),
        Kind::Bool => publish_as::<bool>(o, |v| v[0] != 0),
        Kind::Struct3d => publish_as::<Vec3>(o, |v| {
            let f = |k: usize| f64::from_le_bytes(v[8 * k..8 * k + 8].try_into().unwrap());
            Vec3 {
                x: f(0),
                y: f(1),
                z: f(2),
            }
        }),
        Kind::Frame => publish_as::<Frame>(o, |v| Frame(v.try_into().unwrap())),
    }
}

/// Publishes through `Publisher<T>`, each message built from its wire bytes by `make`
/// (for a typed topic, the value; the typed API turns it back into the same bytes).
fn publish_as<T>(o: &Opts, make: impl Fn(&[u8]) -> <T as Owned>::Value) -> i32
where
    T: ?Sized + Message + Owned,
{
    let mut opts = topic_options(o);
    if T::TAG.is_empty() {
        opts.type_tag(&o.type_tag);
    }
    let mut tx = match opts.publisher::<T>(&o.name) {
        Ok(tx) => tx,
        Err(e) => return publisher_result(0, Some(format!("open: {e} ({})", err_name(&e)))),
    };
    if o.wait_subs > 0 {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            match tx.subscribers() {
                Ok(n) if n >= o.wait_subs => break,
                Ok(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(1)),
                Ok(n) => {
                    return publisher_result(
                        0,
                        Some(format!("only {n} of {} subscribers came", o.wait_subs)),
                    )
                }
                Err(e) => return publisher_result(0, Some(format!("stat: {e}"))),
            }
        }
    }
    let count = o.count.unwrap_or(0);
    let t0 = Instant::now();
    let mut published = 0u64;
    for i in o.start..o.start + count {
        if o.hang_at == Some(i) {
            loop {
                std::thread::sleep(Duration::from_secs(3600)); // until the harness's SIGKILL
            }
        }
        if o.rate > 0.0 {
            let due = t0 + Duration::from_secs_f64(published as f64 / o.rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let bytes = expected(o.kind, o.seed, o.max_payload, i);
        let value = make(&bytes);
        if let Err(e) = tx.publish(T::borrow(&value)) {
            return publisher_result(published, Some(format!("publish {i}: {e}")));
        }
        published += 1;
    }
    drop(tx); // end-of-stream
    publisher_result(published, None)
}

/// Maps a message type to the owned value a publisher builds (bytes: `Vec<u8>`).
trait Owned: Message {
    type Value;
    fn borrow(v: &Self::Value) -> &Self;
}
impl Owned for [u8] {
    type Value = Vec<u8>;
    fn borrow(v: &Vec<u8>) -> &[u8] {
        v
    }
}
impl Owned for str {
    type Value = String;
    fn borrow(v: &String) -> &str {
        v
    }
}

fn publisher_result(published: u64, error: Option<String>) -> i32 {
    let ok = error.is_none();
    let err = error
        .map(|e| format!(",\"error\":{}", json_str(&e)))
        .unwrap_or_default();
    println!(
        "{{\"lang\":\"rust\",\"role\":\"publisher\",\"published\":{published},\"ok\":{ok}{err}}}"
    );
    if ok {
        0
    } else {
        1
    }
}

// ---- subscribe --------------------------------------------------------------------------------

struct Tally {
    kind: Kind,
    seed: u64,
    max_payload: u64,
    delivered: u64,
    missed: u64,
    first: Option<u64>,
    last: Option<u64>,
    error: Option<String>,
    progress: Option<File>,
}

impl Tally {
    fn fail(&mut self, msg: String) {
        if self.error.is_none() {
            self.error = Some(msg);
        }
    }

    /// Checks one delivered message: its bytes `m`, the missed count reported with it, and
    /// `seq`, its number on the topic (1-based).
    fn message(&mut self, m: &[u8], missed: u64, seq: u64) {
        let i = number_of(self.kind, m).unwrap_or(seq.wrapping_sub(1));
        let want = expected(self.kind, self.seed, self.max_payload, i);
        if m != want.as_slice() {
            self.fail(format!(
                "message {i}: content differs ({} bytes, expected {})",
                m.len(),
                want.len()
            ));
        }
        if let Some(last) = self.last {
            if i <= last {
                self.fail(format!("message {i} after {last}: not increasing"));
            } else if i - last - 1 != missed {
                self.fail(format!(
                    "message {i} after {last}: reported {missed} missed, the gap is {}",
                    i - last - 1
                ));
            }
        }
        self.first.get_or_insert(i);
        self.last = Some(i);
        self.delivered += 1;
        self.missed += missed;
        self.put_progress();
    }

    fn put_progress(&self) {
        if let Some(f) = &self.progress {
            let mut w = [0u8; 24];
            w[..8].copy_from_slice(&self.delivered.to_le_bytes());
            w[8..16].copy_from_slice(&self.last.map_or(0, |l| l + 1).to_le_bytes());
            w[16..].copy_from_slice(&self.missed.to_le_bytes());
            f.write_all_at(&w, 0).expect("progress write");
        }
    }
}

fn subscribe(o: &Opts) -> i32 {
    match o.kind {
        Kind::Bytes => subscribe_as::<[u8]>(o),
        Kind::Str => subscribe_as::<str>(o),
        Kind::F64 => subscribe_as::<f64>(o),
        Kind::I64 => subscribe_as::<i64>(o),
        Kind::Bool => subscribe_as::<bool>(o),
        Kind::Struct3d => subscribe_as::<Vec3>(o),
        Kind::Frame => subscribe_as::<Frame>(o),
    }
}

fn subscribe_as<T: ?Sized + Message>(o: &Opts) -> i32
where
    T::Owned: Wire,
{
    let progress = o.progress.as_ref().map(|p| {
        FsOpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(p)
            .unwrap_or_else(|e| usage(&format!("progress file {p}: {e}")))
    });
    let mut opts = topic_options(o);
    if T::TAG.is_empty() {
        opts.type_tag(&o.type_tag);
    }
    let mut t = Tally {
        kind: o.kind,
        seed: o.seed,
        max_payload: o.max_payload,
        delivered: 0,
        missed: 0,
        first: None,
        last: None,
        error: None,
        progress,
    };
    let mut rx = match opts.subscriber::<T>(&o.name) {
        Ok(rx) => rx,
        Err(e) => {
            t.fail(format!("open: {e} ({})", err_name(&e)));
            return subscriber_result(o, &t, "error", None);
        }
    };
    if let Some(f) = &o.start_after {
        let until = Instant::now() + o.timeout;
        while !std::path::Path::new(f).exists() {
            if Instant::now() > until {
                t.fail(format!("{f} never appeared"));
                return subscriber_result(o, &t, "error", None);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let deadline = Instant::now() + o.timeout;
    let end = if o.mode == "latest" {
        read_latest(o, &mut rx, &mut t, deadline)
    } else {
        read_next(o, &mut rx, &mut t, deadline)
    };
    let counters = rx.counters();
    match &counters {
        Ok(c) if c.delivered != t.delivered || c.missed != t.missed => t.fail(format!(
            "the handle counts {} delivered and {} missed, the peer {} and {}",
            c.delivered, c.missed, t.delivered, t.missed
        )),
        Ok(_) => {}
        Err(e) => t.fail(format!("counters: {e}")),
    }
    let missed_total = counters.ok().map(|c| c.missed);
    drop(rx);
    subscriber_result(o, &t, &end, missed_total)
}

/// The subscriber's number of the message it just finished (its `next_seq` - 1).
fn seq_now<T: ?Sized + Message>(rx: &Subscriber<T>) -> u64 {
    rx.counters().map_or(0, |c| c.next_seq.saturating_sub(1))
}

fn done(o: &Opts, t: &Tally) -> bool {
    o.count.is_some_and(|c| t.delivered >= c)
}

fn slow(o: &Opts) {
    if o.slow_us > 0 {
        std::thread::sleep(Duration::from_micros(o.slow_us));
    }
}

/// Reads in order (block, poll; copies or zero-copy views) until the end; returns how it
/// ended.
fn read_next<T: ?Sized + Message>(
    o: &Opts,
    rx: &mut Subscriber<T>,
    t: &mut Tally,
    deadline: Instant,
) -> String
where
    T::Owned: Wire,
{
    let poll = o.mode == "poll";
    loop {
        if done(o, t) {
            return "count".into();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            t.fail("timed out".into());
            return "timeout".into();
        }
        rx.set_timeout(Some(if poll { Duration::ZERO } else { left }));
        let got = if o.zero_copy {
            match rx.peek() {
                Ok(view) => {
                    let bytes = view.bytes().to_vec(); // checked after the release's verdict
                    let missed = view.missed();
                    match view.release() {
                        Ok(()) => Ok(Some((bytes, missed))),
                        // Overwritten while held: counted missed, its bytes may be torn.
                        Err(Error::Overwritten) => {
                            t.missed += missed + 1;
                            if let Some(last) = t.last.as_mut() {
                                *last += missed + 1; // the numbering goes on past it
                            }
                            Ok(None)
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        } else {
            rx.next().map(|s| Some((s.value.wire(), s.missed)))
        };
        match got {
            Ok(Some((bytes, missed))) => {
                let seq = seq_now(rx);
                t.message(&bytes, missed, seq);
                slow(o);
            }
            Ok(None) => {}
            Err(Error::WouldBlock) if poll => std::thread::yield_now(),
            Err(e @ (Error::EndOfStream | Error::PeerDied)) => return err_name(&e),
            Err(e) => {
                t.fail(format!("read: {e} ({})", err_name(&e)));
                return "error".into();
            }
        }
    }
}

/// Reads the newest value only, until the publisher is seen closed or dead with nothing new.
fn read_latest<T: ?Sized + Message>(
    o: &Opts,
    rx: &mut Subscriber<T>,
    t: &mut Tally,
    deadline: Instant,
) -> String
where
    T::Owned: Wire,
{
    let mut current: Option<Vec<u8>> = None;
    let mut ending: Option<&'static str> = None;
    loop {
        if done(o, t) {
            return "count".into();
        }
        if Instant::now() > deadline {
            t.fail("timed out".into());
            return "timeout".into();
        }
        let got = if o.zero_copy {
            match rx.peek_latest() {
                Ok(Some(view)) => {
                    let (bytes, is_new, missed) =
                        (view.bytes().to_vec(), view.is_new(), view.missed());
                    match view.release() {
                        Ok(()) => Ok(Some((bytes, is_new, missed))),
                        Err(Error::Overwritten) if is_new => {
                            t.missed += missed + 1;
                            if let Some(last) = t.last.as_mut() {
                                *last += missed + 1;
                            }
                            Ok(None)
                        }
                        Err(Error::Overwritten) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        } else {
            rx.latest()
                .map(|l| l.map(|l| (l.value.wire(), l.is_new, l.missed)))
        };
        let fresh = match got {
            Ok(Some((bytes, true, missed))) => {
                let seq = seq_now(rx);
                t.message(&bytes, missed, seq);
                current = Some(bytes);
                slow(o);
                true
            }
            Ok(Some((bytes, false, missed))) => {
                if missed != 0 {
                    t.fail(format!("a value that is not new reports {missed} missed"));
                }
                if current.as_ref() != Some(&bytes) {
                    t.fail("a value that is not new differs from the last new one".into());
                }
                false
            }
            Ok(None) => false,
            Err(Error::WouldBlock) => false, // overwritten during every copy: try again
            Err(e) => {
                t.fail(format!("latest: {e} ({})", err_name(&e)));
                return "error".into();
            }
        };
        if fresh {
            ending = None;
            continue;
        }
        if let Some(end) = ending {
            // The publisher was seen gone, and nothing was new after that: the end.
            return end.into();
        }
        match rx.stat() {
            Ok(st) => {
                use shm_channel::PeerState;
                if st.publisher_state == PeerState::Closed {
                    ending = Some("EPIPE"); // one more look for a last value first
                } else if st.publisher_state == PeerState::Attached && !st.publisher_alive {
                    ending = Some("EOWNERDEAD");
                } else {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
            Err(e) => {
                t.fail(format!("stat: {e}"));
                return "error".into();
            }
        }
    }
}

fn subscriber_result(o: &Opts, t: &Tally, end: &str, missed_total: Option<u64>) -> i32 {
    let mut error = t.error.clone();
    if let Some(want) = &o.expect_end {
        if error.is_none() && end != want {
            error = Some(format!("ended with {end}, expected {want}"));
        }
    }
    let ok = error.is_none();
    let opt = |v: Option<u64>| v.map_or("null".to_owned(), |v| v.to_string());
    println!(
        "{{\"lang\":\"rust\",\"role\":\"subscriber\",\"delivered\":{},\"missed\":{},\"first\":{},\
         \"last\":{},\"end\":{},\"missed_total\":{},\"ok\":{ok},\"error\":{}}}",
        t.delivered,
        t.missed,
        opt(t.first),
        opt(t.last),
        json_str(end),
        opt(missed_total),
        json_str(error.as_deref().unwrap_or(""))
    );
    if ok {
        0
    } else {
        1
    }
}

fn main() {
    let o = parse();
    let rc = if o.publish {
        publish(&o)
    } else {
        subscribe(&o)
    };
    exit(rc)
}
