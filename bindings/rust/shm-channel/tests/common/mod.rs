//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shm_channel::{Consumer, OpenOptions, Producer};

/// A channel name no other test, process or run uses: "rs-" + pid + counter.
pub fn unique_name(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("rs-{}-{n}-{what}", std::process::id())
}

/// Removes the channel's name when dropped, whatever the test did.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = shm_channel::force_unlink(&self.0);
    }
}

/// A producer and a consumer on a fresh channel of `capacity` bytes, with its cleanup.
pub fn pair(what: &str, capacity: usize) -> (Producer, Consumer, Cleanup) {
    let name = unique_name(what);
    let tx = OpenOptions::new()
        .create_new(true)
        .capacity(capacity)
        .producer(&name)
        .unwrap();
    let rx = Consumer::open(&name).unwrap();
    (tx, rx, Cleanup(name))
}

/// Whether the channel's segment file exists in the segment directory.
pub fn segment_exists(name: &str) -> bool {
    shm_channel::dir().join(name).exists()
}

/// Deterministic message `i`: its length varies from 0 to `max_len`, and it starts with
/// its sequence number (when long enough) followed by a pattern derived from it.
pub fn message(i: u64, max_len: usize) -> Vec<u8> {
    let len = (i.wrapping_mul(2_654_435_761) % (max_len as u64 + 1)) as usize;
    let mut m: Vec<u8> = (0..len).map(|k| (i as usize + k * 7) as u8).collect();
    if len >= 8 {
        m[..8].copy_from_slice(&i.to_le_bytes());
    }
    m
}

pub const SHORT: Duration = Duration::from_millis(20);
pub const LONG: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds (a state such as "the peer sleeps", read from the stats);
/// panics after [`LONG`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < LONG, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}
