//! Topics (broadcast channels): a publisher in a child process and subscribers here, or both
//! here where the order of events must be exact.
//!
//! The test binary runs itself as the child: `bcast_child` is an ignored test that the parent
//! runs with `--ignored --exact` and `SHM_RS_BCAST_CHILD` naming the scenario. States (the
//! subscriber has joined, is asleep, the publisher has published n) are established from the
//! topic's counters, never by a fixed sleep.

mod common;

use std::env;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use shm_channel::{Error, PeerState, Pod, Publisher, Subscriber, TopicOptions};

const CHILD_ENV: &str = "SHM_RS_BCAST_CHILD";
const NAME_ENV: &str = "SHM_RS_BCAST_NAME";
const COUNT_ENV: &str = "SHM_RS_BCAST_COUNT";

fn spawn(scenario: &str, name: &str, count: u64) -> Child {
    Command::new(env::current_exe().unwrap())
        .args(["--ignored", "--exact", "bcast_child", "--test-threads=1"])
        .env(CHILD_ENV, scenario)
        .env(NAME_ENV, name)
        .env(COUNT_ENV, count.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for the child to end by itself and checks it succeeded.
fn finish(mut child: Child) {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "child failed: {status}");
            return;
        }
        if t.elapsed() > LONG {
            child.kill().ok();
            panic!("child still running after {LONG:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// SIGKILLs a child that is waiting to be killed, and checks the kill is what ended it.
fn kill(mut child: Child) {
    assert!(child.try_wait().unwrap().is_none(), "the child ended early");
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
}

/// Message `i` of the byte scenarios (`message` from common: varied lengths, numbered).
const MAX: usize = 256;

fn topic(depth: u32) -> TopicOptions {
    let mut o = TopicOptions::new();
    o.create(true).depth(depth).max_payload(MAX);
    o
}

/// The publisher's side of each scenario.
#[test]
#[ignore = "the child half of the tests below, which run it with --ignored --exact"]
fn bcast_child() {
    let scenario =
        env::var(CHILD_ENV).expect("bcast_child only runs as the child of a broadcast test");
    let name = env::var(NAME_ENV).unwrap();
    let count: u64 = env::var(COUNT_ENV).unwrap().parse().unwrap();
    match scenario.as_str() {
        // Waits for one subscriber, publishes `count` byte messages as fast as it can into a
        // depth-8 topic, and closes.
        "lap" => {
            let mut tx: Publisher = topic(8).publisher(&name).unwrap();
            wait_until("a subscriber", || tx.subscribers().unwrap() == 1);
            for i in 0..count {
                tx.publish(&message(i, MAX)).unwrap();
            }
        }
        // Waits until the subscriber sleeps waiting, then publishes `count` f64 values and
        // closes: end-of-stream.
        "f64-to-sleeper" => {
            let mut tx = Publisher::<f64>::create(&name).unwrap();
            wait_until("the subscriber to sleep", || {
                tx.stat().unwrap().sleepers == 1
            });
            for i in 0..count {
                tx.publish(&(i as f64 * 0.5)).unwrap();
            }
        }
        // Publishes `count` messages, then dies without closing (the parent's SIGKILL).
        "publish-then-die" => {
            let mut tx: Publisher = topic(8).publisher(&name).unwrap();
            for i in 0..count {
                tx.publish(&message(i, MAX)).unwrap();
            }
            let _ = std::io::stdin().read(&mut [0u8; 1]);
            std::process::exit(3); // orphaned: no close
        }
        other => panic!("unknown scenario {other}"),
    }
}

/// The messages held by the topic `name` once `pub_seq` reaches `n` (opened as a probe
/// subscriber, which is left at once).
fn wait_published(name: &str, n: u64) {
    wait_until("the publisher to publish", || {
        Subscriber::<[u8]>::open(name).is_ok_and(|s| s.stat().unwrap().pub_seq == n)
    });
}

#[test]
fn a_lapped_subscriber_skips_to_the_oldest_held_and_counts_exactly_what_it_missed() {
    let name = unique_name("bc-lap");
    let _c = Cleanup(name.clone());
    let mut rx: Subscriber = topic(8).subscriber(&name).unwrap();
    let child = spawn("lap", &name, 100);
    finish(child); // published 100 into 8 slots and closed, before we read one
                   // Joined before the first message: every one of the 100 is delivered or missed.
    let first = rx.next().unwrap();
    assert_eq!((first.value, first.missed), (message(92, MAX), 92));
    for i in 93..100 {
        let s = rx.next().unwrap();
        assert_eq!((s.value, s.missed), (message(i, MAX), 0), "message {i}");
    }
    assert!(matches!(rx.next(), Err(Error::EndOfStream)));
    let c = rx.counters().unwrap();
    assert_eq!((c.delivered, c.missed, c.last_missed), (8, 92, 0));
}

#[test]
fn a_late_joiner_starts_at_the_newest_or_the_oldest_held_and_sees_the_publisher_die() {
    let name = unique_name("bc-late");
    let _c = Cleanup(name.clone());
    let child = spawn("publish-then-die", &name, 20);
    wait_published(&name, 20);
    let mut newest: Subscriber = Subscriber::open(&name).unwrap();
    let mut oldest: Subscriber = TopicOptions::new()
        .from_oldest(true)
        .subscriber(&name)
        .unwrap();
    // The newest at once, nothing missed: its counts start where it joined.
    let s = newest.recv(Duration::ZERO).unwrap();
    assert_eq!((s.value, s.missed), (message(19, MAX), 0));
    // History: the 8 held, 12..19.
    let got: Vec<Vec<u8>> = (0..8).map(|_| oldest.next().unwrap().value).collect();
    let want: Vec<Vec<u8>> = (12..20).map(|i| message(i, MAX)).collect();
    assert_eq!(got, want);
    // Nothing new while the publisher lives...
    assert!(matches!(
        newest.recv(Duration::ZERO),
        Err(Error::WouldBlock)
    ));
    kill(child);
    // ...and its death is seen by both, after everything it published.
    assert!(matches!(newest.recv(LONG), Err(Error::PeerDied)));
    oldest.set_timeout(Some(LONG));
    assert!(matches!(oldest.next(), Err(Error::PeerDied)));
    let st = oldest.stat().unwrap();
    assert_eq!(
        (st.publisher_state, st.publisher_alive),
        (PeerState::Attached, false)
    );
    // A new publisher takes over and continues the numbering; the readers go on.
    let mut tx: Publisher = Publisher::open(&name).unwrap();
    tx.publish(b"after").unwrap();
    assert_eq!(newest.recv(LONG).unwrap().value, b"after");
    assert_eq!(tx.stat().unwrap().pub_seq, 21);
}

#[test]
fn a_blocked_subscriber_wakes_for_each_value_and_ends_at_end_of_stream() {
    let name = unique_name("bc-eos");
    let _c = Cleanup(name.clone());
    let mut rx = Subscriber::<f64>::create(&name).unwrap();
    let child = spawn("f64-to-sleeper", &name, 5);
    rx.set_spin(Duration::ZERO).unwrap(); // sleep at once: the child waits for that
    rx.set_timeout(Some(LONG));
    let values: Vec<f64> = rx.messages().map(|s| s.unwrap().value).collect();
    // The first value woke it; the others may have been lapped (depth 8 > 5: none was).
    assert_eq!(values, [0.0, 0.5, 1.0, 1.5, 2.0]);
    assert!(matches!(rx.next(), Err(Error::EndOfStream)));
    assert!(rx.counters().unwrap().sleeps >= 1);
    finish(child);
}

#[test]
fn latest_says_whether_the_value_is_new_and_how_many_it_skipped() {
    let name = unique_name("bc-latest");
    let _c = Cleanup(name.clone());
    let mut tx = Publisher::<i64>::create(&name).unwrap();
    let mut rx = Subscriber::<i64>::open(&name).unwrap();
    assert_eq!(rx.latest().unwrap(), None); // nothing published yet
    tx.publish(&-5).unwrap();
    let l = rx.latest().unwrap().unwrap();
    assert_eq!((l.value, l.is_new, l.missed), (-5, true, 0));
    let l = rx.latest().unwrap().unwrap();
    assert_eq!((l.value, l.is_new, l.missed), (-5, false, 0));
    for v in 1..=3 {
        tx.publish(&v).unwrap();
    }
    let l = rx.latest().unwrap().unwrap();
    assert_eq!((l.value, l.is_new, l.missed), (3, true, 2));
    // In-order reading continues after the latest.
    assert!(matches!(rx.recv(Duration::ZERO), Err(Error::WouldBlock)));
    tx.publish(&4).unwrap();
    assert_eq!(rx.next().unwrap().value, 4);
    let c = rx.counters().unwrap();
    assert_eq!((c.delivered, c.missed), (3, 2));
}

#[test]
fn a_typed_side_of_another_type_gets_an_error_naming_both() {
    let name = unique_name("bc-types");
    let _c = Cleanup(name.clone());
    let tx = Publisher::<i64>::create(&name).unwrap();
    match Subscriber::<f64>::open(&name) {
        Err(Error::TypeMismatch { expected, found }) => {
            assert_eq!((expected.as_str(), found.as_str()), ("f64", "i64"))
        }
        other => panic!("{other:?}"),
    }
    let e = Publisher::<bool>::open(&name).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EMEDIUMTYPE));
    assert!(e.to_string().contains("\"bool\"") && e.to_string().contains("\"i64\""));
    // A bytes subscriber requires nothing, and sees the tag.
    let raw: Subscriber = Subscriber::open(&name).unwrap();
    assert_eq!(raw.type_tag(), "i64");
    drop((tx, raw));

    // An untyped topic is named as such.
    let untyped = unique_name("bc-untyped");
    let _c2 = Cleanup(untyped.clone());
    let _tx: Publisher = Publisher::create(&untyped).unwrap();
    let e = Subscriber::<f64>::open(&untyped).unwrap_err();
    assert!(e.to_string().contains("untyped"), "{e}");
    // A tag given for a typed side must be its type's.
    let e = TopicOptions::new()
        .type_tag("i64")
        .subscriber::<f64>(&untyped)
        .unwrap_err();
    assert!(matches!(e, Error::Io(ref io) if io.kind() == std::io::ErrorKind::InvalidInput));
}

#[test]
fn a_typed_topic_opens_whatever_payload_limit_its_creator_chose() {
    // Another language may create an f64 topic with a larger max_payload than 8.
    let name = unique_name("bc-limit");
    let _c = Cleanup(name.clone());
    let tx: Publisher<f64> = TopicOptions::new()
        .create(true)
        .max_payload(4096)
        .publisher(&name)
        .unwrap();
    let rx = Subscriber::<f64>::create(&name).unwrap();
    assert_eq!((tx.max_payload(), rx.max_payload()), (4096, 4096));
}

#[test]
fn bytes_that_are_not_a_value_of_the_type_are_an_error_and_are_consumed() {
    let name = unique_name("bc-invalid");
    let _c = Cleanup(name.clone());
    let mut raw: Publisher = topic(8).type_tag("bool").publisher(&name).unwrap();
    let mut rx = Subscriber::<bool>::open(&name).unwrap();
    raw.publish(&[2]).unwrap();
    raw.publish(&[1, 0]).unwrap();
    raw.publish(&[1]).unwrap();
    let e = rx.next().unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidValue {
                type_tag: "bool",
                ..
            }
        ),
        "{e:?}"
    );
    let e = rx.next().unwrap_err();
    assert!(e.to_string().contains("2 bytes, expected 1"), "{e}");
    assert!(rx.next().unwrap().value);
    // A view is checked too: a short message is never dereferenced as a value.
    let name = unique_name("bc-invalid-view");
    let _c = Cleanup(name.clone());
    let mut raw: Publisher = topic(8).type_tag("i64").publisher(&name).unwrap();
    let mut rx = Subscriber::<i64>::open(&name).unwrap();
    raw.publish(&[1, 2, 3]).unwrap();
    raw.publish(&7i64.to_le_bytes()).unwrap();
    let e = rx.peek().unwrap_err();
    assert!(e.to_string().contains("3 bytes, expected 8"), "{e}");
    assert_eq!(*rx.peek().unwrap(), 7);
}

#[test]
fn text_topics_carry_utf8_and_report_anything_else() {
    let name = unique_name("bc-str");
    let _c = Cleanup(name.clone());
    let mut tx = Publisher::<str>::create(&name).unwrap();
    let mut rx = Subscriber::<str>::open(&name).unwrap();
    assert_eq!(rx.type_tag(), "str");
    tx.publish("grüße").unwrap();
    assert_eq!(rx.next().unwrap().value, "grüße");
    drop(tx); // a bytes publisher (any tag) takes over and sends bytes that are not UTF-8
    let mut raw: Publisher = Publisher::open(&name).unwrap();
    raw.publish(&[0xff, 0xfe]).unwrap();
    let e = rx.next().unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidValue {
                type_tag: "str",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(matches!(Subscriber::<[u8]>::open(&name), Ok(s) if s.type_tag() == "str"));
}

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Pose {
    x: f64,
    y: f64,
    flag: u8,
    _pad: [u8; 7],
}
// SAFETY: repr(C), no implicit padding (it is the explicit `_pad`), every pattern valid.
unsafe impl Pod for Pose {
    const TYPE_TAG: &'static str = "struct:<2dB7x";
}
// SAFETY: every bit pattern is a Pose; alignment 8.
unsafe impl shm_channel::AnyBitPattern for Pose {}

#[test]
fn views_are_in_place_and_release_says_whether_they_were_overwritten() {
    let name = unique_name("bc-views");
    let _c = Cleanup(name.clone());
    let mut tx: Publisher<Pose> = TopicOptions::new()
        .create(true)
        .depth(4)
        .publisher(&name)
        .unwrap();
    let mut rx = Subscriber::<Pose>::open(&name).unwrap();
    let pose = |i: u64| Pose {
        x: i as f64,
        y: -(i as f64),
        flag: i as u8,
        _pad: [0; 7],
    };
    tx.publish(&pose(1)).unwrap();
    let v = rx.peek().unwrap();
    assert_eq!((*v, v.missed()), (pose(1), 0));
    assert_eq!(v.bytes().as_ptr() as usize % 8, 0);
    v.release().unwrap(); // intact
                          // Held across depth - 1 = 3 publishes: still intact.
    tx.publish(&pose(2)).unwrap();
    let v = rx.peek().unwrap();
    assert_eq!(*v, pose(2));
    // (the guard borrows the subscriber; the publisher is another handle)
    for i in 3..=5 {
        tx.publish(&pose(i)).unwrap();
    }
    v.release().unwrap();
    // Held across a 4th publish: overwritten, reported, counted missed.
    let v = rx.peek().unwrap();
    assert_eq!(*v, pose(3));
    for i in 6..=9 {
        tx.publish(&pose(i)).unwrap();
    }
    assert!(matches!(v.release(), Err(Error::Overwritten)));
    let c = rx.counters().unwrap();
    assert_eq!((c.delivered, c.missed), (2, 1));
    // The next read goes on after it: 4 and 5 were overwritten too (by 8 and 9), so the
    // oldest held is 6.
    let s = rx.next().unwrap();
    assert_eq!((s.value, s.missed), (pose(6), 2));
    // peek_latest: the newest in place, with is_new; dropping the guard releases it.
    let v = rx.peek_latest().unwrap().unwrap();
    assert_eq!((*v, v.is_new(), v.missed()), (pose(9), true, 2));
    drop(v);
    let v = rx.peek_latest().unwrap().unwrap();
    assert!(!v.is_new());
}

#[test]
fn a_loan_publishes_in_place_on_commit_and_nothing_on_abort() {
    let name = unique_name("bc-loan");
    let _c = Cleanup(name.clone());
    let mut tx: Publisher = topic(4).publisher(&name).unwrap();
    let mut rx: Subscriber = Subscriber::open(&name).unwrap();
    let mut slot = tx.loan().unwrap();
    assert_eq!(slot.len(), MAX);
    slot[..3].copy_from_slice(b"one");
    slot.commit(3).unwrap();
    let mut slot = tx.loan().unwrap();
    slot[..5].copy_from_slice(b"never");
    slot.abort();
    assert!(matches!(rx.recv(Duration::ZERO), Ok(s) if s.value == b"one"));
    assert!(matches!(rx.recv(Duration::ZERO), Err(Error::WouldBlock)));
    let slot = tx.loan().unwrap();
    assert!(slot.commit(MAX + 1).is_err()); // too long: an error, and aborted
    tx.publish(b"two").unwrap(); // the aborted numbers are used again: no gap
    let s = rx.next().unwrap();
    assert_eq!((s.value, s.missed), (b"two".to_vec(), 0));
    assert_eq!(tx.stat().unwrap().pub_seq, 2);
    assert!(matches!(
        tx.publish(&[0; MAX + 1]),
        Err(Error::MessageTooLarge { len: 257, max: MAX })
    ));
}

#[test]
fn the_subscriber_table_limits_the_subscribers_and_frees_entries_on_drop() {
    let name = unique_name("bc-table");
    let _c = Cleanup(name.clone());
    let tx: Publisher = TopicOptions::new()
        .create(true)
        .max_subscribers(2)
        .publisher(&name)
        .unwrap();
    let a: Subscriber = Subscriber::open(&name).unwrap();
    let b: Subscriber = Subscriber::open(&name).unwrap();
    assert_eq!(tx.subscribers().unwrap(), 2);
    assert!(matches!(
        Subscriber::<[u8]>::open(&name),
        Err(Error::TooManySubscribers)
    ));
    drop(a);
    let _third: Subscriber = Subscriber::open(&name).unwrap();
    assert!(matches!(Publisher::<[u8]>::open(&name), Err(Error::Busy)));
    drop(b);
}

#[test]
fn subscribers_in_threads_each_read_every_message() {
    let name = unique_name("bc-threads");
    let _c = Cleanup(name.clone());
    let mut tx = TopicOptions::new()
        .create(true)
        .depth(1024)
        .publisher::<i64>(&name)
        .unwrap();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut rx = Subscriber::<i64>::open(&name).unwrap();
            std::thread::spawn(move || {
                rx.set_timeout(Some(LONG));
                rx.messages()
                    .map(|s| s.unwrap().value)
                    .collect::<Vec<i64>>()
            })
        })
        .collect();
    for v in 0..500 {
        tx.publish(&v).unwrap();
    }
    drop(tx);
    for r in readers {
        assert_eq!(r.join().unwrap(), (0..500).collect::<Vec<i64>>());
    }
}
