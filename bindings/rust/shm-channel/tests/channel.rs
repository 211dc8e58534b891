//! Behaviour of one channel within one process (both handles here, or in two threads).

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::*;
use shm_channel::{Batch, Consumer, Error, Observer, OpenOptions, PeerState, Producer};

#[test]
fn messages_of_every_size_arrive_intact_through_each_read_call() {
    let (mut tx, mut rx, _c) = pair("sizes", 1 << 16);
    tx.set_timeout(Some(LONG)); // a test bug fails instead of hanging
    let max = tx.max_payload();
    let sizes = [0, 1, 7, 8, 9, 15, 16, 17, 1000, 4096, max - 1, max];
    let mut buf = Vec::new();
    let mut arr = vec![0u8; max];
    for (k, &len) in sizes.iter().enumerate() {
        let msg: Vec<u8> = (0..len).map(|i| (i * 31 + k) as u8).collect();
        // One copy per way of reading (two maximal messages do not fit at once).
        tx.write(&msg).unwrap();
        assert_eq!(rx.read(&mut buf).unwrap(), len);
        assert_eq!(buf, msg);
        tx.write(&msg).unwrap();
        let n = rx.read_into(&mut arr).unwrap();
        assert_eq!(&arr[..n], &msg[..]);
        tx.write(&msg).unwrap();
        let peeked = rx.peek().unwrap();
        assert_eq!(&*peeked, &msg[..]);
        assert_eq!(
            peeked.as_ptr() as usize % 8,
            0,
            "payloads are 8-byte aligned"
        );
    }
}

#[test]
fn many_laps_of_a_small_ring_keep_order_and_content() {
    let (mut tx, mut rx, _c) = pair("laps", 1024);
    tx.set_timeout(Some(Duration::ZERO));
    rx.set_timeout(Some(Duration::ZERO));
    let max_len = 300; // several wraps per lap, with padding records
    let (mut next_w, mut next_r) = (0u64, 0u64);
    let mut buf = Vec::new();
    while next_r < 20_000 {
        // Fill until full, then drain part of it, so the positions cross the end at
        // every offset.
        loop {
            match tx.write(&message(next_w, max_len)) {
                Ok(()) => next_w += 1,
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("write {next_w}: {e}"),
            }
        }
        for _ in 0..(next_w - next_r).div_ceil(2) {
            rx.read(&mut buf).unwrap();
            assert_eq!(buf, message(next_r, max_len), "message {next_r}");
            next_r += 1;
        }
    }
    let st = rx.stat().unwrap();
    assert!(
        st.write_pos > 100 * 1024,
        "positions ran {} laps",
        st.write_pos / 1024
    );
    assert_eq!(st.msgs_read, next_r);
    assert!(st.full_events > 0);
}

#[test]
fn a_message_larger_than_the_maximum_is_refused_with_the_sizes() {
    let (mut tx, _rx, _c) = pair("too-large", 4096);
    let max = tx.max_payload();
    assert_eq!(max, 4096 / 2 - 8);
    match tx.write(&vec![0; max + 1]) {
        Err(Error::MessageTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        tx.reserve(max + 1),
        Err(Error::MessageTooLarge { .. })
    ));
    let batch: Batch = [&vec![0; max + 1][..]].into_iter().collect();
    assert!(matches!(
        tx.write_batch(&batch),
        Err(Error::MessageTooLarge { .. })
    ));
    tx.write(&vec![0; max]).unwrap();
}

#[test]
fn timeouts_zero_finite_and_forever() {
    let (mut tx, mut rx, _c) = pair("timeouts", 1024);
    let mut buf = Vec::new();

    rx.set_timeout(Some(Duration::ZERO));
    assert!(matches!(rx.read(&mut buf), Err(Error::WouldBlock)));
    assert!(matches!(rx.peek(), Err(Error::WouldBlock)));
    rx.set_timeout(Some(Duration::from_millis(100)));
    let t = Instant::now();
    assert!(matches!(rx.read(&mut buf), Err(Error::TimedOut)));
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(95), "{waited:?}");

    tx.set_timeout(Some(Duration::ZERO));
    while tx.write(&[1; 100]).is_ok() {}
    assert!(matches!(tx.write(&[1; 100]), Err(Error::WouldBlock)));
    tx.set_timeout(Some(SHORT));
    assert!(matches!(tx.write(&[1; 100]), Err(Error::TimedOut)));
    assert!(matches!(tx.reserve(100), Err(Error::TimedOut)));

    // None waits as long as it takes: a reader thread makes room once the writer sleeps.
    tx.set_timeout(None);
    let sleeps = tx.stat().unwrap().producer_sleeps;
    let reader = std::thread::spawn(move || {
        wait_until("the writer to sleep", || {
            rx.stat().unwrap().producer_sleeps > sleeps
        });
        rx.set_timeout(None);
        rx.read(&mut Vec::new()).unwrap();
        rx
    });
    tx.write(&[2; 100]).unwrap();
    drop(reader.join().unwrap());
}

#[test]
fn end_of_stream_comes_after_the_last_message_and_is_not_would_block() {
    let (mut tx, mut rx, c) = pair("eos", 4096);
    tx.write(b"1").unwrap();
    tx.write(b"2").unwrap();
    rx.set_timeout(Some(Duration::ZERO));
    let mut buf = Vec::new();
    rx.read(&mut buf).unwrap();
    drop(tx);
    assert_eq!(rx.stat().unwrap().producer_state, PeerState::Closed);
    rx.read(&mut buf).unwrap();
    assert_eq!(buf, b"2");
    for _ in 0..3 {
        assert!(matches!(rx.read(&mut buf), Err(Error::EndOfStream)));
        assert!(matches!(rx.read_into(&mut [0; 8]), Err(Error::EndOfStream)));
        assert!(matches!(rx.peek(), Err(Error::EndOfStream)));
        assert!(matches!(
            rx.read_batch(&mut Batch::new(), 8),
            Err(Error::EndOfStream)
        ));
    }
    assert!(rx.messages().next().is_none());
    // A finished stream is removed by the last handle to close.
    assert!(segment_exists(&c.0));
    drop(rx);
    assert!(!segment_exists(&c.0));
}

#[test]
fn the_iterator_yields_every_message_then_ends() {
    let (mut tx, mut rx, _c) = pair("iter", 1 << 16);
    for i in 0..100 {
        tx.write(&message(i, 200)).unwrap();
    }
    rx.set_timeout(Some(Duration::ZERO));
    let mut it = rx.messages();
    for i in 0..100 {
        assert_eq!(it.next().unwrap().unwrap(), message(i, 200));
    }
    // Empty for now: a retryable error, and the iterator goes on afterwards.
    assert!(matches!(it.next(), Some(Err(Error::WouldBlock))));
    tx.write(b"late").unwrap();
    drop(tx);
    assert_eq!(it.next().unwrap().unwrap(), b"late");
    assert!(it.next().is_none());
    assert!(it.next().is_none());
}

#[test]
fn a_writer_facing_a_full_ring_learns_the_consumer_closed() {
    let (mut tx, rx, _c) = pair("consumer-closed", 1024);
    tx.set_timeout(Some(Duration::ZERO));
    while tx.write(&[0; 64]).is_ok() {}
    drop(rx);
    tx.set_timeout(Some(LONG)); // not noticing ends in TimedOut
    assert!(matches!(tx.write(&[0; 64]), Err(Error::ConsumerClosed)));
}

#[test]
fn a_writer_asleep_on_a_full_ring_learns_the_consumer_closed() {
    let (mut tx, rx, c) = pair("consumer-closes", 1024);
    tx.set_timeout(Some(Duration::ZERO));
    while tx.write(&[0; 64]).is_ok() {}
    let sleeps = tx.stat().unwrap().producer_sleeps;
    let writer = std::thread::spawn(move || {
        tx.set_timeout(Some(LONG)); // not noticing ends in TimedOut
        tx.write(&[0; 64])
    });
    let obs = Observer::open(&c.0).unwrap();
    wait_until("the writer to sleep", || {
        obs.stat().unwrap().producer_sleeps > sleeps
    });
    drop(rx);
    let end = writer.join().unwrap();
    assert!(matches!(end, Err(Error::ConsumerClosed)), "{end:?}");
}

#[test]
fn reservations_commit_abort_and_truncate() {
    let (mut tx, mut rx, _c) = pair("reserve", 4096);
    rx.set_timeout(Some(Duration::ZERO));
    let mut buf = Vec::new();

    let mut r = tx.reserve(5).unwrap();
    assert_eq!(r.len(), 5);
    assert_eq!(r.as_ptr() as usize % 8, 0);
    r.copy_from_slice(b"abcde");
    drop(r); // aborted
    assert!(matches!(rx.read(&mut buf), Err(Error::WouldBlock)));

    let mut r = tx.reserve(5).unwrap();
    r.copy_from_slice(b"fghij");
    r.commit().unwrap();
    rx.read(&mut buf).unwrap();
    assert_eq!(buf, b"fghij");

    let mut r = tx.reserve(100).unwrap();
    r[..3].copy_from_slice(b"xyz");
    r.commit_len(3).unwrap();
    rx.read(&mut buf).unwrap();
    assert_eq!(buf, b"xyz");

    // Committing more than was reserved fails, and the reservation is aborted.
    let r = tx.reserve(4).unwrap();
    match r.commit_len(5) {
        Err(Error::Io(e)) => assert_eq!(e.kind(), ErrorKind::InvalidInput),
        other => panic!("{other:?}"),
    }
    assert!(matches!(rx.read(&mut buf), Err(Error::WouldBlock)));
    tx.write(b"after").unwrap();

    let r = tx.reserve(0).unwrap();
    assert!(r.is_empty());
    r.commit().unwrap();
    rx.read(&mut buf).unwrap();
    assert_eq!(buf, b"after");
    rx.read(&mut buf).unwrap();
    assert!(buf.is_empty());
}

#[test]
fn a_leaked_reservation_makes_writes_busy_and_nothing_unsound() {
    let (mut tx, mut rx, _c) = pair("leak", 4096);
    std::mem::forget(tx.reserve(16).unwrap());
    assert!(matches!(tx.write(b"x"), Err(Error::Busy)));
    assert!(matches!(tx.reserve(1), Err(Error::Busy)));
    rx.set_timeout(Some(Duration::ZERO));
    assert!(matches!(rx.read(&mut Vec::new()), Err(Error::WouldBlock)));
}

#[test]
fn a_peeked_message_stays_until_released() {
    let (mut tx, mut rx, _c) = pair("peek", 4096);
    tx.write(b"first").unwrap();
    tx.write(b"second").unwrap();
    std::mem::forget(rx.peek().unwrap()); // never released
    assert_eq!(&*rx.peek().unwrap(), b"first"); // the same message again, now released
    let p = rx.peek().unwrap();
    assert_eq!(&*p, b"second");
    p.release();
    assert_eq!(rx.stat().unwrap().msgs_read, 2);
}

#[test]
fn a_buffer_too_small_keeps_the_message_and_read_grows_the_vec() {
    let (mut tx, mut rx, _c) = pair("small-buf", 1 << 16);
    let msg: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    tx.write(&msg).unwrap();
    tx.write(&msg[..10]).unwrap();
    let mut small = [0u8; 100];
    for _ in 0..2 {
        assert!(matches!(
            rx.read_into(&mut small),
            Err(Error::BufferTooSmall { needed: 5000 })
        ));
    }
    let mut buf = Vec::with_capacity(10);
    assert_eq!(rx.read(&mut buf).unwrap(), 5000);
    assert_eq!(buf, msg);
    let cap = buf.capacity();
    assert_eq!(rx.read(&mut buf).unwrap(), 10);
    assert_eq!(buf, &msg[..10]);
    assert_eq!(buf.capacity(), cap, "capacity is reused");
}

#[test]
fn batches_write_a_prefix_and_read_within_the_byte_budget() {
    let (mut tx, mut rx, _c) = pair("batch", 1024);
    tx.set_timeout(Some(Duration::ZERO));
    rx.set_timeout(Some(Duration::ZERO));
    // 40 records of 8 + 24 bytes = 1280 bytes: more than the ring holds.
    let msgs = vec![[7u8; 24]; 40];
    let batch: Batch = msgs.iter().map(|m| &m[..]).collect();
    let n = tx.write_batch(&batch).unwrap();
    assert_eq!(n, 1024 / 32);
    assert_eq!(tx.stat().unwrap().msgs_written, n as u64);

    let mut got = Batch::with_capacity(24 * 10, 0);
    assert_eq!(
        rx.read_batch(&mut got, 100).unwrap(),
        10,
        "limited by bytes"
    );
    assert!(got.iter().all(|m| m == [7u8; 24]));
    assert_eq!(rx.read_batch(&mut got, 3).unwrap(), 3, "limited by count");
    assert_eq!(rx.read_batch(&mut got, 0).unwrap(), 0);
    assert!(got.is_empty());

    // The first message larger than the budget grows the batch instead of failing.
    let mut tiny = Batch::new();
    assert_eq!(rx.read_batch(&mut tiny, 100).unwrap(), 1);
    assert_eq!(tiny.bytes(), [7u8; 24]);
    assert_eq!(tx.write_batch(&Batch::new()).unwrap(), 0);
}

#[test]
fn write_batch_all_delivers_a_batch_larger_than_the_ring() {
    let (mut tx, mut rx, _c) = pair("batch-all", 1024);
    let batch: Batch = (0..2000u64)
        .map(|i| message(i, 100))
        .collect::<Vec<_>>()
        .iter()
        .map(|m| &m[..])
        .collect();
    let reader = std::thread::spawn(move || {
        let mut got = Batch::with_capacity(4096, 64);
        let mut i = 0u64;
        while i < 2000 {
            rx.read_batch(&mut got, 64).unwrap();
            for m in &got {
                assert_eq!(m, message(i, 100), "message {i}");
                i += 1;
            }
        }
        assert!(matches!(
            rx.read_batch(&mut got, 64),
            Err(Error::EndOfStream)
        ));
    });
    tx.write_batch_all(&batch).unwrap();
    drop(tx);
    reader.join().unwrap();
}

#[test]
fn two_threads_move_a_hundred_thousand_messages_in_order() {
    let (mut tx, mut rx, _c) = pair("threads", 1 << 16);
    let writer = std::thread::spawn(move || {
        for i in 0..100_000u64 {
            tx.write(&message(i, 64)).unwrap();
        }
    });
    let mut n = 0u64;
    for msg in &mut rx {
        assert_eq!(msg.unwrap(), message(n, 64));
        n += 1;
    }
    writer.join().unwrap();
    assert_eq!(n, 100_000);
}

#[test]
fn roles_are_exclusive_and_free_again_after_close() {
    let name = unique_name("roles");
    let _c = Cleanup(name.clone());
    let tx = Producer::create(&name).unwrap();
    let rx = Consumer::create(&name).unwrap();
    assert!(matches!(Producer::create(&name), Err(Error::Busy)));
    assert!(matches!(Consumer::open(&name), Err(Error::Busy)));
    let obs = Observer::open(&name).unwrap(); // observers claim no role
    drop(rx);
    let rx = Consumer::open(&name).unwrap();
    let st = obs.stat().unwrap();
    assert_eq!((st.producer_epoch, st.consumer_epoch), (1, 2));
    assert!(st.producer_alive && st.consumer_alive && st.in_use);
    drop((tx, rx));
}

#[test]
fn open_options_validate_names_capacities_and_creation() {
    let name = unique_name("opts");
    let _c = Cleanup(name.clone());
    let kind = |r: shm_channel::Result<Producer>| match r {
        Err(Error::Io(e)) => e.kind(),
        other => panic!("{other:?}"),
    };
    assert_eq!(kind(Producer::open(&name)), ErrorKind::NotFound);
    let long = "x".repeat(201);
    for bad in ["", ".hidden", "a/b", "sp ace", "nul\0byte", long.as_str()] {
        assert_eq!(
            kind(Producer::create(bad)),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
    let mut opts = OpenOptions::new();
    opts.create(true).capacity(3000); // not a power of two
    assert_eq!(kind(opts.producer(&name)), ErrorKind::InvalidInput);
    let tx = OpenOptions::new()
        .create_new(true)
        .capacity(2048)
        .producer(&format!("/{name}")) // a leading '/' is accepted
        .unwrap();
    assert_eq!(tx.capacity(), 2048);
    // Opening with another capacity is refused; 0 accepts any.
    let wrong = OpenOptions::new().capacity(4096).consumer(&name);
    assert!(matches!(wrong, Err(Error::Io(e)) if e.kind() == ErrorKind::InvalidInput));
    let rx = OpenOptions::new().consumer(&name).unwrap();
    assert_eq!(rx.capacity(), 2048);
    let again = OpenOptions::new().create_new(true).observer(&name);
    assert!(again.is_err());
    drop((tx, rx));
}

#[test]
fn stats_count_messages_bytes_and_states() {
    let (mut tx, mut rx, c) = pair("stats", 4096);
    let obs = Observer::open(&c.0).unwrap();
    for len in [0, 10, 100] {
        tx.write(&vec![1; len]).unwrap();
    }
    rx.read(&mut Vec::new()).unwrap();
    let st = obs.stat().unwrap();
    assert_eq!(st.kind, 1);
    assert_eq!(st.layout_version, (1, 1)); // streams are 1.1 (spec §5.10)
    assert_eq!((st.capacity, st.max_payload), (4096, 2040));
    assert_eq!((st.msgs_written, st.bytes_written), (3, 110));
    assert_eq!((st.msgs_read, st.bytes_read), (1, 0));
    assert_eq!(st.used, st.write_pos - st.read_pos);
    assert_eq!(st.used, (8 + 16) + (8 + 104));
    assert_eq!(st.producer_state, PeerState::Attached);
    assert_eq!(st.creator_pid, std::process::id());
    let age = st.created.elapsed().unwrap_or_default();
    assert!(age < Duration::from_secs(60), "{age:?}");
    assert_eq!(obs.capacity(), 4096);
    assert_eq!(obs.name(), c.0);
}

#[test]
fn unlink_refuses_live_channels_and_force_unlink_does_not() {
    let name = unique_name("unlink");
    let _c = Cleanup(name.clone());
    let mut tx = Producer::create(&name).unwrap();
    tx.write(b"pending").unwrap();
    assert!(matches!(shm_channel::unlink(&name), Err(Error::Busy)));
    shm_channel::force_unlink(&name).unwrap();
    assert!(!segment_exists(&name));
    tx.write(b"still fine").unwrap();
    drop(tx);
    assert!(
        matches!(shm_channel::unlink(&name), Err(Error::Io(e)) if e.kind() == ErrorKind::NotFound)
    );
}

#[test]
fn an_unread_channel_survives_its_handles_and_a_new_consumer_resumes() {
    let name = unique_name("resume");
    let _c = Cleanup(name.clone());
    let mut tx = Producer::create(&name).unwrap();
    let mut rx = Consumer::open(&name).unwrap();
    for i in 0..5u64 {
        tx.write(&i.to_le_bytes()).unwrap();
    }
    let mut buf = Vec::new();
    rx.read(&mut buf).unwrap();
    rx.read(&mut buf).unwrap();
    drop(rx);
    drop(tx);
    assert!(segment_exists(&name), "unread messages keep the segment");
    let mut rx = Consumer::open(&name).unwrap();
    let rest: Vec<Vec<u8>> = rx.messages().map(Result::unwrap).collect();
    assert_eq!(
        rest,
        (2..5u64)
            .map(|i| i.to_le_bytes().to_vec())
            .collect::<Vec<_>>()
    );
    drop(rx);
    assert!(!segment_exists(&name));
}

#[test]
fn library_version_and_directory() {
    assert_eq!(shm_channel::version().0, 1);
    let expected = std::env::var_os("SHM_CHANNEL_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| "/dev/shm".into(), std::path::PathBuf::from);
    assert_eq!(shm_channel::dir(), expected);
}
