//! Criterion benchmarks of the Rust binding, between two processes, shaped like the C
//! benchmark in bench/ so the figures can be set side by side:
//!
//! - throughput, 64 B / 4 KiB / 1 MiB messages on a 4 MiB ring: `Producer::write` in a
//!   child process, `Consumer::read_into` here (the copy path, C's `shm_copy` row); 64 B also
//!   with batches of 32 (C's `shm_batch` row). Every message carries its sequence number in
//!   its first 8 bytes and the reader checks it. The producer streams without pause, so each
//!   sample measures the steady state: N messages read, divided by the time taken.
//! - round trip, 64 B, ping here and pong in a child, one message in flight, on two 4 MiB
//!   channels: with the default spin (C's `shm_spin` row) and with spin 0, where every read
//!   sleeps on the futex (C's `shm_block` row).
//!
//! - liveness: how long a reader blocked on an empty ring takes to report
//!   [`Error::PeerDied`] after its producer process is SIGKILLed (bounded by the library's
//!   liveness slice, 50 ms), and how long a read with a 10 ms timeout takes to time out.
//!   These are the upper time bounds the tests do not assert (a loaded machine makes any
//!   such bound flaky there); the tests assert the outcomes.
//!
//! The two processes are pinned to the first two CPUs this process may use, as bench/ does
//! (set `SHM_RS_BENCH_NO_PIN=1` to leave them unpinned). A summary follows criterion's
//! output: throughput as msgs/s and GB/s (from criterion's median), and round trips as
//! criterion's mean plus the median, p99 and p99.9 of the individually timed round trips,
//! which is what bench/ reports (a mean is pulled up by the rare preempted round trip).
//!
//! ```text
//! cargo bench --bench throughput                                     # default settings
//! cargo bench --bench throughput -- --warm-up-time 1 --measurement-time 2   # quicker
//! ```

use std::env;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput};
use shm_channel::{Batch, Consumer, Error, OpenOptions, Producer};

const CHILD_ENV: &str = "SHM_RS_BENCH_CHILD";
/// The CPU the child pins itself to (the parent chooses: the child inherits the parent's
/// single-CPU affinity and could not see the second CPU itself).
const CPU_ENV: &str = "SHM_RS_BENCH_CPU";
const CAPACITY: usize = 4 << 20;
const BATCH: usize = 32;
const SIZES: [(usize, &str); 3] = [(64, "64B"), (4096, "4KiB"), (1 << 20, "1MiB")];
/// Round trips timed one by one: the last this many are kept (8 MiB).
const MAX_SAMPLES: usize = 1 << 20;
/// Round-trip percentile lines for the summary.
static PERCENTILES: Mutex<Vec<String>> = Mutex::new(Vec::new());

// ---- the child process ---------------------------------------------------------------

/// `produce NAME SIZE [BATCH]`: write numbered messages until the consumer goes away.
/// `echo PING PONG SPIN_NS`: read each ping and write it back on pong, until end-of-stream.
fn child(args: &[String]) {
    if let Some(cpu) = env::var(CPU_ENV).ok().and_then(|c| c.parse().ok()) {
        pin(cpu);
    }
    match args[0].as_str() {
        "produce" => {
            let mut tx = Producer::open(&args[1]).unwrap();
            let size: usize = args[2].parse().unwrap();
            let batch: usize = args.get(3).map_or(1, |b| b.parse().unwrap());
            let mut msg = vec![0xA5u8; size];
            let mut seq = 0u64;
            // Batches: the same messages every time, renumbered in place, as bench/ does.
            let mut b: Batch = std::iter::repeat(&msg[..]).take(batch).collect();
            loop {
                let rc = if batch == 1 {
                    msg[..8].copy_from_slice(&seq.to_le_bytes());
                    seq += 1;
                    tx.write(&msg)
                } else {
                    for m in b.bytes_mut().chunks_exact_mut(size) {
                        m[..8].copy_from_slice(&seq.to_le_bytes());
                        seq += 1;
                    }
                    tx.write_batch_all(&b)
                };
                match rc {
                    Ok(()) => {}
                    Err(Error::ConsumerClosed | Error::PeerDied) => return,
                    Err(e) => panic!("bench producer: {e}"),
                }
            }
        }
        "echo" => {
            let mut rx = Consumer::open(&args[1]).unwrap();
            let mut tx = Producer::open(&args[2]).unwrap();
            let spin = Duration::from_nanos(args[3].parse().unwrap());
            rx.set_spin(spin).unwrap();
            tx.set_spin(spin).unwrap();
            let mut buf = [0u8; 64];
            loop {
                match rx.read_into(&mut buf) {
                    Ok(n) => tx.write(&buf[..n]).unwrap(),
                    Err(Error::EndOfStream | Error::PeerDied) => return,
                    Err(e) => panic!("bench echo: {e}"),
                }
            }
        }
        "hold" => {
            // Hold the producer role until killed (stdin ends only if the parent is gone).
            let _tx = Producer::open(&args[1]).unwrap();
            let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1]);
        }
        other => panic!("unknown bench child {other}"),
    }
}

// ---- helpers -------------------------------------------------------------------------

fn unique_name(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("rs-bench-{}-{n}-{what}", std::process::id())
}

/// A child process running `child(args)`, with the channels it uses: on drop, waits for
/// it (killing it if it lingers) and removes the channels.
struct Peer {
    child: Child,
    names: Vec<String>,
}

impl Peer {
    fn spawn(args: &[&str], names: &[&str]) -> Peer {
        let mut cmd = Command::new(env::current_exe().unwrap());
        cmd.env(CHILD_ENV, args.join(" "));
        if let Some([_, cpu]) = cpus() {
            cmd.env(CPU_ENV, cpu.to_string());
        }
        let child = cmd.spawn().unwrap();
        Peer {
            child,
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let t = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if t.elapsed() > Duration::from_secs(10) {
                self.child.kill().ok();
                self.child.wait().ok();
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for name in &self.names {
            let _ = shm_channel::force_unlink(name);
        }
    }
}

/// The first two CPUs this process may use at start, if pinning is wanted and possible.
fn cpus() -> Option<[usize; 2]> {
    static CPUS: OnceLock<Option<[usize; 2]>> = OnceLock::new();
    *CPUS.get_or_init(allowed_cpus)
}

fn allowed_cpus() -> Option<[usize; 2]> {
    if env::var_os("SHM_RS_BENCH_NO_PIN").is_some() {
        return None;
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and sched_getaffinity writes at
    // most size_of::<cpu_set_t>() bytes into it.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        set
    };
    // SAFETY: CPU_ISSET reads the set we own, for indices below CPU_SETSIZE.
    let mut allowed =
        (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) });
    Some([allowed.next()?, allowed.next()?])
}

/// Pins the calling process to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it (cpu is
    // below CPU_SETSIZE), and sched_setaffinity reads size_of::<cpu_set_t>() bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn seq_of(msg: &[u8]) -> u64 {
    u64::from_le_bytes(msg[..8].try_into().unwrap())
}

// ---- the benchmarks ------------------------------------------------------------------

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("throughput");
    for (size, label) in SIZES {
        // One producer process per size, set up outside the timed closure (criterion calls
        // it once per sample): it streams from the start, so samples see the steady state.
        let name = unique_name("tp");
        let mut rx = OpenOptions::new()
            .create_new(true)
            .capacity(CAPACITY)
            .consumer(&name)
            .unwrap();
        let peer = Peer::spawn(&["produce", &name, &size.to_string()], &[&name]);
        let mut buf = vec![0u8; size];
        let mut next = 0u64;
        g.throughput(Throughput::ElementsAndBytes {
            elements: 1,
            bytes: size as u64,
        });
        g.bench_function(BenchmarkId::new("write_read", label), |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for _ in 0..iters {
                    let n = rx.read_into(&mut buf).unwrap();
                    assert!(n == size && seq_of(&buf) == next, "message {next} is wrong");
                    next += 1;
                }
                t.elapsed()
            })
        });
        drop(rx); // the producer sees the consumer closed and exits
        drop(peer);
    }

    let name = unique_name("tp-batch");
    let mut rx = OpenOptions::new()
        .create_new(true)
        .capacity(CAPACITY)
        .consumer(&name)
        .unwrap();
    let peer = Peer::spawn(&["produce", &name, "64", &BATCH.to_string()], &[&name]);
    let mut batch = Batch::with_capacity(64 * BATCH, BATCH);
    let mut next = 0u64;
    let mut surplus = 0u64; // messages read beyond the last sample's count
    g.throughput(Throughput::ElementsAndBytes {
        elements: 1,
        bytes: 64,
    });
    g.bench_function(BenchmarkId::new("batch32", "64B"), |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            let mut got = surplus;
            while got < iters {
                let n = rx.read_batch(&mut batch, BATCH).unwrap();
                for m in &batch {
                    assert!(
                        m.len() == 64 && seq_of(m) == next,
                        "message {next} is wrong"
                    );
                    next += 1;
                }
                got += n as u64;
            }
            surplus = got - iters;
            t.elapsed()
        })
    });
    drop(rx);
    drop(peer);
    g.finish();
}

fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("round_trip");
    g.throughput(Throughput::Elements(1));
    for (label, spin) in [("spin", None), ("blocking", Some(Duration::ZERO))] {
        let (ping, pong) = (unique_name("ping"), unique_name("pong"));
        let mut opts = OpenOptions::new();
        opts.create_new(true).capacity(CAPACITY);
        let mut tx = opts.producer(&ping).unwrap();
        let mut rx = opts.consumer(&pong).unwrap();
        if let Some(spin) = spin {
            tx.set_spin(spin).unwrap();
            rx.set_spin(spin).unwrap();
        }
        let spin_ns = spin.map_or(20_000, |s| s.as_nanos()).to_string();
        let peer = Peer::spawn(&["echo", &ping, &pong, &spin_ns], &[&ping, &pong]);
        let mut msg = [0x5Au8; 64];
        let mut back = [0u8; 64];
        let mut seq = 0u64;
        // Every round trip is timed on its own too (one clock read each, as bench/ does),
        // for percentiles: criterion's figure is a mean, which the rare preempted round trip
        // on a shared machine pulls up.
        let mut samples: Vec<u64> = Vec::with_capacity(MAX_SAMPLES);
        g.bench_function(BenchmarkId::new(label, "64B"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut last = start;
                for _ in 0..iters {
                    msg[..8].copy_from_slice(&seq.to_le_bytes());
                    tx.write(&msg).unwrap();
                    let n = rx.read_into(&mut back).unwrap();
                    assert!(n == 64 && seq_of(&back) == seq, "reply {seq} is wrong");
                    seq += 1;
                    let now = Instant::now();
                    let ns = (now - last).as_nanos() as u64;
                    // Keep the last MAX_SAMPLES: the measurement, not the warm-up.
                    if samples.len() < MAX_SAMPLES {
                        samples.push(ns);
                    } else {
                        samples[(seq as usize) % MAX_SAMPLES] = ns;
                    }
                    last = now;
                }
                black_box(&back);
                start.elapsed()
            })
        });
        if !samples.is_empty() {
            samples.sort_unstable();
            let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
            let line = format!(
                "  round trip 64B {label:>8}: median {} ns, p99 {} ns, p99.9 {} ns ({} round trips)",
                at(0.5),
                at(0.99),
                at(0.999),
                samples.len()
            );
            PERCENTILES.lock().unwrap().push(line);
        }
        drop(tx); // end-of-stream: the echo child exits
        drop(rx);
        drop(peer);
    }
    g.finish();
}

fn liveness(c: &mut Criterion) {
    let mut g = c.benchmark_group("liveness");
    g.sample_size(10).measurement_time(Duration::from_secs(2));
    let long = Duration::from_secs(20);
    let wait_until = |what: &str, cond: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !cond() {
            assert!(t.elapsed() < long, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    g.bench_function("peer_death_noticed", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let name = unique_name("death");
                let mut rx = OpenOptions::new()
                    .create_new(true)
                    .capacity(64 << 10)
                    .consumer(&name)
                    .unwrap();
                rx.set_spin(Duration::ZERO).unwrap();
                let mut cmd = Command::new(env::current_exe().unwrap());
                cmd.env(CHILD_ENV, format!("hold {name}"))
                    .stdin(std::process::Stdio::piped());
                if let Some([_, cpu]) = cpus() {
                    cmd.env(CPU_ENV, cpu.to_string());
                }
                let mut child = cmd.spawn().unwrap();
                wait_until("the producer", &|| rx.stat().unwrap().producer_alive);
                let sleeps = rx.stat().unwrap().consumer_sleeps;
                let obs = shm_channel::Observer::open(&name).unwrap();
                let reader = std::thread::spawn(move || {
                    rx.set_timeout(Some(long));
                    let end = rx.read(&mut Vec::new());
                    (Instant::now(), end)
                });
                wait_until("the reader to sleep", &|| {
                    obs.stat().unwrap().consumer_sleeps > sleeps
                });
                let killed = Instant::now();
                child.kill().unwrap();
                let (noticed, end) = reader.join().unwrap();
                assert!(matches!(end, Err(Error::PeerDied)), "{end:?}");
                total += noticed - killed;
                child.wait().unwrap();
                drop(obs);
                let _ = shm_channel::force_unlink(&name);
            }
            total
        })
    });
    let name = unique_name("timeout");
    let mut rx = OpenOptions::new()
        .create_new(true)
        .capacity(64 << 10)
        .consumer(&name)
        .unwrap();
    let tx = Producer::open(&name).unwrap(); // alive and silent: only the timeout ends a read
    rx.set_timeout(Some(Duration::from_millis(10)));
    g.bench_function("timeout_10ms", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                assert!(matches!(rx.read(&mut Vec::new()), Err(Error::TimedOut)));
            }
            t.elapsed()
        })
    });
    drop((tx, rx));
    let _ = shm_channel::force_unlink(&name);
    g.finish();
}

// ---- summary -------------------------------------------------------------------------

/// The median time per iteration, in ns, of a criterion benchmark finished by this run.
fn median_ns(dir: &Path, id: &str, since: SystemTime) -> Option<f64> {
    let path = dir.join(id).join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None; // from an earlier run (this one skipped it)
    }
    let text = std::fs::read_to_string(path).ok()?;
    let median = &text[text.find("\"median\"")?..];
    let pe = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = pe.find([',', '}'])?;
    pe[..end].trim().parse().ok()
}

fn summary(since: SystemTime) {
    // Where criterion writes its results (the same search it makes, less `cargo metadata`).
    let dir = env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
                .join("criterion")
        });
    println!("\nshm_channel Rust binding, two processes (criterion medians):");
    for (size, label) in SIZES {
        if let Some(ns) = median_ns(&dir, &format!("throughput/write_read/{label}"), since) {
            println!(
                "  throughput write/read  {label:>5}: {:>12.0} msgs/s  {:>6.2} GB/s",
                1e9 / ns,
                size as f64 / ns
            );
        }
    }
    if let Some(ns) = median_ns(&dir, "throughput/batch32/64B", since) {
        println!(
            "  throughput batch x{BATCH}    64B: {:>12.0} msgs/s  {:>6.2} GB/s",
            1e9 / ns,
            64.0 / ns
        );
    }
    for label in ["spin", "blocking"] {
        if let Some(ns) = median_ns(&dir, &format!("round_trip/{label}/64B"), since) {
            println!("  round trip 64B {label:>8}: mean {:.0} ns (criterion)", ns);
        }
    }
    if let Some(ns) = median_ns(&dir, "liveness/peer_death_noticed", since) {
        println!(
            "  producer SIGKILLed -> blocked reader told: {:.1} ms",
            ns / 1e6
        );
    }
    if let Some(ns) = median_ns(&dir, "liveness/timeout_10ms", since) {
        println!(
            "  read with a 10 ms timeout returns after:  {:.1} ms",
            ns / 1e6
        );
    }
    for line in PERCENTILES.lock().unwrap().iter() {
        println!("{line}");
    }
}

fn main() {
    if let Ok(args) = env::var(CHILD_ENV) {
        let args: Vec<String> = args.split(' ').map(str::to_string).collect();
        child(&args);
        return;
    }
    let started = SystemTime::now();
    if let Some([cpu, _]) = cpus() {
        pin(cpu);
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    throughput(&mut c);
    round_trip(&mut c);
    liveness(&mut c);
    c.final_summary();
    // Criterion measures only under `cargo bench` (which passes --bench); `cargo test
    // --benches` runs each benchmark once, with nothing to summarise.
    if env::args().any(|a| a == "--bench") && !env::args().any(|a| a == "--list") {
        summary(started);
    }
}
