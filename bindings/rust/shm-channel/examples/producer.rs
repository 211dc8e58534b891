//! Demo producer: `producer [NAME [COUNT [SIZE [CAPACITY]]]]`
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map_or(default, |s| s.parse().expect("a number"))
    };
    let name = args.get(1).map_or("demo", String::as_str);
    let count = arg(2, 300);
    let size = arg(3, 1920 * 1080 * 3) as usize;
    let capacity = arg(4, 32 << 20) as usize;

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
