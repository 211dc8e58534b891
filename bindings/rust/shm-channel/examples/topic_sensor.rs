//! Subscribes to a topic of sensor readings and prints each one, in any language's topic.
//!
//! ```text
//! topic_sensor NAME [--type f64|i64|bool|struct:<3d|str|bytes] [--count N] [--latest HZ]
//!                   [--timeout-s S]
//! ```
//!
//! Waits (up to `--timeout-s`, default 10) for the topic to exist, then prints one line per
//! reading: `reading K: VALUE`, with `(missed M before it)` when it fell behind. `--latest HZ`
//! samples the newest reading HZ times a second instead of reading every one (seed 000's
//! `subscribe()` loop), printing only new ones. Ends at end-of-stream, when the publisher
//! dies, or after `--count` readings, with a summary line. Exit status: 0 at the end of the
//! stream or the count, 1 on an error (publisher died, wrong type, ...), 2 on bad arguments
//! (nothing is opened).
//!
//! For example, with a Python publisher of floats:
//! `python -c 'import shm_channel.pubsub as p, time; ...'` and
//! `cargo run --example topic_sensor -- temperature --count 10`.

use std::process::exit;
use std::time::{Duration, Instant};

use shm_channel::{Error, Message, PeerState, Pod, Subscriber};

/// Three coordinates, the wire type `struct:<3d` (a ctypes structure of three doubles).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Xyz {
    x: f64,
    y: f64,
    z: f64,
}
// SAFETY: repr(C), three f64, no padding, every bit pattern is a value.
unsafe impl Pod for Xyz {
    const TYPE_TAG: &'static str = "struct:<3d";
}

struct Args {
    name: String,
    type_tag: String,
    count: Option<u64>,
    latest_hz: Option<f64>,
    timeout: Duration,
}

const USAGE: &str = "usage: topic_sensor NAME [--type f64|i64|bool|struct:<3d|str|bytes] \
                     [--count N] [--latest HZ] [--timeout-s S]";

fn usage(msg: &str) -> ! {
    eprintln!("topic_sensor: {msg}\n{USAGE}");
    exit(2)
}

fn parse() -> Args {
    let mut args = std::env::args().skip(1);
    let mut a = Args {
        name: String::new(),
        type_tag: "f64".into(),
        count: None,
        latest_hz: None,
        timeout: Duration::from_secs(10),
    };
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            println!("{USAGE}");
            exit(0);
        }
        if !arg.starts_with('-') {
            if !a.name.is_empty() {
                usage(&format!("unexpected argument {arg}"));
            }
            a.name = arg;
            continue;
        }
        let v = args
            .next()
            .unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        let positive = |v: &str| match v.parse::<f64>() {
            Ok(x) if x > 0.0 && x < 1e9 => x,
            _ => usage(&format!("{arg}: {v} is not a positive number")),
        };
        match arg.as_str() {
            "--type" => match v.as_str() {
                "f64" | "i64" | "bool" | "struct:<3d" | "str" | "bytes" => a.type_tag = v,
                _ => usage(&format!("unknown type {v}")),
            },
            "--count" => {
                a.count = Some(
                    v.parse()
                        .unwrap_or_else(|_| usage(&format!("--count: {v}"))),
                )
            }
            "--latest" => a.latest_hz = Some(positive(&v)),
            "--timeout-s" => a.timeout = Duration::from_secs_f64(positive(&v)),
            _ => usage(&format!("unknown option {arg}")),
        }
    }
    if a.name.is_empty() {
        usage("a topic name is required");
    }
    a
}

fn main() {
    let a = parse();
    let result = match a.type_tag.as_str() {
        "f64" => run::<f64>(&a, |v| format!("{v:.3}")),
        "i64" => run::<i64>(&a, |v| v.to_string()),
        "bool" => run::<bool>(&a, |v| v.to_string()),
        "struct:<3d" => run::<Xyz>(&a, |v| format!("({:.3}, {:.3}, {:.3})", v.x, v.y, v.z)),
        "str" => run_bytes(&a, |v| String::from_utf8_lossy(v).into_owned()),
        _ => run_bytes(&a, |v| {
            format!("{} bytes {:02x?}", v.len(), &v[..v.len().min(8)])
        }),
    };
    match result {
        Ok(()) => {}
        Err(e) => {
            eprintln!("topic_sensor: {e}");
            exit(1);
        }
    }
}

fn run_bytes(a: &Args, show: impl Fn(&Vec<u8>) -> String) -> Result<(), Error> {
    run::<[u8]>(a, show)
}

/// Opens the topic as a subscriber of `T` (waiting for it to exist) and prints readings.
fn run<T: ?Sized + Message>(a: &Args, show: impl Fn(&T::Owned) -> String) -> Result<(), Error> {
    let deadline = Instant::now() + a.timeout;
    let mut options = shm_channel::TopicOptions::new();
    if T::TAG.is_empty() {
        options.type_tag(&a.type_tag);
    }
    let mut rx: Subscriber<T> = loop {
        match options.subscriber(&a.name) {
            Err(Error::Io(e))
                if e.kind() == std::io::ErrorKind::NotFound && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => break other?,
        }
    };
    rx.set_timeout(Some(a.timeout));
    let (mut readings, mut missed) = (0u64, 0u64);
    let end = loop {
        if a.count.is_some_and(|c| readings >= c) {
            break "count reached";
        }
        let got = match a.latest_hz {
            None => rx.next().map(|s| Some((s.value, s.missed))),
            Some(hz) => {
                std::thread::sleep(Duration::from_secs_f64(1.0 / hz));
                match rx.latest()? {
                    Some(l) if l.is_new => Ok(Some((l.value, l.missed))),
                    _ => {
                        // Nothing new: the end if the publisher has gone, after one more
                        // look (it may have published a last reading just before).
                        let st = rx.stat()?;
                        let gone = match st.publisher_state {
                            PeerState::Closed => Some(Error::EndOfStream),
                            PeerState::Attached if !st.publisher_alive => Some(Error::PeerDied),
                            _ => None,
                        };
                        match (gone, rx.latest()?) {
                            (_, Some(l)) if l.is_new => Ok(Some((l.value, l.missed))),
                            (Some(e), _) => Err(e),
                            (None, _) => Ok(None),
                        }
                    }
                }
            }
        };
        match got {
            Ok(Some((value, m))) => {
                readings += 1;
                missed += m;
                if m > 0 {
                    println!(
                        "reading {readings}: {} (missed {m} before it)",
                        show(&value)
                    );
                } else {
                    println!("reading {readings}: {}", show(&value));
                }
            }
            Ok(None) => {}
            Err(Error::EndOfStream) => break "end of stream",
            Err(e) => {
                println!("{readings} readings, {missed} missed");
                return Err(e);
            }
        }
    };
    println!("{end}: {readings} readings, {missed} missed");
    Ok(())
}
