//! Demo producer: `producer [NAME [COUNT [SIZE [CAPACITY]]]]` (`--help` explains them; bad
//! arguments print the usage, exit with status 2 and create nothing).
//!
//! Sends COUNT messages of SIZE bytes (default: 300 frames of 1920x1080 RGB) on NAME, each
//! filled with its sequence number's low byte and starting with the sequence number as a
//! little-endian u64 (as `demo_producer` does), then closes: end-of-stream. Both sides must
//! agree on CAPACITY (default 32 MiB), since either may create the channel.
//!
//! ```text
//! build/demo_consumer demo 33554432 &
//! cargo run --release --example producer -- demo 600 6220800 33554432
//! ```

use std::process::ExitCode;
use std::time::Instant;

use shm_channel::OpenOptions;

const USAGE: &str = "usage: producer [NAME [COUNT [SIZE [CAPACITY]]]]
  NAME      channel name (default demo)
  COUNT     messages to send (default 300)
  SIZE      bytes per message, at most CAPACITY/2 - 8 (default 6220800: a 1080p RGB frame)
  CAPACITY  ring bytes, a power of two both sides agree on (default 33554432)";

struct Args {
    name: String,
    count: u64,
    size: usize,
    capacity: usize,
}

/// The arguments, or the text to print before the usage (None: help was asked for).
fn parse(args: &[String]) -> Result<Args, Option<String>> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Err(None);
    }
    if let Some(a) = args.iter().find(|a| a.starts_with('-')) {
        return Err(Some(format!("unknown option {a}")));
    }
    if args.len() > 4 {
        return Err(Some(format!("too many arguments ({})", args.len())));
    }
    let num = |i: usize, what: &str, default: u64| -> Result<u64, Option<String>> {
        args.get(i).map_or(Ok(default), |s| {
            s.parse()
                .map_err(|_| Some(format!("{what} is not a number: {s}")))
        })
    };
    let a = Args {
        name: args.first().map_or("demo", String::as_str).to_string(),
        count: num(1, "COUNT", 300)?,
        size: num(2, "SIZE", 1920 * 1080 * 3)? as usize,
        capacity: num(3, "CAPACITY", 32 << 20)? as usize,
    };
    if !a.capacity.is_power_of_two() || a.capacity < shm_channel::MIN_CAPACITY {
        return Err(Some(format!(
            "CAPACITY must be a power of two of at least {}: {}",
            shm_channel::MIN_CAPACITY,
            a.capacity
        )));
    }
    if a.size > a.capacity / 2 - 8 {
        return Err(Some(format!(
            "SIZE {} exceeds the largest message of a {}-byte ring ({})",
            a.size,
            a.capacity,
            a.capacity / 2 - 8
        )));
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Args {
        name,
        count,
        size,
        capacity,
    } = match parse(&args) {
        Ok(a) => a,
        Err(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(Some(msg)) => {
            eprintln!("producer: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let name = name.as_str();

    let mut tx = match OpenOptions::new()
        .create(true)
        .capacity(capacity)
        .producer(name)
    {
        Ok(tx) => tx,
        Err(e) => {
            eprintln!("producer: open {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    for i in 0..count {
        // Zero-copy: fill the message in place, then publish it.
        let mut space = match tx.reserve(size) {
            Ok(space) => space,
            Err(e) => {
                eprintln!("producer: reserve: {e}");
                return ExitCode::FAILURE;
            }
        };
        space.fill(i as u8);
        if size >= 8 {
            space[..8].copy_from_slice(&i.to_le_bytes());
        }
        if let Err(e) = space.commit() {
            eprintln!("producer: commit: {e}");
            return ExitCode::FAILURE;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "producer (rust): sent {count} messages of {size} B in {secs:.3} s: {:.0} msg/s, {:.2} GB/s",
        count as f64 / secs,
        (count * size as u64) as f64 / secs / 1e9
    );
    drop(tx); // end-of-stream
    ExitCode::SUCCESS
}
