//! Issue 6, the Rust side: the shm-channel crate against iceoryx2 publish-subscribe (the
//! crates.io crate), between two processes, with the methodology of bench/ (see
//! bench/README.md): two processes pinned to two CPUs, every message numbered and checked,
//! a calibration run per case, then `--reps` runs per figure interleaved case by case.
//!
//! ```text
//! shm-channel-compare [--quick] [--reps N] [--time S] [--sizes 64,4096] [--json FILE]
//! ```
//!
//! Throughput (messages of `size` bytes, producer in a child process, consumer here, timed by
//! the consumer from the end of a warm-up to the last message; the warm-up is twice the ring):
//! - `rs_copy`: `Producer::write` / `Consumer::read_into` (the copy path);
//! - `rs_zerocopy`: `Producer::reserve` + fill + commit / `Consumer::peek` + check + release;
//! - `ice_pubsub`: iceoryx2 `publish_subscribe::<[u8]>`, `loan_slice_uninit` + fill + `send` /
//!   `receive` + check + drop; lossless (`enable_safe_overflow(false)`, backpressure
//!   `RetryUntilDelivered`), with a subscriber buffer holding as many samples as the
//!   shm-channel ring holds messages (at least 2, at most 4096).
//!
//! Both producers write the whole payload once per message (copy: the source buffer; zero
//! copy: into the loaned/reserved memory); both consumers check the size and the sequence
//! number in the first 8 bytes.
//!
//! Round trip, 64 B, ping here, pong in the child, one message in flight, each round trip
//! timed on its own (one clock read per sample, as bench/ does):
//! - `rs_spin`: write/read_into, default spin (20 us) before the futex;
//! - `rs_zerocopy_spin`: reserve/commit and peek/release;
//! - `rs_block`: write/read_into with spin 0 (every read sleeps on the futex);
//! - `ice_rtt`: two iceoryx2 services (a2b, b2a), busy-polling `receive()` as iceoryx2's own
//!   publish-subscribe benchmark does (subscriber buffer 1, history 0, safe overflow).
//!
//! Output: a table on stdout, and with `--json` every run of every figure (the aggregator in
//! bench/report/ computes medians, spreads and ratios).

use std::env;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use iceoryx2::prelude::*;
use shm_channel::{Consumer, Error, OpenOptions, Producer};

const CHILD_ENV: &str = "SHMCMP_CHILD";
const CPU_ENV: &str = "SHMCMP_CPU";
const MIB: usize = 1 << 20;
const RTT_SIZE: usize = 64;
const ICE_MAX_BUFFER: usize = 4096;

type IceNode = Node<ipc::Service>;

// ---- small helpers ----------------------------------------------------------------------

fn capacity_for(size: usize) -> usize {
    // As bench/main.c: 4 MiB, or the smallest power of two whose largest payload holds the
    // message (the recommended capacity: two frames take turns in cache; iceoryx2 gets as
    // many samples as fit, at least 2).
    (2 * (size + 8)).next_power_of_two().max(4 * MIB)
}

fn ice_buffer_for(size: usize) -> usize {
    (capacity_for(size) / (size + 8)).clamp(2, ICE_MAX_BUFFER)
}

fn unique(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("shmcmp-{}-{n}-{what}", std::process::id())
}

/// `len` bytes of `mem` starting at a 64-byte boundary, as bench/'s C cases use
/// (aligned_alloc(64, ...)): the copies' speed depends on it.
fn aligned64(mem: &mut [u8], len: usize) -> &mut [u8] {
    let off = mem.as_ptr().align_offset(64);
    &mut mem[off..off + len]
}

fn seq_of(msg: &[u8]) -> u64 {
    u64::from_le_bytes(msg[..8].try_into().unwrap())
}

fn stamp(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_le_bytes());
}

fn allowed_cpus() -> Option<[usize; 2]> {
    if env::var_os("SHMCMP_NO_PIN").is_some() {
        return None;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most
    // size_of::<cpu_set_t>() bytes into it.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        set
    };
    // SAFETY: CPU_ISSET reads the set we own, for indices below CPU_SETSIZE.
    let mut it = (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) });
    Some([it.next()?, it.next()?])
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(-1.0)
}

fn ice_node() -> IceNode {
    NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .expect("iceoryx2 node")
}

// ---- the child process --------------------------------------------------------------------

/// The peer process: spawned with its arguments in CHILD_ENV, stdin/stdout piped. Prints
/// "ready" once its ports are open; exits when stdin closes (throughput producers) or at
/// end-of-stream / the stop message (round trips).
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    cleanup: Vec<String>,
}

impl Peer {
    fn spawn(args: &[String], cpu: Option<usize>, cleanup: &[&str]) -> Peer {
        let mut cmd = Command::new(env::current_exe().unwrap());
        cmd.env(CHILD_ENV, args.join(" "))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(cpu) = cpu {
            cmd.env(CPU_ENV, cpu.to_string());
        }
        let mut child = cmd.spawn().expect("spawn peer");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Peer {
            child,
            stdin,
            stdout,
            cleanup: cleanup.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn wait_ready(&mut self) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("peer stdout");
        assert_eq!(line.trim(), "ready", "peer did not start");
    }

    fn go(&mut self) {
        let w = self.stdin.as_mut().unwrap();
        writeln!(w, "go").unwrap();
        w.flush().unwrap();
    }

    fn finish(mut self) {
        self.stdin.take(); // EOF: the peer may exit
        let t = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => {
                    assert!(st.success(), "peer failed: {st}");
                    break;
                }
                _ if t.elapsed() > Duration::from_secs(20) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("peer hung");
                }
                _ => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        for name in &self.cleanup {
            let _ = shm_channel::force_unlink(name);
        }
    }
}

fn ready() {
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
}

fn wait_stdin_line() {
    let mut s = String::new();
    let _ = std::io::stdin().read_line(&mut s);
}

fn wait_stdin_eof() {
    let mut s = String::new();
    let _ = std::io::stdin().read_line(&mut s);
}

fn child(args: &[String]) {
    if let Some(cpu) = env::var(CPU_ENV).ok().and_then(|c| c.parse().ok()) {
        pin(cpu);
    }
    set_log_level(LogLevel::Error);
    let arg = |i: usize| -> usize { args[i].parse().unwrap() };
    match args[0].as_str() {
        // produce MODE NAME SIZE TOTAL
        "produce" => {
            let (mode, name, size, total) = (&args[1], &args[2], arg(3), arg(4) as u64);
            let mut src_mem = vec![0x5Au8; size + 64];
            let mut src = aligned64(&mut src_mem, size);
            if mode == "ice" {
                let node = ice_node();
                let svc = node
                    .service_builder(&name.as_str().try_into().unwrap())
                    .publish_subscribe::<[u8]>()
                    .open()
                    .expect("iceoryx2 open service");
                let publisher = svc
                    .publisher_builder()
                    .initial_max_slice_len(size)
                    .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                    .create()
                    .expect("iceoryx2 publisher");
                ready();
                wait_stdin_line(); // "go": the subscriber is connected
                for seq in 0..total {
                    let mut s = publisher
                        .loan_slice_uninit(size)
                        .expect("loan")
                        .write_from_slice(&src);
                    stamp(s.payload_mut(), seq);
                    s.send().expect("send");
                }
                wait_stdin_eof();
                return;
            }
            let mut tx = Producer::open(name).unwrap();
            ready();
            for seq in 0..total {
                if mode == "copy" {
                    stamp(&mut src, seq);
                    tx.write(&src).unwrap();
                } else {
                    let mut r = tx.reserve(size).unwrap();
                    r.copy_from_slice(&src);
                    stamp(&mut r, seq);
                    r.commit().unwrap();
                }
            }
            drop(tx);
            wait_stdin_eof();
        }
        // pong MODE PING PONG
        "pong" => {
            let mode = args[1].as_str();
            if mode == "ice" {
                let node = ice_node();
                let a2b = ice_rtt_service(&node, &args[2], false);
                let b2a = ice_rtt_service(&node, &args[3], false);
                let sub = a2b.subscriber_builder().create().unwrap();
                let publisher = b2a
                    .publisher_builder()
                    .initial_max_slice_len(RTT_SIZE)
                    .create()
                    .unwrap();
                ready();
                // As iceoryx2's own benchmark: the reply is loaned before the ping arrives.
                let mut out = publisher
                    .loan_slice_uninit(RTT_SIZE)
                    .unwrap()
                    .write_from_slice(&[0u8; RTT_SIZE]);
                loop {
                    let sample = loop {
                        if let Some(s) = sub.receive().unwrap() {
                            break s;
                        }
                    };
                    let seq = seq_of(sample.payload());
                    out.payload_mut().copy_from_slice(sample.payload());
                    drop(sample);
                    out.send().unwrap();
                    if seq == u64::MAX {
                        return;
                    }
                    out = publisher
                        .loan_slice_uninit(RTT_SIZE)
                        .unwrap()
                        .write_from_slice(&[0u8; RTT_SIZE]);
                }
            }
            let mut rx = Consumer::open(&args[2]).unwrap();
            let mut tx = Producer::open(&args[3]).unwrap();
            if mode == "block" {
                rx.set_spin(Duration::ZERO).unwrap();
                tx.set_spin(Duration::ZERO).unwrap();
            }
            ready();
            let mut buf = [0u8; RTT_SIZE];
            loop {
                if mode == "zerocopy" {
                    let res = match rx.peek() {
                        Ok(p) => {
                            let mut r = tx.reserve(p.len()).unwrap();
                            r.copy_from_slice(&p);
                            drop(p);
                            r.commit()
                        }
                        Err(e) => Err(e),
                    };
                    match res {
                        Ok(()) => {}
                        Err(Error::EndOfStream | Error::PeerDied) => return,
                        Err(e) => panic!("pong: {e}"),
                    }
                } else {
                    match rx.read_into(&mut buf) {
                        Ok(n) => tx.write(&buf[..n]).unwrap(),
                        Err(Error::EndOfStream | Error::PeerDied) => return,
                        Err(e) => panic!("pong: {e}"),
                    }
                }
            }
        }
        other => panic!("unknown child role {other}"),
    }
}

fn ice_rtt_service(
    node: &IceNode,
    name: &str,
    create: bool,
) -> iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()> {
    let b = node
        .service_builder(&name.try_into().unwrap())
        .publish_subscribe::<[u8]>();
    if create {
        b.max_publishers(1)
            .max_subscribers(1)
            .history_size(0)
            .subscriber_max_buffer_size(1)
            .enable_safe_overflow(true)
            .create()
            .expect("iceoryx2 create service")
    } else {
        b.open().expect("iceoryx2 open service")
    }
}

// ---- cases --------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Throughput,
    RoundTrip,
}

struct Case {
    id: &'static str,
    label: &'static str,
    group: &'static str,
    kind: Kind,
    mode: &'static str, // copy, zerocopy, ice, spin, block
    size: usize,
    count: u64,
    runs: Vec<f64>, // msgs/s, or per-run median ns
    p99: Vec<f64>,
    p999: Vec<f64>,
    max: Vec<f64>,
    error: Option<String>,
}

struct Ctx {
    cpus: Option<[usize; 2]>,
}

impl Ctx {
    fn child_cpu(&self) -> Option<usize> {
        self.cpus.map(|c| c[1])
    }
}

/// One throughput run: `count` messages timed after a warm-up; msgs/s.
fn run_throughput(ctx: &Ctx, mode: &str, size: usize, count: u64) -> f64 {
    let cap = capacity_for(size);
    let warmup = ((2 * cap / (size + 8)) as u64).max(16);
    let total = warmup + count;
    let name = unique("tp");
    let args: Vec<String> = vec![
        "produce".into(),
        mode.into(),
        name.clone(),
        size.to_string(),
        total.to_string(),
    ];
    if mode == "ice" {
        let node = ice_node();
        let svc = node
            .service_builder(&name.as_str().try_into().unwrap())
            .publish_subscribe::<[u8]>()
            .max_publishers(1)
            .max_subscribers(1)
            .max_nodes(2)
            .history_size(0)
            .subscriber_max_buffer_size(ice_buffer_for(size))
            .subscriber_max_borrowed_samples(1)
            .enable_safe_overflow(false)
            .create()
            .expect("iceoryx2 create service");
        let sub = svc
            .subscriber_builder()
            .create()
            .expect("iceoryx2 subscriber");
        let mut peer = Peer::spawn(&args, ctx.child_cpu(), &[]);
        peer.wait_ready();
        // Connect to the new publisher before it sends: a publisher drops what it sends to
        // a subscriber that has not attached yet once that buffer is full.
        assert!(sub.receive().expect("receive").is_none());
        peer.go();
        let mut t0 = Instant::now();
        for seq in 0..total {
            if seq == warmup {
                t0 = Instant::now();
            }
            let s = loop {
                if let Some(s) = sub.receive().expect("receive") {
                    break s;
                }
            };
            let p = s.payload();
            assert!(
                p.len() == size && seq_of(p) == seq,
                "iceoryx2: message {seq} is wrong (got {} of {} B)",
                seq_of(p),
                p.len()
            );
        }
        let dt = t0.elapsed().as_secs_f64();
        peer.finish();
        return count as f64 / dt;
    }
    let mut rx = OpenOptions::new()
        .create_new(true)
        .capacity(cap)
        .consumer(&name)
        .expect("open consumer");
    let peer = Peer::spawn(&args, ctx.child_cpu(), &[&name]);
    let mut buf_mem = vec![0u8; size + 64];
    let mut buf = aligned64(&mut buf_mem, size);
    let mut t0 = Instant::now();
    for seq in 0..total {
        if seq == warmup {
            t0 = Instant::now();
        }
        if mode == "copy" {
            let n = rx.read_into(&mut buf).expect("read");
            assert!(n == size && seq_of(&buf) == seq, "message {seq} is wrong");
        } else {
            let p = rx.peek().expect("peek");
            assert!(
                p.len() == size && seq_of(&p) == seq,
                "message {seq} is wrong"
            );
        }
    }
    let dt = t0.elapsed().as_secs_f64();
    drop(rx);
    peer.finish();
    count as f64 / dt
}

fn pct(sorted: &[u64], q: f64) -> f64 {
    // Nearest rank, as bench/main.c.
    let k = (q * sorted.len() as f64).ceil() as usize;
    sorted[k.max(1) - 1] as f64
}

/// One round-trip run: `count` timed round trips after a warm-up; [median, p99, p99.9, max,
/// mean] in ns.
fn run_roundtrip(ctx: &Ctx, mode: &str, count: u64) -> [f64; 5] {
    let warmup = (count / 10).min(1000) + 10;
    let total = warmup + count;
    let (ping, pong) = (unique("ping"), unique("pong"));
    let args: Vec<String> = vec!["pong".into(), mode.into(), ping.clone(), pong.clone()];
    let mut samples: Vec<u64> = Vec::with_capacity(count as usize);
    let mut msg = [0x5Au8; RTT_SIZE];
    let mut back = [0u8; RTT_SIZE];
    if mode == "ice" {
        let node = ice_node();
        let a2b = ice_rtt_service(&node, &ping, true);
        let b2a = ice_rtt_service(&node, &pong, true);
        let publisher = a2b
            .publisher_builder()
            .initial_max_slice_len(RTT_SIZE)
            .create()
            .unwrap();
        let sub = b2a.subscriber_builder().create().unwrap();
        let mut peer = Peer::spawn(&args, ctx.child_cpu(), &[]);
        peer.wait_ready();
        // As iceoryx2's own benchmark: the next sample is loaned while the reply travels.
        let loan = || {
            publisher
                .loan_slice_uninit(RTT_SIZE)
                .unwrap()
                .write_from_slice(&[0x5Au8; RTT_SIZE])
        };
        let mut s = loan();
        for seq in 0..=total {
            let last = seq == total;
            let want = if last { u64::MAX } else { seq };
            let t0 = Instant::now();
            stamp(s.payload_mut(), want);
            s.send().unwrap();
            s = loan();
            let r = loop {
                if let Some(r) = sub.receive().unwrap() {
                    break r;
                }
            };
            let ok = r.payload().len() == RTT_SIZE && seq_of(r.payload()) == want;
            drop(r);
            let dt = t0.elapsed().as_nanos() as u64;
            assert!(ok, "iceoryx2: reply {seq} is wrong");
            if seq >= warmup && !last {
                samples.push(dt);
            }
        }
        drop(s);
        peer.finish();
    } else {
        let mut opts = OpenOptions::new();
        opts.create_new(true).capacity(4 * MIB);
        let mut tx = opts.producer(&ping).unwrap();
        let mut rx = opts.consumer(&pong).unwrap();
        if mode == "block" {
            tx.set_spin(Duration::ZERO).unwrap();
            rx.set_spin(Duration::ZERO).unwrap();
        }
        let mut peer = Peer::spawn(&args, ctx.child_cpu(), &[&ping, &pong]);
        peer.wait_ready();
        for seq in 0..total {
            let t0 = Instant::now();
            stamp(&mut msg, seq);
            let ok = if mode == "zerocopy" {
                let mut r = tx.reserve(RTT_SIZE).unwrap();
                r.copy_from_slice(&msg);
                r.commit().unwrap();
                let p = rx.peek().unwrap();
                p.len() == RTT_SIZE && seq_of(&p) == seq
            } else {
                tx.write(&msg).unwrap();
                let n = rx.read_into(&mut back).unwrap();
                n == RTT_SIZE && seq_of(&back) == seq
            };
            let dt = t0.elapsed().as_nanos() as u64;
            assert!(ok, "reply {seq} is wrong");
            if seq >= warmup {
                samples.push(dt);
            }
        }
        drop(tx); // end-of-stream: the pong side exits
        drop(rx);
        peer.finish();
    }
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64;
    samples.sort_unstable();
    [
        pct(&samples, 0.5),
        pct(&samples, 0.99),
        pct(&samples, 0.999),
        *samples.last().unwrap() as f64,
        mean,
    ]
}

fn run_case(ctx: &Ctx, c: &Case, count: u64) -> Result<[f64; 5], String> {
    let mode = c.mode;
    let size = c.size;
    let kind = c.kind;
    let ctx_cpus = ctx.cpus;
    // A failed run (a panic in this process or the peer) is reported, not fatal.
    std::panic::catch_unwind(move || {
        let ctx = Ctx { cpus: ctx_cpus };
        if kind == Kind::Throughput {
            let r = run_throughput(&ctx, mode, size, count);
            [r, 0.0, 0.0, 0.0, 0.0]
        } else {
            run_roundtrip(&ctx, mode, count)
        }
    })
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

fn calibrate(ctx: &Ctx, c: &mut Case, rep_s: f64) {
    if c.kind == Kind::RoundTrip {
        match run_case(ctx, c, 2000) {
            Ok(st) => c.count = ((rep_s * 1e9 / st[4]) as u64).clamp(2000, 2_000_000),
            Err(e) => c.error = Some(e),
        }
        return;
    }
    let count0 = ((32 * MIB / (c.size + 8)) as u64).clamp(16, 1_000_000);
    match run_case(ctx, c, count0) {
        Ok(st) => c.count = ((st[0] * rep_s) as u64).clamp(16, 10_000_000_000),
        Err(e) => c.error = Some(e),
    }
}

fn measure(ctx: &Ctx, cases: &mut [Case], reps: usize, rep_s: f64) {
    for c in cases.iter_mut() {
        calibrate(ctx, c, rep_s);
    }
    for _ in 0..reps {
        for c in cases.iter_mut() {
            if c.error.is_some() {
                continue;
            }
            match run_case(ctx, c, c.count) {
                Ok(st) => {
                    c.runs.push(st[0]);
                    if c.kind == Kind::RoundTrip {
                        c.p99.push(st[1]);
                        c.p999.push(st[2]);
                        c.max.push(st[3]);
                    }
                }
                Err(e) => c.error = Some(e),
            }
        }
        eprint!(".");
    }
    eprintln!();
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn jarr(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x:.6e}")).collect();
    format!("[{}]", items.join(", "))
}

fn jstr(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    if let Ok(a) = env::var(CHILD_ENV) {
        let args: Vec<String> = a.split(' ').map(str::to_string).collect();
        child(&args);
        return;
    }
    set_log_level(LogLevel::Error);
    let mut reps = 7usize;
    let mut rep_s = 0.25f64;
    let mut sizes: Vec<usize> = vec![64, 1024, 4096, 65536, 1 << 20, 6_220_800];
    let mut json: Option<String> = None;
    let mut do_tp = true;
    let mut do_rtt = true;
    let argv: Vec<String> = env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned();
        match argv[i].as_str() {
            "--quick" => {
                reps = 3;
                rep_s = 0.05;
            }
            "--reps" => {
                reps = v.unwrap().parse().unwrap();
                i += 1;
            }
            "--time" => {
                rep_s = v.unwrap().parse().unwrap();
                i += 1;
            }
            "--sizes" => {
                sizes = v.unwrap().split(',').map(|s| s.parse().unwrap()).collect();
                i += 1;
            }
            "--json" => {
                json = v;
                i += 1;
            }
            "--throughput" => do_rtt = false,
            "--roundtrip" => do_tp = false,
            "--help" | "-h" => {
                println!("usage: shm-channel-compare [--quick] [--reps N] [--time S] [--sizes LIST] [--throughput|--roundtrip] [--json FILE]");
                return;
            }
            other => {
                eprintln!("unknown option {other}");
                std::process::exit(2);
            }
        }
        i += 1;
    }
    let cpus = allowed_cpus();
    if let Some([a, _]) = cpus {
        pin(a);
    }
    let ctx = Ctx { cpus };
    let load_start = loadavg();
    let t_start = Instant::now();
    let new_case = |id, label, group, kind, mode, size| Case {
        id,
        label,
        group,
        kind,
        mode,
        size,
        count: 0,
        runs: vec![],
        p99: vec![],
        p999: vec![],
        max: vec![],
        error: None,
    };
    let mut all: Vec<Case> = Vec::new();
    if do_tp {
        for &size in &sizes {
            eprint!("rust throughput {size} B ");
            let mut cases = vec![
                new_case(
                    "ice_pubsub",
                    "iceoryx2 pub/sub (loan/send)",
                    "iceoryx2",
                    Kind::Throughput,
                    "ice",
                    size,
                ),
                new_case(
                    "rs_copy",
                    "shm-channel write/read_into",
                    "rust",
                    Kind::Throughput,
                    "copy",
                    size,
                ),
                new_case(
                    "rs_zerocopy",
                    "shm-channel reserve/peek",
                    "rust",
                    Kind::Throughput,
                    "zerocopy",
                    size,
                ),
            ];
            measure(&ctx, &mut cases, reps, rep_s);
            all.extend(cases);
        }
    }
    if do_rtt {
        eprint!("rust round trips ");
        let mut cases = vec![
            new_case(
                "ice_rtt",
                "iceoryx2 pub/sub, busy-poll",
                "iceoryx2",
                Kind::RoundTrip,
                "ice",
                RTT_SIZE,
            ),
            new_case(
                "rs_spin",
                "shm-channel write/read, spin",
                "rust",
                Kind::RoundTrip,
                "spin",
                RTT_SIZE,
            ),
            new_case(
                "rs_zerocopy_spin",
                "shm-channel reserve/peek, spin",
                "rust",
                Kind::RoundTrip,
                "zerocopy",
                RTT_SIZE,
            ),
            new_case(
                "rs_block",
                "shm-channel write/read, blocking",
                "rust",
                Kind::RoundTrip,
                "block",
                RTT_SIZE,
            ),
        ];
        measure(&ctx, &mut cases, reps, rep_s);
        all.extend(cases);
    }
    let load_end = loadavg();

    println!("Rust: shm-channel crate vs iceoryx2 (two processes, median of {reps} runs)");
    for c in &all {
        if let Some(e) = &c.error {
            println!("  {:<36} {:>9} B  FAILED: {e}", c.label, c.size);
        } else if c.kind == Kind::Throughput {
            let m = median(&c.runs);
            println!(
                "  {:<36} {:>9} B  {:>12.0} msgs/s {:>7.2} GB/s",
                c.label,
                c.size,
                m,
                m * c.size as f64 / 1e9
            );
        } else {
            println!(
                "  {:<36} {:>9} B  rtt median {:>6.0} ns, p99 {:>6.0}, p99.9 {:>7.0}, max {:>8.0}",
                c.label,
                c.size,
                median(&c.runs),
                median(&c.p99),
                median(&c.p999),
                median(&c.max)
            );
        }
    }
    if let Some(path) = json {
        let mut out = String::new();
        out.push_str("{\n  \"format\": \"shm_channel_compare_rust/1\",\n");
        out.push_str(&format!(
            "  \"host\": {{\"cpu\": {}, \"pinning\": {}}},\n",
            jstr(&cpu_model()),
            jstr(&match cpus {
                Some([a, b]) => format!("parent on CPU {a}, child on CPU {b}"),
                None => "not pinned".into(),
            })
        ));
        out.push_str(&format!(
            "  \"params\": {{\"runs\": {reps}, \"seconds_per_run\": {rep_s}}},\n  \"load_average\": {{\"start\": {load_start:.2}, \"end\": {load_end:.2}}},\n  \"wall_seconds\": {:.1},\n  \"results\": [",
            t_start.elapsed().as_secs_f64()
        ));
        for (k, c) in all.iter().enumerate() {
            out.push_str(if k > 0 { ",\n    " } else { "\n    " });
            let kind = if c.kind == Kind::Throughput {
                "throughput"
            } else {
                "roundtrip"
            };
            out.push_str(&format!(
                "{{\"kind\": \"{kind}\", \"id\": {}, \"group\": {}, \"label\": {}, \"size\": {}, \"capacity\": {}, \"count_per_run\": {}, ",
                jstr(c.id),
                jstr(c.group),
                jstr(c.label),
                c.size,
                if c.mode == "ice" && c.kind == Kind::Throughput { (ice_buffer_for(c.size) * c.size) as u64 } else { capacity_for(c.size) as u64 },
                c.count
            ));
            if c.kind == Kind::Throughput {
                out.push_str(&format!("\"msgs_per_s\": {{\"runs\": {}}}", jarr(&c.runs)));
            } else {
                out.push_str(&format!(
                    "\"median\": {{\"runs\": {}}}, \"p99\": {{\"runs\": {}}}, \"p999\": {{\"runs\": {}}}, \"max\": {{\"runs\": {}}}",
                    jarr(&c.runs),
                    jarr(&c.p99),
                    jarr(&c.p999),
                    jarr(&c.max)
                ));
            }
            out.push_str(&format!(
                ", \"error\": {}}}",
                c.error
                    .as_deref()
                    .map(jstr)
                    .unwrap_or_else(|| "null".into())
            ));
        }
        out.push_str("\n  ]\n}\n");
        std::fs::write(&path, out).expect("write json");
    }
    if all.iter().any(|c| c.error.is_some()) {
        std::process::exit(1);
    }
}
