//! Our compat side in Rust (`OpenOptions::compat` on the stream Producer/Consumer), for
//! tests/interop/test_compat.py: the command line, message stream and exit codes of
//! tests/compat/peer_model.cpp (see compat_peer.c).
//!   compat_peer produce NAME SIZE COUNT SEED MAXLEN
//!   compat_peer consume NAME COUNT SEED MAXLEN

use std::process::exit;
use std::time::{Duration, Instant};

use shm_channel::{Error, OpenOptions};

const STALL: Duration = Duration::from_secs(20);

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn msg(seed: u64, seq: u64, maxlen: u64) -> Vec<u8> {
    let r = mix(seed.wrapping_mul(1_000_003).wrapping_add(seq));
    let small = maxlen.min(64);
    let len = 1 + (r >> 8) % if r & 63 == 0 { maxlen } else { small };
    let k = mix((seed.wrapping_mul(1_000_003).wrapping_add(seq)) ^ 0xAB_CDEF);
    (0..len).map(|i| (k >> (8 * (i & 7))) as u8).collect()
}

fn num(s: &str) -> u64 {
    s.parse().unwrap_or_else(|_| {
        eprintln!("compat_peer: bad number {s}");
        exit(2)
    })
}

fn fail(what: &str, e: Error) -> ! {
    eprintln!("compat_peer: {what}: {e}");
    exit(if matches!(e, Error::TimedOut) { 4 } else { 2 })
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() >= 7 && a[1] == "produce" {
        let (size, count, seed, maxlen) = (num(&a[3]), num(&a[4]), num(&a[5]), num(&a[6]));
        let mut tx = OpenOptions::new()
            .compat(true)
            .create(true)
            .capacity((size - 16) as usize)
            .producer(&a[2])
            .unwrap_or_else(|e| fail("open", e));
        tx.set_timeout(Some(STALL));
        for seq in 0..count {
            tx.write(&msg(seed, seq, maxlen))
                .unwrap_or_else(|e| fail("write", e));
        }
        return;
    }
    if a.len() >= 6 && a[1] == "consume" {
        let (count, seed, maxlen) = (num(&a[3]), num(&a[4]), num(&a[5]));
        let t0 = Instant::now();
        let mut rx = loop {
            match OpenOptions::new().compat(true).mode(0o666).consumer(&a[2]) {
                Ok(rx) => break rx,
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(Error::TimedOut) => {}
                Err(e) => fail("open", e),
            }
            if t0.elapsed() > STALL {
                exit(4);
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        rx.set_timeout(Some(STALL));
        let mut buf = Vec::new();
        for seq in 0..count {
            rx.read(&mut buf).unwrap_or_else(|e| fail("read", e));
            if buf != msg(seed, seq, maxlen) {
                eprintln!("compat_peer: CORRUPT message {seq}");
                exit(3);
            }
        }
        return;
    }
    eprintln!("usage: see the comment at the top of compat_peer.rs");
    exit(2);
}
