//! Interop participant, Rust side, over the safe `shm-channel` crate. The contract (commands,
//! options, message definition, output) is in tests/interop/README.md; peer.c and peer.py
//! implement the same one.

use std::fs::{File, OpenOptions as FsOpenOptions};
use std::os::unix::fs::FileExt;
use std::process::exit;
use std::time::{Duration, Instant};

use shm_channel::{Consumer, Error, OpenOptions, Producer};

// ---- message definition (README.md, "Messages") -------------------------------------------

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
const POOL_SEED_XOR: u64 = 0x6A09_E667_F3BC_C909;
const POOL_SPAN: u64 = 65536;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Gen {
    seed: u64,
    max_size: u64,
    fixed: Option<u64>,
    pool: Vec<u8>,
}

impl Gen {
    fn new(seed: u64, max_size: u64, fixed: Option<u64>) -> Gen {
        let biggest = fixed.unwrap_or(max_size);
        let len = (POOL_SPAN + biggest + 8) & !7;
        let ps = seed ^ POOL_SEED_XOR;
        let mut pool = Vec::with_capacity(len as usize);
        for k in 0..len / 8 {
            pool.extend_from_slice(
                &mix(ps.wrapping_add((k + 1).wrapping_mul(GOLDEN))).to_le_bytes(),
            );
        }
        Gen {
            seed,
            max_size,
            fixed,
            pool,
        }
    }

    fn hash(&self, i: u64) -> u64 {
        mix(self
            .seed
            .wrapping_add(i.wrapping_add(1).wrapping_mul(GOLDEN)))
    }

    fn size(&self, i: u64) -> u64 {
        if let Some(f) = self.fixed {
            return f;
        }
        let h = self.hash(i);
        match h & 63 {
            0 => 0,
            1 => self.max_size,
            2..=23 => (h >> 8) % (self.max_size.min(64) + 1),
            _ => (h >> 8) % (self.max_size.min(2048) + 1),
        }
    }

    fn pool_at(&self, i: u64) -> &[u8] {
        &self.pool[(self.hash(i) >> 48) as usize..]
    }

    /// Writes message i into dst (whose length is its size).
    fn fill(&self, i: u64, dst: &mut [u8]) {
        let n = dst.len();
        let pool = self.pool_at(i);
        if n < 12 {
            let mut head = [0u8; 12];
            head[..8].copy_from_slice(&i.to_le_bytes());
            head[8..].copy_from_slice(&pool[..4]);
            dst.copy_from_slice(&head[..n]);
            return;
        }
        dst[..8].copy_from_slice(&i.to_le_bytes());
        dst[8..n - 4].copy_from_slice(&pool[..n - 12]);
        let sum = adler32(&dst[..n - 4]);
        dst[n - 4..].copy_from_slice(&sum.to_le_bytes());
    }

    /// Ok if m is message i, else a description.
    fn check(&self, i: u64, m: &[u8]) -> Result<(), String> {
        let n = m.len();
        let want = self.size(i);
        let pool = self.pool_at(i);
        let mut seqb = [0u8; 8];
        seqb[..n.min(8)].copy_from_slice(&m[..n.min(8)]);
        let seq = u64::from_le_bytes(seqb);
        if n as u64 != want {
            return Err(format!(
                "message {i}: size {n}, expected {want} (its first bytes read as seq {seq})"
            ));
        }
        if n < 12 {
            let mut head = [0u8; 12];
            head[..8].copy_from_slice(&i.to_le_bytes());
            head[8..].copy_from_slice(&pool[..4]);
            if m != &head[..n] {
                return Err(format!("message {i} ({n} bytes): content differs"));
            }
            return Ok(());
        }
        if seq != i {
            return Err(format!("message {i}: carries sequence number {seq}"));
        }
        let sum = u32::from_le_bytes(m[n - 4..].try_into().unwrap());
        if adler32(&m[..n - 4]) != sum {
            return Err(format!("message {i} ({n} bytes): checksum mismatch"));
        }
        if m[8..n - 4] != pool[..n - 12] {
            return Err(format!("message {i} ({n} bytes): content differs"));
        }
        Ok(())
    }
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += x as u32;
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

// ---- options ----------------------------------------------------------------------------

struct Opts {
    cmd: String,
    name: Option<String>,
    capacity: u64,
    seed: u64,
    count: i64,
    start: u64,
    max_size: u64,
    fixed: Option<u64>,
    hang_at: Option<u64>,
    pause_at: Option<u64>,
    progress: Option<String>,
    end: String,
    deadline: f64,
    poll: bool,
    zero_copy: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!("peer: {msg}\nusage: peer info|produce|consume|vector [options] (see tests/interop/README.md)");
    exit(2)
}

/// A whole unsigned decimal number, or usage.
fn num(opt: &str, v: &str) -> u64 {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        usage(&format!("{opt}: {v}"));
    }
    v.parse().unwrap_or_else(|_| usage(&format!("{opt}: {v}")))
}

/// Every argument is checked before anything is opened or created (README: "Bad
/// arguments").
fn parse() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        usage("no command");
    }
    if !["info", "produce", "consume", "vector"].contains(&args[0].as_str()) {
        usage(&format!("unknown command: {}", args[0]));
    }
    let mut o = Opts {
        cmd: args[0].clone(),
        name: None,
        capacity: 65536,
        seed: 1,
        count: -1,
        start: 0,
        max_size: u64::MAX,
        fixed: None,
        hang_at: None,
        pause_at: None,
        progress: None,
        end: "EPIPE".into(),
        deadline: 120.0,
        poll: false,
        zero_copy: false,
    };
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        if a == "--zero-copy" {
            o.zero_copy = true;
            continue;
        }
        // A missing value: the next word is another option.
        let v = match it.next() {
            Some(v) if !v.starts_with("--") => v,
            _ => usage(&format!("option without a value: {a}")),
        };
        match a.as_str() {
            "--name" => o.name = Some(v.clone()),
            "--capacity" => o.capacity = num(a, v),
            "--seed" => o.seed = num(a, v),
            "--count" => {
                o.count = i64::try_from(num(a, v)).unwrap_or_else(|_| usage(&format!("{a}: {v}")))
            }
            "--start" => o.start = num(a, v),
            "--max-size" => o.max_size = num(a, v),
            "--fixed-size" => o.fixed = Some(num(a, v)),
            "--hang-at" => o.hang_at = Some(num(a, v)),
            "--pause-at" => o.pause_at = Some(num(a, v)),
            "--progress" => o.progress = Some(v.clone()),
            "--end" => match v.as_str() {
                "EPIPE" | "EOWNERDEAD" => o.end = v.clone(),
                _ => usage("--end is EPIPE or EOWNERDEAD"),
            },
            "--deadline" => match v.parse::<f64>() {
                Ok(d) if d > 0.0 && d < 1e9 => o.deadline = d, // also refuses NaN and inf
                _ => usage(&format!("{a}: {v}")),
            },
            "--mode" => match v.as_str() {
                "poll" => o.poll = true,
                "block" => o.poll = false,
                _ => usage("--mode is block or poll"),
            },
            _ => usage(&format!("unknown option: {a}")),
        }
    }
    let cap = o.capacity;
    if !cap.is_power_of_two() || !(shm_channel::MIN_CAPACITY as u64..=1 << 40).contains(&cap) {
        usage("--capacity is a power of two from 1024 to 2^40");
    }
    let top = cap / 2 - 8;
    if o.max_size == u64::MAX {
        o.max_size = top;
    }
    if o.max_size > top || o.fixed.is_some_and(|f| f > top) {
        usage("--max-size and --fixed-size are at most capacity/2 - 8");
    }
    if o.cmd != "info" && o.name.is_none() {
        usage("--name is required");
    }
    if o.cmd == "produce" && o.count < 0 {
        usage("produce needs --count");
    }
    o
}

fn err_name(e: &Error) -> &'static str {
    match e.errno() {
        Some(libc::EAGAIN) => "EAGAIN",
        Some(libc::ETIMEDOUT) => "ETIMEDOUT",
        Some(libc::EPIPE) => "EPIPE",
        Some(libc::EOWNERDEAD) => "EOWNERDEAD",
        Some(libc::EBADMSG) => "EBADMSG",
        Some(libc::EPROTO) => "EPROTO",
        Some(libc::EPROTONOSUPPORT) => "EPROTONOSUPPORT",
        Some(libc::EPROTOTYPE) => "EPROTOTYPE",
        Some(libc::EMSGSIZE) => "EMSGSIZE",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EBUSY) => "EBUSY",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EINTR) => "EINTR",
        _ => "E?",
    }
}

// ---- progress file ------------------------------------------------------------------------

struct Progress(Option<File>);

impl Progress {
    fn open(path: &Option<String>) -> Progress {
        Progress(path.as_ref().map(|p| {
            FsOpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .unwrap_or_else(|e| usage(&format!("progress file {p}: {e}")))
        }))
    }

    fn put(&self, done: u64, hang: u64, owner_dead: u64) {
        if let Some(f) = &self.0 {
            let mut w = [0u8; 24];
            w[..8].copy_from_slice(&done.to_le_bytes());
            w[8..16].copy_from_slice(&hang.to_le_bytes());
            w[16..].copy_from_slice(&owner_dead.to_le_bytes());
            f.write_all_at(&w, 0).expect("progress write");
        }
    }
}

fn hang_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600)); // until the runner's SIGKILL
    }
}

// ---- commands ---------------------------------------------------------------------------

fn open_opts(o: &Opts) -> OpenOptions {
    let mut opts = OpenOptions::new();
    opts.create(true).capacity(o.capacity as usize).mode(0o600);
    opts
}

fn name(o: &Opts) -> &str {
    o.name
        .as_deref()
        .unwrap_or_else(|| usage("--name is required"))
}

fn open_failed(e: Error) -> ! {
    println!(
        "{{\"lang\":\"rust\",\"ok\":false,\"errors\":[\"open: {}\"]}}",
        json_str(&e.to_string())
    );
    exit(2)
}

fn json_str(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && *c != '\\').collect()
}

/// Timeout of one attempt: zero when polling, else a slice of the time left.
fn slice(o: &Opts, deadline: Instant) -> Option<Duration> {
    if o.poll {
        return Some(Duration::ZERO);
    }
    let left = deadline.saturating_duration_since(Instant::now());
    Some(left.min(Duration::from_secs(1)))
}

#[allow(clippy::too_many_arguments)]
fn print_result(
    role: &str,
    error: &Option<String>,
    first: u64,
    next: u64,
    bytes: u64,
    secs: f64,
    end: &str,
    owner_dead: u64,
    end_pos: u64,
) {
    let count = next - first;
    let (mps, mbps) = if secs > 0.0 {
        (count as f64 / secs, bytes as f64 / secs / 1e6)
    } else {
        (0.0, 0.0)
    };
    let errors = match error {
        Some(e) => format!("\"{}\"", json_str(e)),
        None => String::new(),
    };
    println!(
        "{{\"lang\":\"rust\",\"role\":\"{role}\",\"ok\":{},\"count\":{count},\"first\":{first},\
         \"next\":{next},\"bytes\":{bytes},\"secs\":{secs:.6},\"msgs_per_s\":{mps:.1},\
         \"mb_per_s\":{mbps:.1},\"end\":\"{end}\",\"owner_dead\":{owner_dead},\
         \"end_pos\":{end_pos},\"dups\":0,\"errors\":[{errors}]}}",
        error.is_none()
    );
}

fn produce(o: &Opts) -> i32 {
    if o.count < 0 {
        usage("produce needs --count");
    }
    let count = o.count as u64;
    let mut tx: Producer = open_opts(o)
        .producer(name(o))
        .unwrap_or_else(|e| open_failed(e));
    let g = Gen::new(o.seed, o.max_size, o.fixed);
    let progress = Progress::open(&o.progress);
    let mut buf = vec![0u8; g.pool.len()];
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(o.deadline);
    let (mut bytes, mut owner_dead, mut i) = (0u64, 0u64, o.start);
    let mut error = None;
    let mut end = "CLOSED";
    let mut code = 0;
    while i < count {
        if o.pause_at == Some(i) {
            hang_forever(); // everything before message i is published
        }
        let n = g.size(i) as usize;
        tx.set_timeout(slice(o, deadline));
        let r = if o.zero_copy || o.hang_at == Some(i) {
            match tx.reserve(n) {
                Ok(mut space) => {
                    if o.hang_at == Some(i) {
                        // Half a message in the ring, never committed: no consumer may see it.
                        let mut half = vec![0u8; n / 2];
                        g.fill(i, &mut half);
                        space[..n / 2].copy_from_slice(&half);
                        progress.put(i, i + 1, owner_dead);
                        hang_forever();
                    }
                    g.fill(i, &mut space);
                    space.commit()
                }
                Err(e) => Err(e),
            }
        } else {
            g.fill(i, &mut buf[..n]);
            tx.write(&buf[..n])
        };
        match r {
            Ok(()) => {
                bytes += n as u64;
                i += 1;
                progress.put(i, 0, owner_dead);
                continue;
            }
            Err(Error::PeerDied) => {
                owner_dead += 1; // ring full and no consumer: messages wait for the next one
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(Error::WouldBlock) | Err(Error::TimedOut) => {
                if o.poll {
                    std::thread::yield_now();
                }
            }
            Err(e) => {
                error = Some(format!("message {i}: {e}"));
                end = err_name(&e);
                code = 1;
                break;
            }
        }
        if Instant::now() > deadline {
            error = Some("deadline passed".into());
            end = "ETIMEDOUT";
            code = 3;
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let end_pos = tx.stat().map(|s| s.write_pos).unwrap_or(0);
    drop(tx); // end-of-stream
    print_result(
        "produce", &error, o.start, i, bytes, secs, end, owner_dead, end_pos,
    );
    code
}

fn consume(o: &Opts) -> i32 {
    let mut rx: Consumer = open_opts(o)
        .consumer(name(o))
        .unwrap_or_else(|e| open_failed(e));
    let end_owner_dead = o.end == "EOWNERDEAD";
    let g = Gen::new(o.seed, o.max_size, o.fixed);
    let progress = Progress::open(&o.progress);
    let mut buf = vec![0u8; g.pool.len()];
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(o.deadline);
    let (mut tfirst, mut tlast) = (None, None);
    let (mut bytes, mut owner_dead, mut next) = (0u64, 0u64, o.start);
    let mut error: Option<String> = None;
    let mut end = "NONE";
    let mut code = 0;
    progress.put(next, 0, 0);
    loop {
        if o.pause_at == Some(next) {
            hang_forever(); // everything before message next is released
        }
        rx.set_timeout(slice(o, deadline));
        // Ok(n) for a message handled (verified, released), Err for a read error.
        let r: Result<u64, Error> = if o.zero_copy || o.hang_at == Some(next) {
            match rx.peek() {
                Ok(msg) => {
                    if tfirst.is_none() {
                        tfirst = Some(Instant::now());
                    }
                    if let Err(e) = verify(o, &g, next, &msg) {
                        error = Some(e);
                        code = 1;
                        break;
                    }
                    if o.hang_at == Some(next) {
                        progress.put(next, next + 1, owner_dead); // seen, verified, not released
                        let _keep = msg;
                        hang_forever();
                    }
                    let n = msg.len() as u64;
                    msg.release();
                    Ok(n)
                }
                Err(e) => Err(e),
            }
        } else {
            match rx.read_into(&mut buf) {
                Ok(n) => {
                    if tfirst.is_none() {
                        tfirst = Some(Instant::now());
                    }
                    if let Err(e) = verify(o, &g, next, &buf[..n]) {
                        error = Some(e);
                        code = 1;
                        break;
                    }
                    Ok(n as u64)
                }
                Err(e) => Err(e),
            }
        };
        match r {
            Ok(n) => {
                bytes += n;
                next += 1;
                progress.put(next, 0, owner_dead);
                continue;
            }
            Err(Error::EndOfStream) => {
                end = "EPIPE";
                tlast = Some(Instant::now());
                break;
            }
            Err(Error::PeerDied) if end_owner_dead => {
                end = "EOWNERDEAD";
                tlast = Some(Instant::now());
                break;
            }
            Err(Error::PeerDied) => {
                owner_dead += 1; // a new producer may take over: keep reading
                progress.put(next, 0, owner_dead);
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(Error::WouldBlock) | Err(Error::TimedOut) => {
                if o.poll {
                    std::thread::yield_now();
                }
            }
            Err(e) => {
                error = Some(format!("message {next}: {} ({e})", err_name(&e)));
                code = 1;
                break;
            }
        }
        if Instant::now() > deadline {
            error = Some(format!("deadline passed after message {next}"));
            code = 3;
            break;
        }
    }
    if error.is_none() && o.count >= 0 && next != o.count as u64 {
        error = Some(format!(
            "stream ended ({end}) after {next} messages, expected {}",
            o.count
        ));
        code = 1;
    }
    let end_pos = rx.stat().map(|s| s.read_pos).unwrap_or(0);
    drop(rx);
    let secs = match tfirst {
        Some(t) => tlast
            .unwrap_or_else(Instant::now)
            .duration_since(t)
            .as_secs_f64(),
        None => 0.0,
    };
    print_result(
        "consume", &error, o.start, next, bytes, secs, end, owner_dead, end_pos,
    );
    code
}

fn verify(o: &Opts, g: &Gen, next: u64, m: &[u8]) -> Result<(), String> {
    if o.count >= 0 && next >= o.count as u64 {
        return Err(format!("message {next} beyond --count"));
    }
    g.check(next, m).map_err(|e| {
        if next > 0 && g.check(next - 1, m).is_ok() {
            format!("duplicate of message {}", next - 1)
        } else {
            e
        }
    })
}

/// Golden vector (spec/vectors/README.md): open as consumer (flags 0, capacity 0), read
/// without waiting until an error, print the verdict in the .expect format.
fn vector(o: &Opts) -> i32 {
    let mut rx = match OpenOptions::new().consumer(name(o)) {
        Ok(rx) => rx,
        Err(e) => {
            println!("open {}", err_name(&e));
            return 0;
        }
    };
    println!("open ok");
    rx.set_timeout(Some(Duration::ZERO));
    let mut buf = Vec::new();
    let mut end = "LOOP";
    for _ in 0..100_000 {
        match rx.read(&mut buf) {
            Ok(_) if buf.is_empty() => println!("msg -"),
            Ok(_) => {
                let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
                println!("msg {hex}");
            }
            Err(e) => {
                end = err_name(&e);
                break;
            }
        }
    }
    println!("end {end}");
    0
}

/// The libshm_channel this process mapped, from /proc/self/maps.
fn info() -> i32 {
    let (maj, min, pat) = shm_channel::version();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let lib = maps
        .lines()
        .filter_map(|l| l.find('/').map(|i| &l[i..]))
        .find(|p| p.contains("libshm_channel"))
        .unwrap_or("");
    println!("{{\"lang\":\"rust\",\"version\":\"{maj}.{min}.{pat}\",\"lib\":\"{lib}\"}}");
    0
}

fn main() {
    let o = parse();
    let code = match o.cmd.as_str() {
        "produce" => produce(&o),
        "consume" => consume(&o),
        "vector" => vector(&o),
        "info" => info(),
        _ => unreachable!("parse() accepts only these commands"),
    };
    exit(code)
}
