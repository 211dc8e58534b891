//! Producer and consumer in different processes.
//!
//! The test binary runs itself as the child: `child_entry` is an ignored test (so a normal
//! run neither runs nor counts it), which the parent runs with `--ignored --exact` and
//! `SHM_RS_CHILD` naming the scenario. A child that is to die prints a line when it has
//! reached the point of death and then waits on its stdin; the parent SIGKILLs it there and
//! checks that it was the kill that ended it. "Blocked" is established by the sleep counters
//! of the channel's stats, never by a fixed sleep.

mod common;

use std::env;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use shm_channel::{Consumer, Error, Observer, OpenOptions, Producer, Stats};

const CHILD_ENV: &str = "SHM_RS_CHILD";
const NAME_ENV: &str = "SHM_RS_CHILD_NAME";
const COUNT_ENV: &str = "SHM_RS_CHILD_COUNT";
/// The line a child prints when it has reached the point where the parent kills it.
const READY: &str = "SHM_RS_CHILD_READY";
/// Exit status of a child whose stdin closed before it was killed (the parent went away).
const ORPHANED: i32 = 3;

/// A child process playing one scenario of `child_entry`.
struct ChildProc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn spawn_child(scenario: &str, name: &str, count: u64) -> ChildProc {
    let mut child = Command::new(env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, scenario)
        .env(NAME_ENV, name)
        .env(COUNT_ENV, count.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    ChildProc { child, lines }
}

impl ChildProc {
    /// Waits until the child reports that it reached its point of death.
    fn wait_ready(&mut self) {
        let end = Instant::now() + LONG;
        let mut seen = Vec::new(); // the test harness's own output, for the message
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.ends_with(READY) => return, // after "test child_entry ... "
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.child.kill().ok();
                    panic!("the child did not get ready within {LONG:?}; it printed {seen:?}");
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    panic!("the child ended ({status}) before it got ready; it printed {seen:?}");
                }
            }
        }
    }

    /// SIGKILLs the child (which must still be alive, waiting to be killed) and checks
    /// that the kill is what ended it.
    fn kill(mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the child ended before the kill"
        );
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    }

    /// Waits for the child to end by itself, killing it if it outlives `limit`.
    fn wait(mut self, limit: Duration) -> ExitStatus {
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if t.elapsed() > limit {
                self.child.kill().ok();
                panic!("child still running after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Polls the channel's stats until `cond` holds.
fn wait_for(name: &str, what: &str, cond: impl Fn(&Stats) -> bool) {
    wait_until(what, || {
        Observer::open(name).is_ok_and(|obs| cond(&obs.stat().unwrap()))
    });
}

/// In a child about to be killed: tells the parent, then waits on stdin until the parent's
/// SIGKILL (stdin ends only if the parent went away).
fn ready_to_die() -> ! {
    println!("{READY}");
    let _ = std::io::stdin().read(&mut [0u8; 1]);
    std::process::exit(ORPHANED); // no destructors run: no close
}

/// The child's side of each scenario. Panics (a failed exit status) on any surprise.
#[test]
#[ignore = "the child half of the tests below, which run it with --ignored --exact"]
fn child_entry() {
    let scenario = env::var(CHILD_ENV)
        .expect("child_entry only runs as the child of a cross-process test (SHM_RS_CHILD)");
    let name = env::var(NAME_ENV).unwrap();
    let count: u64 = env::var(COUNT_ENV).unwrap().parse().unwrap();
    match scenario.as_str() {
        "produce" => {
            let mut tx = Producer::open(&name).unwrap();
            for i in 0..count {
                tx.write(&message(i, 1000)).unwrap();
            }
            // Dropping closes: end-of-stream.
        }
        "consume" => {
            let mut rx = Consumer::open(&name).unwrap();
            rx.set_timeout(Some(LONG));
            let mut n = 0;
            for msg in &mut rx {
                assert_eq!(msg.unwrap(), message(n, 1000), "message {n}");
                n += 1;
            }
            assert_eq!(n, count);
        }
        "produce-then-die" => {
            let mut tx = Producer::open(&name).unwrap();
            for i in 0..count {
                tx.write(&message(i, 1000)).unwrap();
            }
            // A half-written message, never committed, then death without closing.
            let mut r = tx.reserve(64).unwrap();
            r.fill(0xEE);
            ready_to_die();
        }
        "consume-then-die" => {
            let mut rx = Consumer::open(&name).unwrap();
            let mut buf = Vec::new();
            for i in 0..count {
                rx.read(&mut buf).unwrap();
                assert_eq!(buf, message(i, 1000));
            }
            let peeked = rx.peek().unwrap(); // looked at, never released
            assert_eq!(&*peeked, message(count, 1000));
            ready_to_die();
        }
        "write-when-read-sleeps" => {
            let mut tx = Producer::open(&name).unwrap();
            // Wait (by state) until the reader sleeps on the futex, then wake it.
            wait_until("the reader to sleep", || {
                tx.stat().unwrap().consumer_sleeps > 0
            });
            tx.write(b"worth the wait").unwrap();
        }
        "hold-producer" => {
            let _tx = Producer::open(&name).unwrap();
            ready_to_die();
        }
        other => panic!("unknown scenario {other}"),
    }
}

#[test]
fn a_child_producer_streams_to_this_process_then_ends_the_stream() {
    let name = unique_name("xp-produce");
    let _c = Cleanup(name.clone());
    // A small ring: the two processes take turns waiting for each other.
    let mut rx = OpenOptions::new()
        .create_new(true)
        .capacity(16 << 10)
        .consumer(&name)
        .unwrap();
    let child = spawn_child("produce", &name, 50_000);
    rx.set_timeout(Some(LONG));
    let mut n = 0;
    let mut buf = Vec::new();
    loop {
        match rx.read(&mut buf) {
            Ok(_) => {
                assert_eq!(buf, message(n, 1000), "message {n}");
                n += 1;
            }
            Err(Error::EndOfStream) => break,
            Err(e) => panic!("after {n} messages: {e}"),
        }
    }
    assert_eq!(n, 50_000);
    assert!(child.wait(LONG).success());
    let st = rx.stat().unwrap();
    assert!(
        st.full_events > 0,
        "the producer had to wait: backpressure worked"
    );
    drop(rx);
    assert!(!segment_exists(&name), "the finished stream was removed");
}

#[test]
fn this_process_produces_for_a_child_consumer() {
    let name = unique_name("xp-consume");
    let _c = Cleanup(name.clone());
    let mut tx = OpenOptions::new()
        .create_new(true)
        .capacity(16 << 10)
        .producer(&name)
        .unwrap();
    let child = spawn_child("consume", &name, 50_000);
    tx.set_timeout(Some(LONG));
    for i in 0..50_000 {
        tx.write(&message(i, 1000)).unwrap();
    }
    drop(tx);
    assert!(child.wait(LONG).success());
    assert!(!segment_exists(&name));
}

#[test]
fn a_dead_producer_leaves_its_committed_messages_and_never_a_partial_one() {
    let name = unique_name("xp-producer-dies");
    let _c = Cleanup(name.clone());
    let mut rx = OpenOptions::new()
        .create_new(true)
        .capacity(1 << 20)
        .consumer(&name)
        .unwrap();
    let mut child = spawn_child("produce-then-die", &name, 100);
    child.wait_ready(); // 100 messages committed, a 101st reserved and filled
    rx.set_timeout(Some(Duration::ZERO));
    let mut buf = Vec::new();
    for n in 0..100 {
        rx.read(&mut buf).unwrap();
        assert_eq!(buf, message(n, 1000), "message {n}");
    }
    // Now block on the empty ring (the partial message is invisible), and kill the
    // producer while the reader sleeps: the reader must learn of the death.
    let sleeps = rx.stat().unwrap().consumer_sleeps;
    let reader = std::thread::spawn(move || {
        rx.set_timeout(Some(LONG)); // a failure ends in TimedOut, not a hang
        let end = rx.read(&mut buf).map(|_| buf.clone());
        (rx, end)
    });
    wait_for(&name, "the reader to sleep", |st| {
        st.consumer_sleeps > sleeps
    });
    child.kill();
    let (mut rx, end) = reader.join().unwrap();
    assert!(matches!(end, Err(Error::PeerDied)), "{end:?}");
    // It stays that way, also for a caller polling without blocking (never "empty").
    let mut buf = Vec::new();
    rx.set_timeout(Some(Duration::ZERO));
    for _ in 0..3 {
        assert!(matches!(rx.read(&mut buf), Err(Error::PeerDied)));
    }
    let st = rx.stat().unwrap();
    assert!(!st.producer_alive);
    assert_eq!(st.msgs_read, 100);
    // The role is free again: a new producer carries on where the dead one stopped.
    let mut tx = Producer::open(&name).unwrap();
    tx.write(b"next life").unwrap();
    rx.read(&mut buf).unwrap();
    assert_eq!(buf, b"next life");
}

#[test]
fn a_dead_consumer_frees_the_role_and_a_new_one_resumes_after_the_last_release() {
    let name = unique_name("xp-consumer-dies");
    let _c = Cleanup(name.clone());
    let mut tx = OpenOptions::new()
        .create_new(true)
        .capacity(1 << 20)
        .producer(&name)
        .unwrap();
    for i in 0..50 {
        tx.write(&message(i, 1000)).unwrap();
    }
    let mut child = spawn_child("consume-then-die", &name, 20);
    child.wait_ready(); // 20 messages read, the 21st peeked and not released
    assert!(matches!(Consumer::open(&name), Err(Error::Busy)));
    child.kill();
    let mut rx = Consumer::open(&name).unwrap();
    rx.set_timeout(Some(Duration::ZERO));
    let mut buf = Vec::new();
    // Message 20 was peeked but not released by the dead consumer: it comes again.
    for i in 20..50 {
        rx.read(&mut buf).unwrap();
        assert_eq!(buf, message(i, 1000), "message {i}");
    }
    assert!(matches!(rx.read(&mut buf), Err(Error::WouldBlock)));
}

#[test]
fn a_writer_blocked_on_a_full_ring_learns_the_consumer_died() {
    let name = unique_name("xp-full-consumer-dies");
    let _c = Cleanup(name.clone());
    let mut tx = OpenOptions::new()
        .create_new(true)
        .capacity(4096)
        .producer(&name)
        .unwrap();
    tx.set_timeout(Some(Duration::ZERO));
    let mut written = 0;
    while tx.write(&message(written, 1000)).is_ok() {
        written += 1;
    }
    let mut child = spawn_child("consume-then-die", &name, 1);
    child.wait_ready(); // message 0 released, message 1 peeked
                        // Fill what message 0 left, then sleep on the full ring; kill the consumer meanwhile.
    let sleeps = tx.stat().unwrap().producer_sleeps;
    let writer = std::thread::spawn(move || {
        tx.set_timeout(Some(LONG)); // a failure ends in TimedOut, not a hang
        loop {
            if let Err(e) = tx.write(&[0u8; 1000]) {
                return e;
            }
        }
    });
    wait_for(&name, "the writer to sleep", |st| {
        st.producer_sleeps > sleeps
    });
    child.kill();
    let end = writer.join().unwrap();
    assert!(matches!(end, Error::PeerDied), "{end:?}");
}

#[test]
fn a_sleeping_reader_is_woken_by_a_write_from_another_process() {
    let name = unique_name("xp-wake");
    let _c = Cleanup(name.clone());
    let mut rx = OpenOptions::new().create_new(true).consumer(&name).unwrap();
    rx.set_spin(Duration::ZERO).unwrap(); // straight to the futex
    rx.set_timeout(Some(LONG));
    // The child writes once it sees this reader asleep (consumer_sleeps > 0).
    let child = spawn_child("write-when-read-sleeps", &name, 0);
    let mut buf = Vec::new();
    rx.read(&mut buf).unwrap();
    assert_eq!(buf, b"worth the wait");
    assert!(matches!(rx.read(&mut buf), Err(Error::EndOfStream)));
    assert!(child.wait(LONG).success());
    // Read after the child ended: the writer counts its wake call after making it.
    let st = rx.stat().unwrap();
    assert!(st.consumer_sleeps > 0, "the reader slept");
    assert!(
        st.producer_wakes > 0,
        "the writer woke it through the futex"
    );
}

#[test]
fn a_role_held_by_a_live_process_is_busy_until_it_dies() {
    let name = unique_name("xp-busy");
    let _c = Cleanup(name.clone());
    let rx = OpenOptions::new().create_new(true).consumer(&name).unwrap();
    let mut child = spawn_child("hold-producer", &name, 0);
    child.wait_ready();
    assert!(rx.stat().unwrap().producer_alive);
    assert!(matches!(Producer::open(&name), Err(Error::Busy)));
    child.kill(); // SIGKILL: no chance to close
    let tx = Producer::open(&name).unwrap();
    assert_eq!(tx.stat().unwrap().producer_epoch, 2);
    drop((tx, rx));
}
