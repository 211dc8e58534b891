//! Service interop participant, Rust side, over the safe `shm-channel` crate. The contract
//! (commands, options, messages, output) is in tests/interop/README.md, "Services";
//! svc_peer.c and svc_peer.py implement the same one.

use std::collections::HashMap;
use std::fs::{File, OpenOptions as FsOpenOptions};
use std::os::unix::fs::FileExt;
use std::process::exit;
use std::time::{Duration, Instant};

use shm_channel::{Client, Error, RequestId, ServiceOptions};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
const CLIENT_G: u64 = 0xD1B5_4A32_D192_ED03;
const POOL_SEED_XOR: u64 = 0x6A09_E667_F3BC_C909;
const HOLD: u32 = 0xFFFF_FFFF;
const BYE: u32 = 0xFFFF_FFFE;
const SLICE: Duration = Duration::from_millis(50);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

/// The message definition of the contract.
struct Msgs {
    seed: u64,
    room: u64,
    pool: Vec<u8>,
}

impl Msgs {
    fn new(seed: u64, max_size: u64) -> Msgs {
        let len = ((65536 + max_size + 8) & !7) as usize;
        let mut pool = Vec::with_capacity(len);
        for k in 0..(len / 8) as u64 {
            pool.extend_from_slice(
                &mix((seed ^ POOL_SEED_XOR).wrapping_add((k + 1).wrapping_mul(GOLDEN)))
                    .to_le_bytes(),
            );
        }
        Msgs {
            seed,
            room: max_size - 20,
            pool,
        }
    }

    fn length(&self, x: u64) -> u64 {
        match x & 63 {
            0 => 0,
            1 => self.room,
            sel => (x >> 8) % (self.room.min(if sel < 48 { 64 } else { 1024 }) + 1),
        }
    }

    fn hashes(&self, c: u32, i: u64) -> (u64, u64) {
        let h = mix(self
            .seed
            .wrapping_add((u64::from(c) + 1).wrapping_mul(CLIENT_G))
            .wrapping_add((i + 1).wrapping_mul(GOLDEN)));
        (h, mix(h))
    }

    fn seal(c: u32, want: u32, i: u64, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(20 + body.len());
        m.extend_from_slice(&c.to_le_bytes());
        m.extend_from_slice(&want.to_le_bytes());
        m.extend_from_slice(&i.to_le_bytes());
        m.extend_from_slice(body);
        let sum = adler32(&m);
        m.extend_from_slice(&sum.to_le_bytes());
        m
    }

    fn request(&self, c: u32, i: u64) -> Vec<u8> {
        let (h, h2) = self.hashes(c, i);
        let off = (h >> 48) as usize;
        let body = &self.pool[off..off + self.length(h) as usize];
        Msgs::seal(c, self.length(h2) as u32, i, body)
    }

    fn response(&self, c: u32, i: u64) -> Vec<u8> {
        let (_, h2) = self.hashes(c, i);
        let off = (h2 >> 48) as usize;
        let want = self.length(h2);
        Msgs::seal(c, want as u32, i, &self.pool[off..off + want as usize])
    }
}

struct Opts {
    serve: bool,
    name: String,
    seed: u64,
    max_size: u64,
    clients: u64,
    expect: Option<u64>,
    hang_after: Option<u64>,
    id: Option<u64>,
    count: Option<u64>,
    start: u64,
    hold_at: Option<u64>,
    zero_copy: bool,
    progress: Option<String>,
    deadline: f64,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "svc_peer: {msg}\nusage: svc_peer serve|request --name N [options] \
         (see tests/interop/README.md, Services)"
    );
    exit(2)
}

fn num(opt: &str, v: &str) -> u64 {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        usage(&format!("{opt}: {v}"));
    }
    v.parse().unwrap_or_else(|_| usage(&format!("{opt}: {v}")))
}

fn parse() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args
        .first()
        .map(String::as_str)
        .unwrap_or_else(|| usage("no command"));
    let serve = match cmd {
        "serve" => true,
        "request" => false,
        other => usage(&format!("unknown command: {other}")),
    };
    let mut o = Opts {
        serve,
        name: String::new(),
        seed: 1,
        max_size: 1024,
        clients: 64,
        expect: None,
        hang_after: None,
        id: None,
        count: None,
        start: 0,
        hold_at: None,
        zero_copy: false,
        progress: None,
        deadline: 60.0,
    };
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        if a == "--zero-copy" {
            o.zero_copy = true;
            continue;
        }
        let v = match it.next() {
            Some(v) if !v.starts_with("--") => v.as_str(),
            _ => usage(&format!("option without a value: {a}")),
        };
        match a.as_str() {
            "--name" => o.name = v.to_string(),
            "--progress" => o.progress = Some(v.to_string()),
            "--deadline" => {
                o.deadline = v.parse().unwrap_or_else(|_| usage(&format!("{a}: {v}")));
                if !(o.deadline > 0.0 && o.deadline < 1e9) {
                    usage(&format!("{a}: {v}"));
                }
            }
            "--seed" => o.seed = num(a, v),
            "--max-size" => o.max_size = num(a, v),
            "--clients" => o.clients = num(a, v),
            "--expect" => o.expect = Some(num(a, v)),
            "--hang-after" => o.hang_after = Some(num(a, v)),
            "--id" => o.id = Some(num(a, v)),
            "--count" => o.count = Some(num(a, v)),
            "--start" => o.start = num(a, v),
            "--hold-at" => o.hold_at = Some(num(a, v)),
            _ => usage(&format!("unknown option: {a}")),
        }
    }
    if o.name.is_empty() {
        usage("--name is required");
    }
    if !(20..=65536).contains(&o.max_size) {
        usage("--max-size is 20..65536");
    }
    if !(1..=1024).contains(&o.clients) {
        usage("--clients is 1..1024");
    }
    if o.serve && o.expect.is_none() {
        usage("serve needs --expect");
    }
    if !o.serve && (o.id.is_none() || o.count.is_none()) {
        usage("request needs --id and --count");
    }
    if !o.serve && o.id.unwrap() >= u64::from(BYE) {
        usage("--id is at most 2^32-2");
    }
    o
}

struct Progress(Option<File>);

impl Progress {
    fn new(path: &Option<String>) -> Progress {
        Progress(path.as_ref().map(|p| {
            FsOpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .unwrap_or_else(|e| {
                    eprintln!("svc_peer: {p}: {e}");
                    exit(2)
                })
        }))
    }

    fn put(&self, a: u64, b: u64, c: u64) {
        if let Some(f) = &self.0 {
            let mut buf = [0u8; 24];
            buf[..8].copy_from_slice(&a.to_le_bytes());
            buf[8..16].copy_from_slice(&b.to_le_bytes());
            buf[16..].copy_from_slice(&c.to_le_bytes());
            f.write_all_at(&buf, 0).expect("progress file");
        }
    }
}

fn options(o: &Opts) -> ServiceOptions {
    let mut opts = ServiceOptions::new();
    opts.create(true)
        .max_request(o.max_size as usize)
        .max_response(o.max_size as usize)
        .max_clients(o.clients as u32);
    opts
}

fn json_errors(errors: &[String]) -> String {
    let items: Vec<String> = errors
        .iter()
        .map(|e| format!("\"{}\"", e.replace(['"', '\\'], "")))
        .collect();
    format!("[{}]", items.join(", "))
}

fn errno_name(e: &Error) -> String {
    match e.errno() {
        Some(libc::EOWNERDEAD) => "EOWNERDEAD".into(),
        Some(libc::ECONNRESET) => "ECONNRESET".into(),
        Some(libc::EPIPE) => "EPIPE".into(),
        Some(libc::ETIMEDOUT) => "ETIMEDOUT".into(),
        Some(n) => format!("errno {n}"),
        None => "E?".into(),
    }
}

fn serve(o: &Opts) -> i32 {
    let msgs = Msgs::new(o.seed, o.max_size);
    let prog = Progress::new(&o.progress);
    let end = Instant::now() + Duration::from_secs_f64(o.deadline);
    let mut srv = match options(o).server(&o.name) {
        Ok(s) => s,
        Err(e) => {
            println!("{{\"lang\": \"rust\", \"role\": \"server\", \"ok\": false, \"errors\": [\"open: {e}\"]}}");
            return 2;
        }
    };
    let expect = o.expect.unwrap();
    let (mut served, mut byes, mut nbytes, mut held_reclaimed, mut reaped) = (0u64, 0, 0, 0, 0);
    let mut held: HashMap<u32, RequestId> = HashMap::new();
    let mut errors: Vec<String> = vec![];
    let mut code = 0;
    let (mut first, mut last) = (None, None);
    let mut buf = Vec::new();
    while byes < expect && errors.is_empty() {
        if Instant::now() > end {
            errors.push(format!("deadline: {byes} of {expect} byes"));
            code = 3;
            break;
        }
        if !held.is_empty() {
            match srv.reap() {
                Ok(dead) => {
                    for slot in dead {
                        reaped += 1;
                        if let Some(id) = held.remove(&slot) {
                            match srv.respond(id, b"late") {
                                Ok(false) => held_reclaimed += 1,
                                Ok(true) => errors
                                    .push(format!("late answer to dead client {slot} accepted")),
                                Err(e) => errors.push(format!("late answer: {e}")),
                            }
                        }
                    }
                }
                Err(e) => errors.push(format!("reap: {e}")),
            }
            prog.put(served, u64::from(!held.is_empty()), reaped);
        }
        // Receive: copied into `buf`, or in place (then copied here only to check it).
        let (id, data): (RequestId, Vec<u8>) = if o.zero_copy {
            match srv.receive_in_place(Some(SLICE)) {
                Ok(r) => (r.id(), r.to_vec()), // released when `r` drops; the answer is owed
                Err(Error::TimedOut) | Err(Error::Interrupted) => continue,
                Err(e) => {
                    errors.push(format!("receive: {e}"));
                    break;
                }
            }
        } else {
            match srv.receive(&mut buf, Some(SLICE)) {
                Ok(id) => (id, buf.clone()),
                Err(Error::TimedOut) | Err(Error::Interrupted) => continue,
                Err(e) => {
                    errors.push(format!("receive: {e}"));
                    break;
                }
            }
        };
        let n = data.len();
        if n < 20 {
            errors.push(format!("request of {n} bytes"));
            break;
        }
        let c = u32::from_le_bytes(data[0..4].try_into().unwrap());
        let w = u32::from_le_bytes(data[4..8].try_into().unwrap());
        let i = u64::from_le_bytes(data[8..16].try_into().unwrap());
        if adler32(&data[..n - 4]) != u32::from_le_bytes(data[n - 4..].try_into().unwrap()) {
            errors.push(format!("client {c} request {i}: checksum mismatch"));
            break;
        }
        if w == HOLD || w == BYE {
            if n != 20 {
                errors.push(format!("client {c}: special request of {n} bytes"));
                break;
            }
            if w == HOLD {
                held.insert(id.client(), id);
                prog.put(served, 1, reaped);
                continue;
            }
            if let Err(e) = srv.respond(id, &data) {
                errors.push(format!("respond to bye: {e}"));
                break;
            }
            byes += 1;
            continue;
        }
        if data != msgs.request(c, i) {
            errors.push(format!(
                "client {c} request {i} ({n} bytes): content differs"
            ));
            break;
        }
        if o.hang_after.is_some_and(|k| served >= k) {
            prog.put(served, 1, reaped);
            loop {
                std::thread::sleep(Duration::from_secs(3600)); // until the runner's SIGKILL
            }
        }
        let answer = msgs.response(c, i);
        let sent = if o.zero_copy {
            match srv.respond_in_place(id, answer.len()) {
                Ok(Some(mut space)) => {
                    space.copy_from_slice(&answer);
                    space.commit(answer.len()).map(|()| true)
                }
                Ok(None) => Ok(false),
                Err(e) => Err(e),
            }
        } else {
            srv.respond(id, &answer)
        };
        match sent {
            Ok(true) => {}
            Ok(false) => continue, // the client gave up on it
            Err(e) => {
                errors.push(format!("respond: {e}"));
                break;
            }
        }
        served += 1;
        nbytes += (n + answer.len()) as u64;
        let now = Instant::now();
        first.get_or_insert(now);
        last = Some(now);
        prog.put(served, u64::from(!held.is_empty()), reaped);
    }
    drop(srv);
    let secs = match (first, last) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let rps = if secs > 0.0 {
        served as f64 / secs
    } else {
        0.0
    };
    println!(
        "{{\"lang\": \"rust\", \"role\": \"server\", \"ok\": {}, \"served\": {served}, \
         \"byes\": {byes}, \"bytes\": {nbytes}, \"secs\": {secs:.6}, \"rps\": {rps:.1}, \
         \"held_reclaimed\": {held_reclaimed}, \"reaped\": {reaped}, \"errors\": {}}}",
        errors.is_empty(),
        json_errors(&errors)
    );
    if code != 0 {
        code
    } else {
        i32::from(!errors.is_empty())
    }
}

struct Caller<'a> {
    o: &'a Opts,
    cli: Client,
    end: Instant,
    owner_dead: u64,
    resets: u64,
    closed: u64,
    prog: Progress,
}

impl Caller<'_> {
    fn left(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    /// One request, sent again after a server verdict once a server is back.
    fn call(&mut self, i: u64, req: &[u8]) -> Result<Vec<u8>, Error> {
        loop {
            if Instant::now() > self.end {
                return Err(Error::TimedOut);
            }
            let left = Some(self.left());
            let got = if self.o.zero_copy {
                let mut space = self.cli.reserve(req.len(), left)?;
                space.copy_from_slice(req);
                space.send(left).map(|r| r.to_vec())
            } else {
                self.cli.request(req, left)
            };
            let e = match got {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            match e.errno() {
                Some(libc::EOWNERDEAD) => self.owner_dead += 1,
                Some(libc::ECONNRESET) => self.resets += 1,
                Some(libc::EPIPE) => self.closed += 1,
                _ => return Err(e),
            }
            self.prog
                .put(i, 0, self.owner_dead + self.resets + self.closed);
            let left = Some(self.left());
            self.cli.wait_server(left)?;
        }
    }
}

fn request(o: &Opts) -> i32 {
    let msgs = Msgs::new(o.seed, o.max_size);
    let id = o.id.unwrap();
    let count = o.count.unwrap();
    let c = id as u32;
    let cli = match options(o).client(&o.name) {
        Ok(c) => c,
        Err(e) => {
            println!("{{\"lang\": \"rust\", \"role\": \"client\", \"id\": {id}, \"ok\": false, \"errors\": [\"open: {e}\"]}}");
            return 2;
        }
    };
    let mut k = Caller {
        o,
        cli,
        end: Instant::now() + Duration::from_secs_f64(o.deadline),
        owner_dead: 0,
        resets: 0,
        closed: 0,
        prog: Progress::new(&o.progress),
    };
    let mut errors: Vec<String> = vec![];
    let mut code = 0;
    let mut i = o.start;
    k.prog.put(i, 0, 0); // joined: the slot is ours
    let left = Some(k.left());
    let mut result = k.cli.wait_server(left);
    let t0 = Instant::now();
    while result.is_ok() && i < count {
        if o.hold_at == Some(i) {
            k.prog.put(i, 1, 0);
            if k.call(i, &Msgs::seal(c, HOLD, i, &[])).is_ok() {
                errors.push(format!("hold request {i} was answered"));
            }
            break;
        }
        match k.call(i, &msgs.request(c, i)) {
            Ok(got) => {
                let want = msgs.response(c, i);
                if got != want {
                    let (gc, gi) = if got.len() >= 16 {
                        (
                            u32::from_le_bytes(got[0..4].try_into().unwrap()),
                            u64::from_le_bytes(got[8..16].try_into().unwrap()),
                        )
                    } else {
                        (u32::MAX, u64::MAX)
                    };
                    errors.push(format!(
                        "request {i}: answer of {} bytes for client {gc} request {gi}, expected {} bytes",
                        got.len(),
                        want.len()
                    ));
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        i += 1;
        k.prog.put(i, 0, k.owner_dead + k.resets + k.closed);
    }
    if result.is_ok() && errors.is_empty() && i == count {
        let bye = Msgs::seal(c, BYE, count, &[]);
        match k.call(i, &bye) {
            Ok(got) if got == bye => {}
            Ok(_) => errors.push("bye not echoed".into()),
            Err(e) => result = Err(e),
        }
    }
    if let Err(e) = result {
        if matches!(e, Error::TimedOut) {
            errors.push(format!("deadline at request {i}"));
            code = 3;
        } else {
            errors.push(format!("request {i}: {} {e}", errno_name(&e)));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let done = i - o.start;
    let rps = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    println!(
        "{{\"lang\": \"rust\", \"role\": \"client\", \"id\": {id}, \"ok\": {}, \"count\": {done}, \
         \"first\": {}, \"next\": {i}, \"owner_dead\": {}, \"resets\": {}, \"closed\": {}, \
         \"secs\": {secs:.6}, \"rps\": {rps:.1}, \"errors\": {}}}",
        errors.is_empty(),
        o.start,
        k.owner_dead,
        k.resets,
        k.closed,
        json_errors(&errors)
    );
    if code != 0 {
        code
    } else {
        i32::from(!errors.is_empty())
    }
}

fn main() {
    let o = parse();
    exit(if o.serve { serve(&o) } else { request(&o) });
}
