//! Issue 6, the Rust side: the shm-channel crate against iceoryx2 publish-subscribe (the
//! crates.io crate), between two processes, with the methodology of bench/ (see
//! bench/README.md): two processes pinned to two CPUs, every message numbered and checked,
//! a calibration run per case, then `--reps` runs per figure interleaved case by case.
//!
//! ```text
//! shm-channel-compare [--quick] [--reps N] [--time S] [--sizes 64,4096] [--json FILE]
//!                     [--goals FILE.md] [--only ID,...] [--cross] [--capacity BYTES]
//! ```
//!
//! Throughput (messages of `size` bytes, producer in a child process, consumer here, timed by
//! the consumer from the end of a warm-up to the last message; the warm-up is twice the ring):
//! - `rs_copy`: `Producer::write` / `Consumer::read_into` (the copy path);
//! - `rs_zerocopy`: `Producer::reserve` + fill + commit / `Consumer::peek` + check + release;
//! - `ice_pubsub`: iceoryx2 `publish_subscribe::<[u8]>`, `loan_slice_uninit` + fill + `send` /
//!   `receive` + check + drop; lossless (`enable_safe_overflow(false)`, backpressure
//!   `RetryUntilDelivered`), with a subscriber buffer holding as many samples as the
//!   shm-channel ring holds messages (at least 2, at most 4096);
//! - `c_copy`, `c_zerocopy`, `c_batch` (64 B and 1080p; batch at 64 B): the same loops in C
//!   (c/loops.c, the loops of bench/shm_cases.c), compiled into this program against the same
//!   C library, paired with `rs_copy`, `rs_zerocopy`, `rs_batch` (`write_batch`/`read_batch`,
//!   32 messages per call): issue 14's "Rust at least 0.95x C", run by run;
//! - `memcpy` (1080p): the fixed floor, a copy into one of two L3-resident slots
//!   (`memcpy_dst8`: the same 8 bytes past a cache line).
//!
//! Each throughput run also records both threads' CPU time per message and, from the
//! channel's counters, how often per message the ring was found full / empty and either side
//! slept (printed after the goals). `--cross` adds the 64 B cross pairs (`rc_zerocopy`: Rust
//! producer, C consumer; `cr_zerocopy`: the reverse; `rc_zerocopy_raw`: a Rust loop over the
//! raw FFI; `c_zerocopy_ind`: the C loop calling the library through pointers). Rounds
//! alternate their order; `--goals FILE` writes the paired ratios as Markdown.
//! `--inproc ID N` runs one in-process loop for callgrind.sh.
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
use shm_channel::{Batch, Consumer, Error, OpenOptions, Producer};
use shm_channel_sys as sys;

const CHILD_ENV: &str = "SHMCMP_CHILD";
const CPU_ENV: &str = "SHMCMP_CPU";
const MIB: usize = 1 << 20;
const RTT_SIZE: usize = 64;
const ICE_MAX_BUFFER: usize = 4096;
/// Messages per `write_batch` / `read_batch` call, as bench/main.c's default `--batch`.
const BATCH: usize = 32;
/// The 1080p frame of issue 14 (1920 x 1080 x 3 bytes).
const FRAME: usize = 6_220_800;

// The C twin of the paired loops (c/loops.c, compiled by build.rs into this program and
// linked against the same static C library as the Rust loops).
extern "C" {
    fn cmp_c_produce(
        ch: *mut sys::shm_channel_t,
        mode: i32,
        size: u64,
        first: u64,
        total: u64,
        batch: u32,
        src: *mut u8,
    ) -> i64;
    fn cmp_c_consume(
        ch: *mut sys::shm_channel_t,
        mode: i32,
        size: u64,
        first: u64,
        end: u64,
        batch: u32,
        buf: *mut u8,
    ) -> i64;
    fn cmp_c_inproc(
        tx: *mut sys::shm_channel_t,
        rx: *mut sys::shm_channel_t,
        mode: i32,
        size: u64,
        n: u64,
        batch: u32,
    ) -> i64;
}

extern "C" {
    fn cmp_with_stack_pad(
        pad: u64,
        f: extern "C" fn(*mut std::ffi::c_void),
        arg: *mut std::ffi::c_void,
    );
}

/// Runs `f` with the stack `SHMCMP_STACK_PAD` bytes deeper (SHMCMP_STACK_PAD_C: the C
/// loops' only, `c_mode`), through c/loops.c's cmp_with_stack_pad; without either, runs it
/// as it is. The layout experiment of bench/README ("Rust vs C"): the producer loops, and
/// the library's frames under them, at other stack addresses. SHMCMP_ADDRS=1 prints the
/// stack's page offset.
fn with_stack_pad<F: FnMut()>(c_mode: bool, mut f: F) {
    extern "C" fn tramp<F: FnMut()>(arg: *mut std::ffi::c_void) {
        if env::var_os("SHMCMP_ADDRS").is_some() {
            let here = 0u8;
            eprintln!(
                "producer loop's stack at page offset {:#x}",
                &here as *const u8 as usize % 4096
            );
        }
        // SAFETY: `arg` is the `&mut F` with_stack_pad passed, alive for this call.
        let f = unsafe { &mut *arg.cast::<F>() };
        f();
    }
    let var = |v: &str| env::var(v).ok().and_then(|v| v.parse::<u64>().ok());
    let want = if c_mode {
        var("SHMCMP_STACK_PAD_C")
    } else {
        None
    };
    match want.or_else(|| var("SHMCMP_STACK_PAD")) {
        // SAFETY: the callback and its argument are valid for the call.
        Some(pad) => unsafe { cmp_with_stack_pad(pad, tramp::<F>, (&mut f as *mut F).cast()) },
        None => f(),
    }
}

fn is_c_mode(mode: &str) -> bool {
    matches!(mode, "ccopy" | "czerocopy" | "cbatch" | "czerocopyind")
}

/// The cross pairs' modes (issue 14, which side is slower): `rczerocopy` is the Rust
/// producer with the C consumer, `crzerocopy` the C producer with the Rust consumer. The
/// producer's mode (what the child runs) of any throughput mode.
fn producer_mode(mode: &str) -> &str {
    match mode {
        "rczerocopy" => "zerocopy",
        "rrczerocopy" => "zerocopyraw",
        "crzerocopy" => "czerocopy",
        "zerocopypoll" => "zerocopy",
        m => m,
    }
}

/// Whether this process consumes with the C loop (c/loops.c).
fn c_consumer(mode: &str) -> bool {
    is_c_mode(mode) || mode == "rczerocopy" || mode == "rrczerocopy"
}

/// What the consumer saw of one timed part: the shared header's counters at its start, so
/// that the end's minus these are the timed part's own (the warm-up excluded).
#[derive(Clone, Copy, Default)]
struct Counts {
    full: u64,
    empty: u64,
    sleeps: u64,
}

impl Counts {
    fn of(full: u64, empty: u64, psleeps: u64, csleeps: u64) -> Counts {
        Counts {
            full,
            empty,
            sleeps: psleeps + csleeps,
        }
    }
    fn raw(ch: *mut sys::shm_channel_t) -> Counts {
        let mut st = sys::shm_channel_stat_t::default();
        // SAFETY: an open handle and a valid out-pointer.
        let rc = unsafe { sys::shm_channel_stat(ch, &mut st) };
        assert_eq!(rc, 0, "shm_channel_stat");
        Counts::of(
            st.full_events,
            st.empty_events,
            st.producer_sleeps,
            st.consumer_sleeps,
        )
    }
    fn rust(rx: &Consumer) -> Counts {
        let st = rx.stat().expect("stat");
        Counts::of(
            st.full_events,
            st.empty_events,
            st.producer_sleeps,
            st.consumer_sleeps,
        )
    }
}

/// c/loops.c's mode number for a `c*` mode of this harness.
fn c_mode(mode: &str) -> i32 {
    match mode {
        "ccopy" => 0,
        "czerocopy" => 1,
        "cbatch" => 2,
        "czerocopyind" => 3,
        other => panic!("not a C mode: {other}"),
    }
}

/// A raw handle opened through the library's C entry point, closed on drop (the C loops'
/// side: no Rust wrapper in between).
struct RawChannel(*mut sys::shm_channel_t);

impl RawChannel {
    fn open(name: &str, role: u32, flags: u32, capacity: u64) -> RawChannel {
        let c_name = std::ffi::CString::new(name).unwrap();
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid out-pointer and NUL-terminated name, alive for the call.
        let rc = unsafe {
            sys::shm_channel_open(&mut raw, c_name.as_ptr(), role, flags, capacity, 0o600)
        };
        assert!(rc == 0 && !raw.is_null(), "shm_channel_open({name}): {rc}");
        RawChannel(raw)
    }
}

impl Drop for RawChannel {
    fn drop(&mut self) {
        // SAFETY: we own the open handle and close it once.
        unsafe { sys::shm_channel_close(self.0) }
    }
}

type IceNode = Node<ipc::Service>;

// ---- small helpers ----------------------------------------------------------------------

/// `--capacity`: one ring size for every case (0: the default below).
static CAPACITY: AtomicUsize = AtomicUsize::new(0);

fn capacity_for(size: usize) -> usize {
    // As bench/main.c: 4 MiB, or the smallest power of two whose largest payload holds the
    // message (the recommended capacity: two frames take turns in cache; iceoryx2 gets as
    // many samples as fit, at least 2).
    match CAPACITY.load(Ordering::Relaxed) {
        0 => (2 * (size + 8)).next_power_of_two().max(4 * MIB),
        c => c,
    }
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

/// The producer's source buffer: `len` bytes of `mem` (which has 4096 + 64 bytes to spare)
/// at a 64-byte boundary; with SHMCMP_SRC_OFF=N at page offset N (a multiple of 64), for
/// the layout experiment of bench/README ("Rust vs C"); SHMCMP_SRC_OFF_C=N: the C loops'
/// (`c_mode`) only. SHMCMP_ADDRS=1 prints the page offset to stderr.
fn src_buffer(mem: &mut [u8], len: usize, c_mode: bool) -> &mut [u8] {
    let var = |v: &str| env::var(v).ok().and_then(|v| v.parse::<usize>().ok());
    let want = if c_mode {
        var("SHMCMP_SRC_OFF_C")
    } else {
        None
    };
    let off = match want.or_else(|| var("SHMCMP_SRC_OFF")) {
        Some(o) => (mem.as_ptr().align_offset(4096) + (o & 4032)) % 4096,
        None => mem.as_ptr().align_offset(64),
    };
    let src = &mut mem[off..off + len];
    if env::var_os("SHMCMP_ADDRS").is_some() {
        eprintln!(
            "producer source at page offset {:#x}",
            src.as_ptr() as usize % 4096
        );
    }
    src
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

    /// The producer's "cpu NS" line: its CPU time for the timed messages.
    fn cpu_ns(&mut self) -> f64 {
        // (The stream cases never wait for "ready": it may come first.)
        loop {
            let mut line = String::new();
            self.stdout.read_line(&mut line).expect("peer stdout");
            if let Some(v) = line.trim().strip_prefix("cpu ") {
                return v.parse().expect("peer's cpu line");
            }
            assert!(!line.is_empty(), "the peer ended without its cpu line");
        }
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

/// This thread's CPU time (user + system), ns: what the producer's work costs, which a
/// loaded machine stretches less than the wall-clock time.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
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
        // produce MODE NAME SIZE TOTAL WARMUP: messages 0..WARMUP, then WARMUP..TOTAL, and
        // prints "cpu NS", this thread's CPU time for the second part.
        "produce" => {
            let (mode, name, size, total) = (&args[1], &args[2], arg(3), arg(4) as u64);
            let warmup = arg(5) as u64;
            let mut src_mem = vec![0x5Au8; size + 64 + 4096];
            let src = src_buffer(&mut src_mem, size, false);
            let mut cpu = [0u64; 2];
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
                for (part, range) in [(0, 0..warmup), (1, warmup..total)] {
                    for seq in range {
                        let mut s = publisher
                            .loan_slice_uninit(size)
                            .expect("loan")
                            .write_from_slice(src);
                        stamp(s.payload_mut(), seq);
                        s.send().expect("send");
                    }
                    cpu[part] = thread_cpu_ns();
                    if part == 0 {
                        // The consumer has read the warm-up: the timed part starts from an
                        // empty ring (as bench/'s bench_tp_warm).
                        wait_stdin_line();
                    }
                }
            } else if mode == "zerocopyraw" {
                // The Rust loop over the raw FFI (no binding in between): the case
                // rc_zerocopy_raw (--cross), for where the Rust loop's time goes.
                let ch = RawChannel::open(name, sys::SHM_CHANNEL_PRODUCER, 0, 0);
                ready();
                for (part, range) in [(0, 0..warmup), (1, warmup..total)] {
                    for seq in range {
                        let mut p = std::ptr::null_mut();
                        // SAFETY: an open producer handle used by this thread only; on
                        // success `p` points at `size` writable bytes of the ring.
                        unsafe {
                            let rc = sys::shm_channel_reserve(ch.0, size as u64, &mut p, -1);
                            assert_eq!(rc, 0, "reserve");
                            let r = std::slice::from_raw_parts_mut(p.cast::<u8>(), size);
                            r.copy_from_slice(src);
                            stamp(r, seq);
                            assert_eq!(sys::shm_channel_commit(ch.0, size as u64), 0, "commit");
                        }
                    }
                    cpu[part] = thread_cpu_ns();
                    if part == 0 {
                        wait_stdin_line();
                    }
                }
                drop(ch);
            } else if is_c_mode(mode) {
                let ch = RawChannel::open(name, sys::SHM_CHANNEL_PRODUCER, 0, 0);
                // The C loop's source: one allocation per run, as the Rust loops' `src`.
                let n = if mode == "cbatch" { BATCH } else { 1 };
                let mut c_src_mem = vec![0x5Au8; size * n + 64 + 4096];
                let c_src = src_buffer(&mut c_src_mem, size * n, true);
                ready();
                with_stack_pad(true, || {
                    for (part, (a, b)) in [(0, (0, warmup)), (1, (warmup, total))] {
                        // SAFETY: an open producer handle, used by this thread only; `c_src`
                        // holds size * n bytes, as the C loop reads and stamps.
                        let rc = unsafe {
                            let p = c_src.as_mut_ptr();
                            cmp_c_produce(ch.0, c_mode(mode), size as u64, a, b, BATCH as u32, p)
                        };
                        assert_eq!(rc, 0, "C producer failed");
                        cpu[part] = thread_cpu_ns();
                        if part == 0 {
                            // The consumer has read the warm-up: the timed part starts from an
                            // empty ring (as bench/'s bench_tp_warm).
                            wait_stdin_line();
                        }
                    }
                });
                drop(ch);
            } else {
                // SHMCMP_TX_AT=N (layout experiment, bench/README "Rust vs C"): the Producer
                // at page offset N of a heap page instead of on this stack frame.
                let at = env::var("SHMCMP_TX_AT")
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok());
                let mut page: Vec<std::mem::MaybeUninit<Producer>> = Vec::new();
                let mut on_stack = None;
                let tx: &mut Producer = match at {
                    Some(off) => {
                        let sz = std::mem::size_of::<Producer>();
                        page.reserve_exact(2 * 4096 / sz + 2);
                        let base = page.as_mut_ptr() as usize;
                        let k = ((base + 4095) / 4096 * 4096 + (off & 4095) - base).div_ceil(sz);
                        // Only slot k is used: the Producer at the first slot at or past the
                        // wanted offset (size_of::<Producer>() apart).
                        let slot = &mut page.spare_capacity_mut()[k];
                        slot.write(std::mem::MaybeUninit::new(Producer::open(name).unwrap()));
                        // SAFETY: just initialised; dropped by hand below.
                        unsafe { slot.assume_init_mut().assume_init_mut() }
                    }
                    None => on_stack.insert(Producer::open(name).unwrap()),
                };
                if env::var_os("SHMCMP_ADDRS").is_some() {
                    let a = tx as *const Producer as usize;
                    eprintln!(
                        "Rust producer handle at page offset {:#x} (+{} B)",
                        a % 4096,
                        std::mem::size_of::<Producer>()
                    );
                }
                ready();
                let proto = src.to_vec();
                let fill = |n: usize| -> Batch { (0..n).map(|_| &proto[..]).collect() };
                let mut batch = fill(if mode == "batch" { BATCH } else { 0 });
                with_stack_pad(false, || {
                    for (part, range) in [(0, 0..warmup), (1, warmup..total)] {
                        // One loop per mode, the mode chosen outside it, as c/loops.c does.
                        if mode == "batch" {
                            let (mut seq, end) = (range.start, range.end);
                            while seq < end {
                                let n = ((end - seq) as usize).min(BATCH);
                                if n != batch.len() {
                                    batch = fill(n); // the last call of a run only
                                }
                                for (k, m) in batch.bytes_mut().chunks_exact_mut(size).enumerate() {
                                    stamp(m, seq + k as u64);
                                }
                                seq += tx.write_batch(&batch).unwrap() as u64;
                            }
                        } else if mode == "copy" {
                            for seq in range {
                                stamp(src, seq);
                                tx.write(src).unwrap();
                            }
                        } else {
                            for seq in range {
                                let mut r = tx.reserve(size).unwrap();
                                r.copy_from_slice(src);
                                stamp(&mut r, seq);
                                r.commit().unwrap();
                            }
                        }
                        cpu[part] = thread_cpu_ns();
                        if part == 0 {
                            // The consumer has read the warm-up: the timed part starts from an
                            // empty ring (as bench/'s bench_tp_warm).
                            wait_stdin_line();
                        }
                    }
                });
                if at.is_some() {
                    // SAFETY: the Producer placed in `page` above, not used after this.
                    unsafe { std::ptr::drop_in_place(tx as *mut Producer) };
                }
                drop(on_stack);
            }
            let mut out = std::io::stdout();
            writeln!(out, "cpu {}", cpu[1] - cpu[0]).unwrap();
            out.flush().unwrap();
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
    /// Throughput: the producer's CPU time per message, ns, per run.
    cpu: Vec<f64>,
    /// Throughput, per run: the consumer's CPU time per message (ns); per message, how often
    /// a call found the ring full (the producer waited), empty (the consumer waited), and
    /// the futex sleeps of both sides (shm-channel modes; 0 for the others).
    ccpu: Vec<f64>,
    full: Vec<f64>,
    empty: Vec<f64>,
    sleeps: Vec<f64>,
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

/// The fixed large-message floor, as bench/baselines.c's `memcpy`: one process copying
/// each message into one of two 64-byte aligned destination slots, used in turn, so the
/// working set (source + 2 x size: 18.7 MB for a 1080p frame) stays in the last-level cache
/// whatever the ring size. `dst_offset` shifts both slots by that many bytes (8: where a
/// ring record's payload starts, after its 8-byte length; a diagnostic row).
fn run_memcpy(size: usize, count: u64, dst_offset: usize) -> [f64; 2] {
    let slot = (size + 63) & !63;
    let mut src_mem = vec![0x5Au8; slot + 64];
    let src = aligned64(&mut src_mem, slot);
    let mut dst_mem = vec![0u8; 2 * slot + 128];
    let dst = aligned64(&mut dst_mem, 2 * slot + 64);
    let mut k = 0;
    for _ in 0..4 {
        dst[k * slot + dst_offset..][..size].copy_from_slice(&src[..size]);
        k ^= 1;
    }
    let (t0, cpu0) = (Instant::now(), thread_cpu_ns());
    for i in 0..count {
        stamp(src, i);
        dst[k * slot + dst_offset..][..size].copy_from_slice(&src[..size]);
        std::hint::black_box(&mut dst[k * slot]); // keep every copy
        k ^= 1;
    }
    let cpu = (thread_cpu_ns() - cpu0) as f64;
    [
        count as f64 / t0.elapsed().as_secs_f64(),
        cpu / count as f64,
    ]
}

fn report_addrs(who: &str, size: usize, addrs: Option<std::collections::BTreeSet<usize>>) {
    if let Some(a) = addrs {
        let span = a.last().unwrap_or(&0) + size - a.first().unwrap_or(&0);
        let mod64: std::collections::BTreeSet<usize> = a.iter().map(|p| p % 64).collect();
        eprintln!(
            "\n{who}: {} distinct message addresses, spanning {:.1} MB; address mod 64: {mod64:?}",
            a.len(),
            span as f64 / 1e6
        );
    }
}

/// One throughput run: `count` messages timed after a warm-up; [msgs/s, the producer's CPU
/// time per message in ns, the consumer's, then per message of the timed part: the times
/// a call found the ring full (the producer waited), empty (the consumer waited), and the
/// futex sleeps of both] (the last four: shm-channel stream modes only, else 0).
fn run_throughput(ctx: &Ctx, mode: &str, size: usize, count: u64) -> [f64; 6] {
    // SHMCMP_ADDRS=1: count the distinct addresses the zero-copy consumers see (the frames'
    // footprint: where the next frame goes), printed to stderr.
    let mut addrs = env::var_os("SHMCMP_ADDRS").map(|_| std::collections::BTreeSet::new());
    if let Some(off) = mode.strip_prefix("memcpy") {
        let [r, cpu] = run_memcpy(size, count, off.parse().unwrap_or(0));
        return [r, cpu, 0.0, 0.0, 0.0, 0.0];
    }
    let cap = capacity_for(size);
    // A multiple of the batch, so that batches need not straddle the warm-up's end.
    let warmup = ((2 * cap / (size + 8)) as u64)
        .max(16)
        .next_multiple_of(BATCH as u64);
    let total = warmup + count;
    let name = unique("tp");
    let args: Vec<String> = vec![
        "produce".into(),
        producer_mode(mode).into(),
        name.clone(),
        size.to_string(),
        total.to_string(),
        warmup.to_string(),
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
                peer.go();
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
            if let Some(a) = addrs.as_mut() {
                a.insert(p.as_ptr() as usize);
            }
        }
        report_addrs("iceoryx2", size, addrs);
        let dt = t0.elapsed().as_secs_f64();
        let cpu = peer.cpu_ns();
        peer.finish();
        return [count as f64 / dt, cpu / count as f64, 0.0, 0.0, 0.0, 0.0];
    }
    // Per message of the timed part: [rate, producer CPU, consumer CPU, full, empty, sleeps].
    let per_msg = |ns: f64, pcpu: f64, ccpu: u64, c0: Counts, c1: Counts| -> [f64; 6] {
        let n = count as f64;
        [
            n / (ns * 1e-9),
            pcpu / n,
            ccpu as f64 / n,
            (c1.full - c0.full) as f64 / n,
            (c1.empty - c0.empty) as f64 / n,
            (c1.sleeps - c0.sleeps) as f64 / n,
        ]
    };
    if c_consumer(mode) {
        let flags = sys::SHM_CHANNEL_CREATE | sys::SHM_CHANNEL_EXCL;
        let ch = RawChannel::open(&name, sys::SHM_CHANNEL_CONSUMER, flags, cap as u64);
        let mut peer = Peer::spawn(&args, ctx.child_cpu(), &[&name]);
        let n = if mode == "cbatch" { BATCH } else { 1 };
        let mut buf_mem = vec![0u8; size * n + 64];
        let buf = aligned64(&mut buf_mem, size * n).as_mut_ptr();
        let m = c_mode(if mode.starts_with('r') {
            "czerocopy"
        } else {
            mode
        });
        let (size64, b32) = (size as u64, BATCH as u32);
        // SAFETY: an open consumer handle, used by this thread only; `buf` holds size * n
        // bytes, as the C loop writes.
        let bad = unsafe { cmp_c_consume(ch.0, m, size64, 0, warmup, b32, buf) };
        assert_eq!(
            bad, 0,
            "C consumer, warm-up: {bad} (negative: an errno; positive: bad messages)"
        );
        let c0 = Counts::raw(ch.0);
        peer.go();
        let (t0, cpu0) = (Instant::now(), thread_cpu_ns());
        // SAFETY: as above.
        let bad = unsafe { cmp_c_consume(ch.0, m, size64, warmup, total, b32, buf) };
        let (ns, ccpu) = (t0.elapsed().as_nanos() as f64, thread_cpu_ns() - cpu0);
        assert_eq!(
            bad, 0,
            "C consumer: {bad} (negative: an errno; positive: bad messages)"
        );
        let c1 = Counts::raw(ch.0);
        drop(ch);
        let cpu = peer.cpu_ns();
        peer.finish();
        return per_msg(ns, cpu, ccpu, c0, c1);
    }
    let mut rx = OpenOptions::new()
        .create_new(true)
        .capacity(cap)
        .consumer(&name)
        .expect("open consumer");
    // `zerocopypoll`: the zero-copy loop whose consumer busy-polls, as iceoryx2's subscriber
    // does (its receive() loop never sleeps): a spin that outlasts any frame interval, so the
    // consumer never sleeps and the producer never makes a wake call (the same waiting as
    // ice_pubsub). `rs_zerocopy` keeps the library's default 20 us spin, then the futex.
    let mode = if mode == "zerocopypoll" {
        rx.set_spin(Duration::from_secs(1)).expect("set_spin");
        "zerocopy"
    } else {
        mode
    };
    let mut peer = Peer::spawn(&args, ctx.child_cpu(), &[&name]);
    let n = if mode == "batch" { BATCH } else { 1 };
    let mut buf_mem = vec![0u8; size * n + 64];
    let buf = aligned64(&mut buf_mem, size * n);
    let mut batch = Batch::with_capacity(size * BATCH, BATCH);
    // As for the C loops: the warm-up, then the producer is told to go on, then the timed
    // part, each one call of the loop (nothing but the loop's own work in the timed part).
    rs_consume(&mut rx, mode, size, 0, warmup, buf, &mut batch, &mut addrs);
    let c0 = Counts::rust(&rx);
    peer.go();
    let (t0, cpu0) = (Instant::now(), thread_cpu_ns());
    rs_consume(
        &mut rx, mode, size, warmup, total, buf, &mut batch, &mut addrs,
    );
    let (ns, ccpu) = (t0.elapsed().as_nanos() as f64, thread_cpu_ns() - cpu0);
    let c1 = Counts::rust(&rx);
    report_addrs("shm-channel", size, addrs);
    drop(rx);
    let cpu = peer.cpu_ns();
    peer.finish();
    per_msg(ns, cpu, ccpu, c0, c1)
}

/// The Rust consumer's loops: messages `first .. end`, each checked (size and sequence
/// number), one loop per mode, the mode chosen outside it, as c/loops.c does. Panics on a
/// bad message. `addrs`: SHMCMP_ADDRS's set of the zero-copy messages' addresses.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn rs_consume(
    rx: &mut Consumer,
    mode: &str,
    size: usize,
    first: u64,
    end: u64,
    buf: &mut [u8],
    batch: &mut Batch,
    addrs: &mut Option<std::collections::BTreeSet<usize>>,
) {
    if mode == "batch" {
        let mut seq = first;
        while seq < end {
            let want = ((end - seq) as usize).min(BATCH);
            let got = rx.read_batch(batch, want).expect("read_batch");
            for (k, m) in batch.iter().enumerate() {
                let want_seq = seq + k as u64;
                assert!(
                    m.len() == size && seq_of(m) == want_seq,
                    "message {want_seq} is wrong"
                );
            }
            seq += got as u64;
        }
    } else if mode == "copy" {
        for seq in first..end {
            let n = rx.read_into(buf).expect("read");
            assert!(n == size && seq_of(buf) == seq, "message {seq} is wrong");
        }
    } else if let Some(a) = addrs.as_mut() {
        for seq in first..end {
            let p = rx.peek().expect("peek");
            assert!(
                p.len() == size && seq_of(&p) == seq,
                "message {seq} is wrong"
            );
            a.insert(p.as_ptr() as usize);
        }
    } else {
        for seq in first..end {
            let p = rx.peek().expect("peek");
            assert!(
                p.len() == size && seq_of(&p) == seq,
                "message {seq} is wrong"
            );
        }
    }
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

fn run_case(ctx: &Ctx, c: &Case, count: u64) -> Result<[f64; 6], String> {
    let mode = c.mode;
    let size = c.size;
    let kind = c.kind;
    let ctx_cpus = ctx.cpus;
    // A failed run (a panic in this process or the peer) is reported, not fatal.
    std::panic::catch_unwind(move || {
        let ctx = Ctx { cpus: ctx_cpus };
        if kind == Kind::Throughput {
            run_throughput(&ctx, mode, size, count)
        } else {
            let [a, b, c, d, e] = run_roundtrip(&ctx, mode, count);
            [a, b, c, d, e, 0.0]
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
    // A C or cross row gets its Rust twin's count: both runs move as many messages.
    let twin_of = |id: &str| -> Option<String> {
        ["c_", "rc_", "cr_"]
            .iter()
            .find_map(|p| id.strip_prefix(p))
            .map(|t| t.to_string())
    };
    for c in cases.iter_mut() {
        if twin_of(c.id).is_some() {
            continue; // (below)
        }
        calibrate(ctx, c, rep_s);
    }
    for k in 0..cases.len() {
        if let Some(twin) = twin_of(cases[k].id) {
            let twin = twin.as_str();
            let rs = cases
                .iter()
                .find(|c| c.id.strip_prefix("rs_") == Some(twin));
            match rs.map(|c| (c.count, c.error.clone())) {
                Some((n, None)) => cases[k].count = n,
                _ => calibrate(ctx, &mut cases[k], rep_s),
            }
        }
    }
    let mut order: Vec<usize> = (0..cases.len()).collect();
    for _ in 0..reps {
        // Every run of a round, then the next round in the opposite order: neither twin of
        // a pair always runs first (or right after iceoryx2).
        for &k in &order {
            let c = &mut cases[k];
            if c.error.is_some() {
                continue;
            }
            match run_case(ctx, c, c.count) {
                Ok(st) => {
                    c.runs.push(st[0]);
                    if c.kind == Kind::Throughput {
                        c.cpu.push(st[1]);
                        c.ccpu.push(st[2]);
                        c.full.push(st[3]);
                        c.empty.push(st[4]);
                        c.sleeps.push(st[5]);
                    } else {
                        c.p99.push(st[1]);
                        c.p999.push(st[2]);
                        c.max.push(st[3]);
                    }
                }
                Err(e) => c.error = Some(e),
            }
        }
        order.reverse();
        eprint!(".");
    }
    eprintln!();
}

/// A same-run ratio: `a` over `b`, run by run (both ran in the same round), so the noise
/// of one moment hits both; the median and the range of those per-round ratios.
struct Paired {
    what: String,
    size: usize,
    a: String,
    b: String,
    ratios: Vec<f64>,
    /// b's producer CPU time per message over a's, per round (above 1: a's costs less).
    cpu_ratios: Vec<f64>,
    goal: Option<f64>,
}

impl Paired {
    fn new(
        all: &[Case],
        what: &str,
        size: usize,
        a: &str,
        b: &str,
        goal: Option<f64>,
    ) -> Option<Paired> {
        let find = |id: &str| {
            all.iter()
                .find(|c| c.id == id && c.size == size && c.error.is_none())
        };
        let (ca, cb) = (find(a)?, find(b)?);
        let ratios: Vec<f64> = ca.runs.iter().zip(&cb.runs).map(|(x, y)| x / y).collect();
        let cpu_ratios: Vec<f64> = ca.cpu.iter().zip(&cb.cpu).map(|(x, y)| y / x).collect();
        if ratios.is_empty() {
            return None;
        }
        Some(Paired {
            what: what.into(),
            size,
            a: a.into(),
            b: b.into(),
            ratios,
            cpu_ratios,
            goal,
        })
    }
    fn lo(&self) -> f64 {
        self.ratios.iter().cloned().fold(f64::INFINITY, f64::min)
    }
    fn hi(&self) -> f64 {
        self.ratios
            .iter()
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max)
    }
    fn met(&self) -> Option<bool> {
        self.goal.map(|g| median(&self.ratios) >= g)
    }
}

/// `--goals FILE`: the pairs as a Markdown section for bench/results/REPORT.md.
fn goals_markdown(all: &[Case], pairs: &[Paired], reps: usize, l0: f64, l1: f64) -> String {
    let mut o =
        String::from("## Issue 14: Rust vs C, and 1080p vs iceoryx2 (bench/rust, same run)\n\n");
    o.push_str(&format!(
        "CPU: {}, {} online; load average {l0:.2} at the start, {l1:.2} at the end (2 CPUs: above ~0.3 \
         someone else shared them). Ring: {}. Every ratio is taken run by run (the two rows ran in \
         the same round; rounds alternate their order), median [min-max] over {reps} rounds. \
         `c_*` rows are the C loops of bench/shm_cases.c (bench/rust/c/loops.c) linked into the \
         same program against the same C library as the Rust loops. At 1080p both producers write \
         every byte of each frame and both consumers check the size and the 8-byte sequence number \
         in place (zero copy on both sides). Producer CPU: the producing thread's CPU time per \
         message (CLOCK_THREAD_CPUTIME_ID), b's over a's, which a loaded machine stretches less \
         than the wall clock.\n\n",
        cpu_model(),
        // SAFETY: sysconf has no preconditions.
        unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) },
        match CAPACITY.load(Ordering::Relaxed) {
            0 => "4 MiB, 16 MiB for 1080p (the recommended capacity)".to_string(),
            c => format!("{c} B (--capacity)"),
        }
    ));
    o.push_str("| comparison | size | a / b, per round | goal | a | b | producer CPU, b / a |\n");
    o.push_str("|---|---:|---|---|---|---|---|\n");
    for p in pairs {
        let find = |id: &str| all.iter().find(|c| c.id == id && c.size == p.size).unwrap();
        let goal = match (p.goal, p.met()) {
            (Some(g), Some(true)) => format!(">= {g:.2}x: met"),
            (Some(g), _) => format!(">= {g:.2}x: **missed**"),
            _ => "(info)".into(),
        };
        let lo = p.cpu_ratios.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = p
            .cpu_ratios
            .iter()
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max);
        o.push_str(&format!(
            "| {} | {} B | {:.3}x [{:.3}-{:.3}] | {goal} | `{}` {} | `{}` {} | {:.3}x [{lo:.3}-{hi:.3}] |\n",
            p.what,
            p.size,
            median(&p.ratios),
            p.lo(),
            p.hi(),
            p.a,
            spread_str(find(&p.a)),
            p.b,
            spread_str(find(&p.b)),
            median(&p.cpu_ratios),
        ));
    }
    o.push('\n');
    o
}

/// Median and [min-max] of a case's runs, as "12.3 M msgs/s [11.0-13.1]" (or GB/s).
fn spread_str(c: &Case) -> String {
    let (lo, hi) = c
        .runs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
            (l.min(x), h.max(x))
        });
    if c.size >= MIB {
        let g = c.size as f64 / 1e9;
        format!(
            "{:.2} GB/s [{:.2}-{:.2}]",
            median(&c.runs) * g,
            lo * g,
            hi * g
        )
    } else {
        format!(
            "{:.2} M msgs/s [{:.2}-{:.2}]",
            median(&c.runs) / 1e6,
            lo / 1e6,
            hi / 1e6
        )
    }
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

/// The Rust twin of c/loops.c's cmp_c_inproc: one process, both handles, `n` messages
/// written and read back in turn (for callgrind's instruction counts per message).
#[inline(never)]
fn inproc_rs(tx: &mut Producer, rx: &mut Consumer, mode: &str, size: usize, n: u64) -> u64 {
    let mut src_mem = vec![0x5Au8; size * BATCH + 64];
    let src = aligned64(&mut src_mem, size * BATCH);
    let mut buf_mem = vec![0u8; size + 64];
    let buf = aligned64(&mut buf_mem, size);
    let mut wb: Batch = (0..BATCH).map(|_| &src[..size]).collect();
    let mut rb = Batch::with_capacity(size * BATCH, BATCH);
    let mut bad = 0u64;
    // One loop per mode, the mode chosen outside it, as c/loops.c does.
    match mode {
        "copy" => {
            for seq in 0..n {
                stamp(src, seq);
                tx.write(&src[..size]).unwrap();
                let got = rx.read_into(buf).unwrap();
                bad += (got != size || seq_of(buf) != seq) as u64;
            }
        }
        "zerocopy" => {
            for seq in 0..n {
                let mut r = tx.reserve(size).unwrap();
                r.copy_from_slice(&src[..size]);
                stamp(&mut r, seq);
                r.commit().unwrap();
                let p = rx.peek().unwrap();
                bad += (p.len() != size || seq_of(&p) != seq) as u64;
            }
        }
        _ => {
            for seq in (0..n).step_by(BATCH) {
                for (k, m) in wb.bytes_mut().chunks_exact_mut(size).enumerate() {
                    stamp(m, seq + k as u64);
                }
                let w = tx.write_batch(&wb).unwrap();
                let got = rx.read_batch(&mut rb, BATCH).unwrap();
                bad += (w != BATCH || got != BATCH) as u64;
                for (k, m) in rb.iter().enumerate() {
                    bad += (m.len() != size || seq_of(m) != seq + k as u64) as u64;
                }
            }
        }
    }
    bad
}

/// `--inproc MODE N`: run one in-process loop (rs_copy, c_copy, rs_zerocopy, ...) of N 64 B
/// messages, for bench/rust/callgrind.sh.
fn inproc(id: &str, n: u64) {
    let name = unique("inproc");
    let size = 64;
    let bad = if let Some(m) = id.strip_prefix("c_") {
        let flags = sys::SHM_CHANNEL_CREATE | sys::SHM_CHANNEL_EXCL;
        let raw_rx = RawChannel::open(&name, sys::SHM_CHANNEL_CONSUMER, flags, 4 * MIB as u64);
        let raw_tx = RawChannel::open(&name, sys::SHM_CHANNEL_PRODUCER, 0, 0);
        // SAFETY: two open handles of one channel, used by this thread only.
        let rc = unsafe {
            cmp_c_inproc(
                raw_tx.0,
                raw_rx.0,
                c_mode(&format!("c{m}")),
                size as u64,
                n,
                BATCH as u32,
            )
        };
        assert!(rc >= 0, "cmp_c_inproc: {rc}");
        rc as u64
    } else {
        let m = id.strip_prefix("rs_").expect("an rs_ or c_ id");
        let mut rx = OpenOptions::new()
            .create_new(true)
            .capacity(4 * MIB)
            .consumer(&name)
            .unwrap();
        let mut tx = Producer::open(&name).unwrap();
        inproc_rs(&mut tx, &mut rx, m, size, n)
    };
    let _ = shm_channel::force_unlink(&name);
    assert_eq!(bad, 0, "bad messages");
    println!("{id}: {n} messages");
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
    let mut goals_md: Option<String> = None;
    let mut do_tp = true;
    let mut do_rtt = true;
    let mut only: Option<Vec<String>> = None;
    let mut cross = false;
    let argv: Vec<String> = env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--inproc") {
        inproc(&argv[1], argv[2].parse().unwrap());
        return;
    }
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
            "--goals" => {
                goals_md = v;
                i += 1;
            }
            "--json" => {
                json = v;
                i += 1;
            }
            "--only" => {
                only = v.map(|l| l.split(',').map(str::to_string).collect());
                cross |= only
                    .iter()
                    .flatten()
                    .any(|o| o.starts_with("rc_") || o.starts_with("cr_") || o.ends_with("_ind"));
                i += 1;
            }
            "--capacity" => {
                CAPACITY.store(v.unwrap().parse().unwrap(), Ordering::Relaxed);
                i += 1;
            }
            "--throughput" => do_rtt = false,
            "--cross" => cross = true,
            "--roundtrip" => do_tp = false,
            "--help" | "-h" => {
                println!("usage: shm-channel-compare [--quick] [--reps N] [--time S] [--sizes LIST] [--throughput|--roundtrip] [--only ID,...] [--cross] [--capacity BYTES] [--json FILE] [--goals FILE.md]");
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
        cpu: vec![],
        ccpu: vec![],
        full: vec![],
        empty: vec![],
        sleeps: vec![],
        error: None,
    };
    let mut all: Vec<Case> = Vec::new();
    if do_tp {
        for &size in &sizes {
            eprint!("rust throughput {size} B ");
            let tp = Kind::Throughput;
            let mut cases = Vec::new();
            if size == FRAME {
                cases.push(new_case(
                    "memcpy",
                    "memcpy (floor, L3-resident)",
                    "baseline",
                    tp,
                    "memcpy0",
                    size,
                ));
                cases.push(new_case(
                    "memcpy_dst8",
                    "memcpy, destination 8 B past a line",
                    "baseline",
                    tp,
                    "memcpy8",
                    size,
                ));
            }
            cases.push(new_case(
                "ice_pubsub",
                "iceoryx2 pub/sub (loan/send)",
                "iceoryx2",
                tp,
                "ice",
                size,
            ));
            cases.push(new_case(
                "rs_copy",
                "shm-channel write/read_into",
                "rust",
                tp,
                "copy",
                size,
            ));
            // The C twins (c/loops.c, same library, same program) at the sizes of the goals.
            let paired = size == 64 || size == FRAME;
            if paired {
                cases.push(new_case(
                    "c_copy",
                    "C loop, write/read",
                    "c",
                    tp,
                    "ccopy",
                    size,
                ));
            }
            cases.push(new_case(
                "rs_zerocopy",
                "shm-channel reserve/peek",
                "rust",
                tp,
                "zerocopy",
                size,
            ));
            if paired {
                cases.push(new_case(
                    "c_zerocopy",
                    "C loop, reserve/peek",
                    "c",
                    tp,
                    "czerocopy",
                    size,
                ));
            }
            if size == FRAME {
                cases.push(new_case(
                    "rs_zerocopy_poll",
                    "shm-channel reserve/peek, consumer busy-polls",
                    "rust",
                    tp,
                    "zerocopypoll",
                    size,
                ));
            }
            if size == 64 && cross {
                // Which side is slower: one side's loop in Rust, the other's in C.
                cases.push(new_case(
                    "rc_zerocopy",
                    "Rust producer, C consumer, reserve/peek",
                    "cross",
                    tp,
                    "rczerocopy",
                    size,
                ));
                cases.push(new_case(
                    "c_zerocopy_ind",
                    "C loop, reserve/peek, calls through pointers",
                    "cross",
                    tp,
                    "czerocopyind",
                    size,
                ));
                cases.push(new_case(
                    "rc_zerocopy_raw",
                    "Rust producer over the raw FFI, C consumer",
                    "cross",
                    tp,
                    "rrczerocopy",
                    size,
                ));
                cases.push(new_case(
                    "cr_zerocopy",
                    "C producer, Rust consumer, reserve/peek",
                    "cross",
                    tp,
                    "crzerocopy",
                    size,
                ));
            }
            if size == 64 {
                cases.push(new_case(
                    "rs_batch",
                    "shm-channel write_batch/read_batch",
                    "rust",
                    tp,
                    "batch",
                    size,
                ));
                cases.push(new_case(
                    "c_batch",
                    "C loop, write_batch/read_batch",
                    "c",
                    tp,
                    "cbatch",
                    size,
                ));
            }
            if let Some(only) = &only {
                cases.retain(|c| only.iter().any(|o| o == c.id));
            }
            if cases.is_empty() {
                continue;
            }
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
        if let Some(only) = &only {
            cases.retain(|c| only.iter().any(|o| o == c.id));
        }
        measure(&ctx, &mut cases, reps, rep_s);
        all.extend(cases);
    }
    let load_end = loadavg();

    // Issue 14's two goals, as same-run, run-by-run ratios.
    let mut pairs: Vec<Paired> = Vec::new();
    for size in [64, FRAME] {
        for (what, a, b) in [
            ("Rust vs C, write/read", "rs_copy", "c_copy"),
            ("Rust vs C, reserve/peek", "rs_zerocopy", "c_zerocopy"),
            ("Rust vs C, write_batch/read_batch", "rs_batch", "c_batch"),
        ] {
            pairs.extend(Paired::new(&all, what, size, a, b, Some(0.95)));
        }
    }
    // The cross pairs (--cross): each against the C pair, same rounds (information).
    for (what, a) in [
        (
            "C, library called through pointers vs C, reserve/peek",
            "c_zerocopy_ind",
        ),
        (
            "Rust producer, raw FFI + C consumer vs C, reserve/peek",
            "rc_zerocopy_raw",
        ),
        (
            "Rust producer + C consumer vs C, reserve/peek",
            "rc_zerocopy",
        ),
        (
            "C producer + Rust consumer vs C, reserve/peek",
            "cr_zerocopy",
        ),
    ] {
        pairs.extend(Paired::new(&all, what, 64, a, "c_zerocopy", None));
    }
    pairs.extend(Paired::new(
        &all,
        "1080p, Rust zero-copy vs iceoryx2, both busy-polling",
        FRAME,
        "rs_zerocopy_poll",
        "ice_pubsub",
        Some(1.0),
    ));
    pairs.extend(Paired::new(
        &all,
        "1080p, Rust zero-copy (default spin, then sleep) vs iceoryx2",
        FRAME,
        "rs_zerocopy",
        "ice_pubsub",
        None,
    ));
    pairs.extend(Paired::new(
        &all,
        "1080p, C zero-copy vs iceoryx2",
        FRAME,
        "c_zerocopy",
        "ice_pubsub",
        None,
    ));
    pairs.extend(Paired::new(
        &all,
        "1080p, Rust zero-copy (busy-polling) vs the L3-resident copy",
        FRAME,
        "rs_zerocopy_poll",
        "memcpy",
        None,
    ));
    pairs.extend(Paired::new(
        &all,
        "1080p, iceoryx2 vs the L3-resident copy",
        FRAME,
        "ice_pubsub",
        "memcpy",
        None,
    ));
    pairs.extend(Paired::new(
        &all,
        "1080p, copy to a line + 8 B vs the L3-resident copy",
        FRAME,
        "memcpy_dst8",
        "memcpy",
        None,
    ));

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
    if !pairs.is_empty() {
        println!(
            "\nIssue 14 goals, same run, ratio per round: median [min-max] over {reps} rounds (CPU: {}; load average {load_start:.2} -> {load_end:.2}; ring {})",
            cpu_model(),
            match CAPACITY.load(Ordering::Relaxed) {
                0 => "4 MiB, 16 MiB for 1080p".to_string(),
                c => format!("{c} B"),
            }
        );
        for p in &pairs {
            let find = |id: &str| all.iter().find(|c| c.id == id && c.size == p.size).unwrap();
            let verdict = match p.met() {
                Some(true) => format!("  goal >= {:.2}x: met", p.goal.unwrap()),
                Some(false) => format!("  goal >= {:.2}x: MISSED", p.goal.unwrap()),
                None => String::new(),
            };
            println!(
                "  {:<52} {:>9} B  {:.3}x [{:.3}-{:.3}]{verdict}\n      {} {}; {} {}\n      producer CPU per message, {} over {}: {:.3}x [{:.3}-{:.3}] ({:.0} ns vs {:.0} ns)",
                p.what,
                p.size,
                median(&p.ratios),
                p.lo(),
                p.hi(),
                p.a,
                spread_str(find(&p.a)),
                p.b,
                spread_str(find(&p.b)),
                p.b,
                p.a,
                median(&p.cpu_ratios),
                p.cpu_ratios.iter().cloned().fold(f64::INFINITY, f64::min),
                p.cpu_ratios.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                median(&find(&p.b).cpu),
                median(&find(&p.a).cpu),
            );
        }
    }
    // Where each side's time goes (issue 14: which side is slower, and who waits for whom).
    let diag: Vec<&Case> = all
        .iter()
        .filter(|c| c.kind == Kind::Throughput && c.error.is_none() && !c.ccpu.is_empty())
        .filter(|c| c.group == "rust" || c.group == "c" || c.group == "cross")
        .collect();
    if !diag.is_empty() {
        println!(
            "\nPer message, median over {reps} runs: CPU time of each side (ns), calls that found \
             the ring full (producer waited) / empty (consumer waited), futex sleeps (both)"
        );
        println!(
            "  {:<14} {:>9}  {:>8} {:>8}  {:>7} {:>7} {:>8}",
            "case", "size", "prod ns", "cons ns", "full", "empty", "sleeps"
        );
        for c in diag {
            println!(
                "  {:<14} {:>7} B  {:>8.1} {:>8.1}  {:>7.4} {:>7.4} {:>8.5}",
                c.id,
                c.size,
                median(&c.cpu),
                median(&c.ccpu),
                median(&c.full),
                median(&c.empty),
                median(&c.sleeps)
            );
        }
    }
    if let (Some(path), false) = (&goals_md, pairs.is_empty()) {
        std::fs::write(
            path,
            goals_markdown(&all, &pairs, reps, load_start, load_end),
        )
        .expect("write the goals file");
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
                out.push_str(&format!(
                    "\"msgs_per_s\": {{\"runs\": {}}}, \"producer_cpu_ns_per_msg\": {{\"runs\": {}}}, \"consumer_cpu_ns_per_msg\": {{\"runs\": {}}}, \"full_per_msg\": {{\"runs\": {}}}, \"empty_per_msg\": {{\"runs\": {}}}, \"sleeps_per_msg\": {{\"runs\": {}}}",
                    jarr(&c.runs),
                    jarr(&c.cpu),
                    jarr(&c.ccpu),
                    jarr(&c.full),
                    jarr(&c.empty),
                    jarr(&c.sleeps)
                ));
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
        out.push_str("\n  ],\n  \"pairs\": [");
        for (k, p) in pairs.iter().enumerate() {
            out.push_str(if k > 0 { ",\n    " } else { "\n    " });
            out.push_str(&format!(
                "{{\"what\": {}, \"size\": {}, \"a\": {}, \"b\": {}, \"ratios\": {}, \"median\": {:.4}, \"min\": {:.4}, \"max\": {:.4}, \"goal\": {}, \"producer_cpu_ratios\": {}}}",
                jstr(&p.what),
                p.size,
                jstr(&p.a),
                jstr(&p.b),
                jarr(&p.ratios),
                median(&p.ratios),
                p.lo(),
                p.hi(),
                p.goal.map_or("null".to_string(), |g| format!("{g}")),
                jarr(&p.cpu_ratios)
            ));
        }
        out.push_str("\n  ]\n}\n");
        std::fs::write(&path, out).expect("write json");
    }
    if all.iter().any(|c| c.error.is_some()) {
        std::process::exit(1);
    }
}
