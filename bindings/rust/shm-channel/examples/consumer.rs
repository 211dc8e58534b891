//! Demo consumer: `consumer [NAME [CAPACITY]]`
//!
//! Reads NAME until end-of-stream, checking that each message starts with its sequence
//! number (little-endian u64, as `demo_producer` and the `producer` example write it), and
//! prints the throughput. Either side may start first: the channel is created if the
//! producer has not created it yet, so CAPACITY (default 32 MiB) must match the producer's.
//!
//! ```text
//! cargo run --release --example consumer -- demo 33554432 &
//! build/demo_producer demo 600 6220800 33554432
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use shm_channel::{Error, OpenOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("demo", String::as_str);
    let capacity: usize = args
        .get(2)
        .map_or(32 << 20, |s| s.parse().expect("CAPACITY"));

    let mut rx = match OpenOptions::new()
        .create(true)
        .capacity(capacity)
        .consumer(name)
    {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("consumer: open {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Give up if the producer is silent for 10 s (a dead producer is reported at once).
    rx.set_timeout(Some(Duration::from_secs(10)));

    let (mut n, mut bytes) = (0u64, 0u64);
    let mut start = None;
    let end = loop {
        // Zero-copy: look at the message in place; dropping the guard releases it.
        let msg = match rx.peek() {
            Ok(msg) => msg,
            Err(e) => break e,
        };
        start.get_or_insert_with(Instant::now);
        let seq = match msg.get(..8) {
            Some(head) => u64::from_le_bytes(head.try_into().unwrap()),
            None => n,
        };
        if seq != n {
            eprintln!("consumer: message {n} has sequence {seq}");
            return ExitCode::FAILURE;
        }
        n += 1;
        bytes += msg.len() as u64;
    };
    let elapsed = start.map_or(Duration::ZERO, |t| t.elapsed());
    if !matches!(end, Error::EndOfStream) {
        eprintln!("consumer: stopped after {n} messages: {end}");
        return ExitCode::FAILURE;
    }
    print!("consumer (rust): received {n} messages, {bytes} bytes, in order, then end-of-stream");
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        print!(
            ": {:.0} msg/s, {:.2} GB/s",
            n as f64 / secs,
            bytes as f64 / secs / 1e9
        );
    }
    println!();
    ExitCode::SUCCESS
}
