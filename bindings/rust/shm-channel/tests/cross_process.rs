//! Producer and consumer in different processes.
//!
//! The test binary runs itself as the child: `child_entry` does nothing in a normal run,
//! and plays the scenario named by `SHM_RS_CHILD` when the parent starts it that way.

mod common;

use std::env;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use shm_channel::{Consumer, Error, Observer, OpenOptions, Producer};

const CHILD_ENV: &str = "SHM_RS_CHILD";
const NAME_ENV: &str = "SHM_RS_CHILD_NAME";
const COUNT_ENV: &str = "SHM_RS_CHILD_COUNT";
/// Exit status of a child that "dies": it exits without running any destructor.
const DIED: i32 = 3;

fn spawn_child(scenario: &str, name: &str, count: u64) -> Child {
    Command::new(env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scenario)
        .env(NAME_ENV, name)
        .env(COUNT_ENV, count.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for the child, killing it if it outlives `limit`.
fn wait_child(mut child: Child, limit: Duration) -> ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if t.elapsed() > limit {
            child.kill().ok();
            panic!("child still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls the channel until `cond` holds for its stats.
fn wait_for(name: &str, what: &str, cond: impl Fn(&shm_channel::Stats) -> bool) {
    let t = Instant::now();
    while t.elapsed() < LONG {
        if let Ok(obs) = Observer::open(name) {
            if cond(&obs.stat().unwrap()) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("timed out waiting for {what}");
}

/// The child's side of each scenario. Panics (a failed exit status) on any surprise.
#[test]
fn child_entry() {
    let Ok(scenario) = env::var(CHILD_ENV) else {
        return; // a normal test run
    };
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
            std::process::exit(DIED); // no destructors run: no close
        }
        "consume-then-die" => {
            let mut rx = Consumer::open(&name).unwrap();
            let mut buf = Vec::new();
            for i in 0..count {
                rx.read(&mut buf).unwrap();
                assert_eq!(buf, message(i, 1000));
            }
            let _peeked = rx.peek().unwrap(); // looked at, never released
            std::process::exit(DIED); // no destructors run: no close
        }
        "write-late" => {
            let mut tx = Producer::open(&name).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            tx.write(b"worth the wait").unwrap();
        }
        "hold-producer" => {
            let _tx = Producer::open(&name).unwrap();
            std::thread::sleep(LONG); // until the parent kills us
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
    assert!(wait_child(child, LONG).success());
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
    assert!(wait_child(child, LONG).success());
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
    let child = spawn_child("produce-then-die", &name, 100);
    assert_eq!(wait_child(child, LONG).code(), Some(DIED));
    rx.set_timeout(Some(LONG)); // must not hang: the producer's death is detected
    let mut n = 0;
    let mut buf = Vec::new();
    let end = loop {
        match rx.read(&mut buf) {
            Ok(_) => {
                assert_eq!(buf, message(n, 1000), "message {n}");
                n += 1;
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(end, Error::PeerDied), "{end:?}");
    assert_eq!(n, 100);
    // It stays that way, also for a caller polling without blocking (never "empty").
    rx.set_timeout(Some(Duration::ZERO));
    for _ in 0..3 {
        assert!(matches!(rx.read(&mut buf), Err(Error::PeerDied)));
    }
    let st = rx.stat().unwrap();
    assert!(!st.producer_alive);
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
    let child = spawn_child("consume-then-die", &name, 20);
    assert_eq!(wait_child(child, LONG).code(), Some(DIED));
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
    let child = spawn_child("consume-then-die", &name, 1);
    assert_eq!(wait_child(child, LONG).code(), Some(DIED));
    // Room for one more record was released; fill it, then wait on the full ring.
    tx.set_timeout(Some(LONG));
    let t = Instant::now();
    let end = loop {
        match tx.write(&[0u8; 1000]) {
            Ok(()) => continue,
            Err(e) => break e,
        }
    };
    assert!(matches!(end, Error::PeerDied), "{end:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "death noticed promptly"
    );
}

#[test]
fn a_sleeping_reader_is_woken_by_a_write_from_another_process() {
    let name = unique_name("xp-wake");
    let _c = Cleanup(name.clone());
    let mut rx = OpenOptions::new().create_new(true).consumer(&name).unwrap();
    rx.set_spin(Duration::ZERO).unwrap(); // straight to the futex
    rx.set_timeout(Some(LONG));
    let child = spawn_child("write-late", &name, 0);
    let t = Instant::now();
    let mut buf = Vec::new();
    rx.read(&mut buf).unwrap();
    assert_eq!(buf, b"worth the wait");
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert!(rx.stat().unwrap().consumer_sleeps > 0, "the reader slept");
    assert!(matches!(rx.read(&mut buf), Err(Error::EndOfStream)));
    assert!(wait_child(child, LONG).success());
}

#[test]
fn a_role_held_by_a_live_process_is_busy_until_it_dies() {
    let name = unique_name("xp-busy");
    let _c = Cleanup(name.clone());
    let rx = OpenOptions::new().create_new(true).consumer(&name).unwrap();
    let mut child = spawn_child("hold-producer", &name, 0);
    wait_for(&name, "the child's producer", |st| st.producer_alive);
    assert!(matches!(Producer::open(&name), Err(Error::Busy)));
    child.kill().unwrap(); // SIGKILL: no chance to close
    child.wait().unwrap();
    let tx = Producer::open(&name).unwrap();
    assert_eq!(tx.stat().unwrap().producer_epoch, 2);
    drop((tx, rx));
}
