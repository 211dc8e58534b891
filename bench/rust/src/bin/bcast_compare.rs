//! Issue 10: shm_channel broadcast channels (kind 2, through the raw FFI of shm-channel-sys)
//! against iceoryx2 publish-subscribe (the crates.io crate), 64-byte messages, with 1 and 4
//! subscriber processes, in the same run.
//!
//! ```text
//! bcast_compare [--quick] [--reps N]
//! ```
//!
//! The publisher is this process (pinned to the first allowed CPU); the subscribers are
//! copies of this program (pinned to the second). Every message carries its number and a
//! CLOCK_MONOTONIC stamp; every subscriber checks the numbers.
//! - publish: the publisher sends N messages as fast as it can, never waiting (iceoryx2:
//!   `enable_safe_overflow(true)`, a subscriber buffer of 1024 = the shm_channel depth, the
//!   oldest sample is dropped silently; shm_channel: a lapped subscriber is told how many it
//!   missed). Figures: the publisher's msgs/s and its own CPU time per message, and the
//!   smallest fraction any subscriber received.
//! - latency: one message every 200 us; the subscribers busy-poll (iceoryx2 `receive()`,
//!   shm_channel `shm_channel_read_latest` until `is_new`: the latest-value path) and record
//!   now - stamp; also shm_channel's blocking `shm_channel_recv` (spin, then futex) for
//!   reference. Median and 99th percentile over all subscribers.
//!
//! Each case runs --reps times, interleaved (iceoryx2, shm_channel, ...); ratios are medians
//! of per-round ratios, above 1 = shm_channel better.

use std::env;
use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::prelude::*;
use shm_channel_sys as sys;

const CHILD_ENV: &str = "BCASTCMP_CHILD";
const CPU_ENV: &str = "BCASTCMP_CPU";
const SIZE: usize = 64;
const DEPTH: usize = 1024;
const END: u64 = u64::MAX;

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec the call writes.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as above.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn cpus() -> [usize; 2] {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls stay inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        let v: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect();
        [v[0], *v.get(1).unwrap_or(&v[0])]
    }
}

fn pin(cpu: usize) {
    // SAFETY: as above.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn msg(seq: u64) -> [u8; SIZE] {
    let mut m = [0u8; SIZE];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m[8..16].copy_from_slice(&mono_ns().to_le_bytes());
    m
}

fn parse(m: &[u8]) -> (u64, u64) {
    (
        u64::from_le_bytes(m[..8].try_into().unwrap()),
        u64::from_le_bytes(m[8..16].try_into().unwrap()),
    )
}

fn ice_node() -> Node<ipc::Service> {
    NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .expect("iceoryx2 node")
}

// ---- subscribers (child processes) ----------------------------------------------------------

struct Tally {
    got: u64,
    last: u64,
    lat: Vec<u64>,
    latency: bool,
}

impl Tally {
    fn take(&mut self, seq: u64, t: u64, missed: u64) {
        assert!(seq > self.last, "message {seq} after {}", self.last);
        if missed != u64::MAX {
            assert_eq!(seq, self.last + 1 + missed, "missed count");
        }
        self.last = seq;
        self.got += 1;
        if self.latency {
            self.lat.push(mono_ns().saturating_sub(t));
        }
    }

    fn report(mut self) {
        self.lat.sort_unstable();
        let q = |f: f64| {
            self.lat
                .get(((self.lat.len() as f64) * f) as usize)
                .copied()
                .unwrap_or(0)
        };
        println!("{} {} {}", self.got, q(0.5), q(0.99));
    }
}

fn ready() {
    println!("ready");
    std::io::stdout().flush().unwrap();
}

fn child(a: &[String]) {
    if let Some(c) = env::var(CPU_ENV).ok().and_then(|c| c.parse().ok()) {
        pin(c);
    }
    set_log_level(LogLevel::Error);
    let (transport, mode, name) = (a[0].as_str(), a[1].as_str(), a[2].as_str());
    let mut t = Tally {
        got: 0,
        last: 0,
        lat: vec![],
        latency: mode != "flood",
    };
    if transport == "ice" {
        let node = ice_node();
        let svc = node
            .service_builder(&name.try_into().unwrap())
            .publish_subscribe::<[u8]>()
            .open()
            .expect("iceoryx2 open service");
        let sub = svc
            .subscriber_builder()
            .create()
            .expect("iceoryx2 subscriber");
        ready();
        loop {
            if let Some(s) = sub.receive().expect("receive") {
                let (seq, ts) = parse(s.payload());
                if seq == END {
                    break;
                }
                if seq > t.last {
                    t.take(seq, ts, u64::MAX);
                }
            }
        }
        t.report();
        return;
    }
    let cname = CString::new(name).unwrap();
    let mut ch: *mut sys::shm_channel_t = std::ptr::null_mut();
    // SAFETY: valid out-pointer and NUL-terminated name; NULL config = the segment's.
    let rc = unsafe {
        sys::shm_channel_open_broadcast(
            &mut ch,
            cname.as_ptr(),
            sys::SHM_CHANNEL_SUBSCRIBER,
            0,
            std::ptr::null(),
            0,
        )
    };
    assert_eq!(rc, 0, "subscribe");
    ready();
    let mut buf = [0u8; SIZE];
    let (mut len, mut missed, mut is_new) = (0u64, 0u64, 0i32);
    loop {
        // SAFETY: buf has SIZE bytes; the out-pointers are valid.
        let rc = unsafe {
            if mode == "latest" {
                sys::shm_channel_read_latest(
                    ch,
                    buf.as_mut_ptr().cast(),
                    SIZE as u64,
                    &mut len,
                    &mut is_new,
                    &mut missed,
                )
            } else {
                is_new = 1;
                sys::shm_channel_recv(
                    ch,
                    buf.as_mut_ptr().cast(),
                    SIZE as u64,
                    &mut len,
                    &mut missed,
                    -1,
                )
            }
        };
        if rc == -libc::EPIPE {
            break;
        }
        if mode == "latest" && (rc == -libc::EAGAIN || (rc == 0 && is_new == 0)) {
            // the publisher's state: end-of-stream is seen by a blocking call only
            let mut st: sys::shm_channel_stat_t = unsafe { std::mem::zeroed() };
            // SAFETY: st is a valid stat out-parameter.
            if unsafe { sys::shm_channel_stat(ch, &mut st) } == 0 && st.producer_state == 2 {
                break;
            }
            std::hint::spin_loop();
            continue;
        }
        assert_eq!(rc, 0, "recv");
        let (seq, ts) = parse(&buf);
        t.take(seq, ts, if mode == "latest" { u64::MAX } else { missed });
    }
    // SAFETY: ch is open and closed once.
    unsafe { sys::shm_channel_close(ch) };
    t.report();
}

// ---- the publisher --------------------------------------------------------------------------

struct Run {
    rate: f64,
    cpu_ns: f64,
    min_delivered: f64,
    lat_med: f64,
    lat_p99: f64,
}

impl Run {
    /// One run's figures: `count` messages published in `dt` seconds and `dc` ns of the
    /// publisher's CPU, and what collect() read from the subscribers.
    fn of(count: u64, dt: f64, dc: u64, min_delivered: f64, lat_med: f64, lat_p99: f64) -> Run {
        Run {
            rate: count as f64 / dt,
            cpu_ns: dc as f64 / count as f64,
            min_delivered,
            lat_med,
            lat_p99,
        }
    }
}

fn spawn(args: &[&str], cpu: usize) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut c = Command::new(env::current_exe().unwrap())
        .env(CHILD_ENV, args.join(" "))
        .env(CPU_ENV, cpu.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn subscriber");
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    (c, out)
}

fn collect(
    subs: Vec<(Child, BufReader<std::process::ChildStdout>)>,
    count: u64,
) -> (f64, f64, f64) {
    let (mut min_d, mut med, mut p99) = (1.0f64, 0f64, 0f64);
    for (mut c, mut out) in subs {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let v: Vec<u64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        min_d = min_d.min(v[0] as f64 / count as f64);
        med = med.max(v[1] as f64);
        p99 = p99.max(v[2] as f64);
        assert!(c.wait().unwrap().success());
    }
    (min_d, med, p99)
}

fn pace(period_ns: u64, since: u64) {
    if period_ns > 0 {
        while mono_ns() < since + period_ns {
            std::hint::spin_loop();
        }
    }
}

fn run_ice(n: usize, count: u64, period_ns: u64, cpu: usize, tag: usize) -> Run {
    let name = format!("bcastcmp-{}-{tag}", std::process::id());
    let node = ice_node();
    let svc = node
        .service_builder(&name.as_str().try_into().unwrap())
        .publish_subscribe::<[u8]>()
        .max_publishers(1)
        .max_subscribers(n)
        .max_nodes(n + 1)
        .history_size(0)
        .subscriber_max_buffer_size(DEPTH)
        .subscriber_max_borrowed_samples(1)
        .enable_safe_overflow(true)
        .create()
        .expect("iceoryx2 create service");
    let publisher = svc
        .publisher_builder()
        .initial_max_slice_len(SIZE)
        .create()
        .expect("iceoryx2 publisher");
    let mode = if period_ns > 0 { "latency" } else { "flood" };
    let subs: Vec<_> = (0..n).map(|_| spawn(&["ice", mode, &name], cpu)).collect();
    publisher.update_connections().expect("connections");
    let send = |seq: u64| {
        let s = publisher
            .loan_slice_uninit(SIZE)
            .expect("loan")
            .write_from_slice(&msg(seq));
        s.send().expect("send");
    };
    let (t0, c0) = (Instant::now(), cpu_ns());
    for seq in 1..=count {
        let t = mono_ns();
        send(seq);
        pace(period_ns, t);
    }
    let (dt, dc) = (t0.elapsed().as_secs_f64(), cpu_ns() - c0);
    // the end marker can be dropped as well: repeat it until every subscriber has gone
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (d, med, p99) = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let r = collect(subs, count);
            stop.store(true, std::sync::atomic::Ordering::Release);
            r
        });
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            send(END);
            std::thread::sleep(Duration::from_millis(1));
        }
        h.join().unwrap()
    });
    Run::of(count, dt, dc, d, med, p99)
}

fn run_shm(n: usize, count: u64, period_ns: u64, cpu: usize, tag: usize, mode: &str) -> Run {
    let name = format!("bcastcmp-{}-{tag}", std::process::id());
    let cname = CString::new(name.clone()).unwrap();
    let cfg = sys::shm_channel_broadcast_config_t {
        max_payload: SIZE as u64,
        depth: DEPTH as u32,
        max_subscribers: 8,
        type_tag: std::ptr::null(),
        reserved: [0; 4],
    };
    let mut ch: *mut sys::shm_channel_t = std::ptr::null_mut();
    // SAFETY: valid out-pointer, name and config.
    let rc = unsafe {
        sys::shm_channel_open_broadcast(
            &mut ch,
            cname.as_ptr(),
            sys::SHM_CHANNEL_PUBLISHER,
            sys::SHM_CHANNEL_CREATE,
            &cfg,
            0o600,
        )
    };
    assert_eq!(rc, 0, "publisher");
    let subs: Vec<_> = (0..n).map(|_| spawn(&["shm", mode, &name], cpu)).collect();
    let (t0, c0) = (Instant::now(), cpu_ns());
    for seq in 1..=count {
        let t = mono_ns();
        let m = msg(seq);
        // SAFETY: m has SIZE bytes.
        let rc = unsafe { sys::shm_channel_write(ch, m.as_ptr().cast(), SIZE as u64, 0) };
        assert_eq!(rc, 0, "write");
        pace(period_ns, t);
    }
    let (dt, dc) = (t0.elapsed().as_secs_f64(), cpu_ns() - c0);
    // SAFETY: closed once: end-of-stream for the subscribers.
    unsafe { sys::shm_channel_close(ch) };
    let (d, med, p99) = collect(subs, count);
    Run::of(count, dt, dc, d, med, p99)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if let Ok(a) = env::var(CHILD_ENV) {
        let args: Vec<String> = a.split(' ').map(str::to_string).collect();
        child(&args);
        return;
    }
    set_log_level(LogLevel::Error);
    let argv: Vec<String> = env::args().skip(1).collect();
    let quick = argv.iter().any(|a| a == "--quick");
    let reps: usize = argv
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 3 } else { 5 });
    let [a, b] = cpus();
    pin(a);
    let (n_pub, n_lat) = if quick {
        (200_000, 1000)
    } else {
        (2_000_000, 5000)
    };
    let mut tag = 0;
    println!(
        "Rust: shm_channel broadcast (FFI) vs iceoryx2 publish-subscribe, 64 B, {reps} rounds"
    );
    println!(
        "{:34} {:>12} {:>12} {:>7}  notes",
        "case", "iceoryx2", "shm_channel", "ratio"
    );
    for n in [1usize, 4] {
        let (mut ice, mut shm) = (vec![], vec![]);
        for _ in 0..reps {
            tag += 1;
            ice.push(run_ice(n, n_pub, 0, b, tag));
            tag += 1;
            shm.push(run_shm(n, n_pub, 0, b, tag, "flood"));
        }
        let r = median(ice.iter().zip(&shm).map(|(i, s)| s.rate / i.rate).collect());
        println!(
            "{:34} {:>12.4} {:>12.4} {:>6.2}x  min delivered: ice {:.3}, shm {:.3}",
            format!("publish msgs/s, {n} sub (M/s)"),
            median(ice.iter().map(|x| x.rate / 1e6).collect()),
            median(shm.iter().map(|x| x.rate / 1e6).collect()),
            r,
            ice.iter().map(|x| x.min_delivered).fold(1.0, f64::min),
            shm.iter().map(|x| x.min_delivered).fold(1.0, f64::min)
        );
        let r = median(
            ice.iter()
                .zip(&shm)
                .map(|(i, s)| i.cpu_ns / s.cpu_ns)
                .collect(),
        );
        println!(
            "{:34} {:>12.1} {:>12.1} {:>6.2}x  the publisher thread's CPU time",
            format!("publish CPU ns/msg, {n} sub"),
            median(ice.iter().map(|x| x.cpu_ns).collect()),
            median(shm.iter().map(|x| x.cpu_ns).collect()),
            r
        );
        let (mut ice, mut lat, mut blk) = (vec![], vec![], vec![]);
        for _ in 0..reps {
            tag += 1;
            ice.push(run_ice(n, n_lat, 200_000, b, tag));
            tag += 1;
            lat.push(run_shm(n, n_lat, 200_000, b, tag, "latest"));
            tag += 1;
            blk.push(run_shm(n, n_lat, 200_000, b, tag, "block"));
        }
        let r = median(
            ice.iter()
                .zip(&lat)
                .map(|(i, s)| i.lat_med / s.lat_med)
                .collect(),
        );
        println!("{:34} {:>12.0} {:>12.0} {:>6.2}x  p99 ice {:.0} ns, shm {:.0} ns; shm blocking recv: median {:.0} ns, p99 {:.0} ns",
                 format!("one-way latency ns, {n} sub (poll)"),
                 median(ice.iter().map(|x| x.lat_med).collect()),
                 median(lat.iter().map(|x| x.lat_med).collect()), r,
                 median(ice.iter().map(|x| x.lat_p99).collect()),
                 median(lat.iter().map(|x| x.lat_p99).collect()),
                 median(blk.iter().map(|x| x.lat_med).collect()),
                 median(blk.iter().map(|x| x.lat_p99).collect()));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at end: {}",
        load.split_whitespace().next().unwrap_or("?")
    );
}
