//! Demo consumer: `consumer [NAME [CAPACITY]]` (`--help` explains them; bad arguments print
//! the usage, exit with status 2 and create nothing).
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

const USAGE: &str = "usage: consumer [NAME [CAPACITY]]
  NAME      channel name (default demo)
  CAPACITY  ring bytes, a power of two both sides agree on (default 33554432)";

/// (name, capacity), or the text to print before the usage (None: help was asked for).
fn parse(args: &[String]) -> Result<(String, usize), Option<String>> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Err(None);
    }
    if let Some(a) = args.iter().find(|a| a.starts_with('-')) {
        return Err(Some(format!("unknown option {a}")));
    }
    if args.len() > 2 {
        return Err(Some(format!("too many arguments ({})", args.len())));
    }
    let name = args.first().map_or("demo", String::as_str).to_string();
    let capacity: usize = match args.get(1) {
        None => 32 << 20,
        Some(s) => s
            .parse()
            .map_err(|_| Some(format!("CAPACITY is not a number: {s}")))?,
    };
    if !capacity.is_power_of_two() || capacity < shm_channel::MIN_CAPACITY {
        return Err(Some(format!(
            "CAPACITY must be a power of two of at least {}: {capacity}",
            shm_channel::MIN_CAPACITY
        )));
    }
    Ok((name, capacity))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (name, capacity) = match parse(&args) {
        Ok(a) => a,
        Err(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(Some(msg)) => {
            eprintln!("consumer: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let name = name.as_str();

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
