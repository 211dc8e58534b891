//! Every golden segment image in spec/vectors/ read through this crate.
//!
//! For each `NAME.bin` with its `NAME.expect`: copy the image into the segment directory
//! under a fresh name with mode 0600, open it as consumer (flags 0, capacity 0), expect
//! `open ok` or `open ERRNAME`, then read without blocking, comparing each `msg <hex>`
//! (`msg -` is an empty message), and finally expect the error of `end ERRNAME`. Lines
//! starting with `#` are comments. Each image is read three ways: `read` into a Vec,
//! `read_into` a slice and `peek`, which must agree.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::unique_name;
use shm_channel::{Consumer, Error, OpenOptions};

fn vectors_dir() -> PathBuf {
    match std::env::var_os("SHM_CHANNEL_VECTORS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../spec/vectors"),
    }
}

#[derive(Debug, PartialEq)]
struct Expect {
    open: String,
    msgs: Vec<Vec<u8>>,
    end: Option<String>,
}

fn parse_expect(text: &str) -> Expect {
    let mut open = None;
    let mut msgs = vec![];
    let mut end = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        // spec/vectors/README.md: one `open` first; after `open ok`, messages and exactly
        // one `end`, last; after a failed open, nothing.
        assert_eq!(
            open.is_none(),
            key == "open",
            "`open` must come first, once: {line}"
        );
        assert!(end.is_none(), "nothing may follow `end`: {line}");
        assert!(
            key == "open" || open.as_deref() == Some("ok"),
            "line after a failed open: {line}"
        );
        match key {
            "open" => open = Some(value.to_string()),
            "msg" if value == "-" => msgs.push(vec![]),
            "msg" => msgs.push(hex(value)),
            "end" => end = Some(value.to_string()),
            other => panic!("unknown line {other:?}"),
        }
    }
    let open = open.expect("an `open` line");
    assert!(
        open != "ok" || end.is_some(),
        "`open ok` needs an `end` line"
    );
    Expect { open, msgs, end }
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The errno name of an error, checking on the way that the crate gave the variant that
/// names its meaning.
fn err_name(e: &Error) -> String {
    let name = match e {
        Error::EndOfStream => "EPIPE",
        Error::PeerDied => "EOWNERDEAD",
        Error::WouldBlock => "EAGAIN",
        Error::TimedOut => "ETIMEDOUT",
        Error::Corrupt => "EBADMSG",
        Error::NotAChannel => "EPROTO",
        Error::UnsupportedLayout => "EPROTONOSUPPORT",
        Error::WrongKind => "EPROTOTYPE",
        Error::Busy => "EBUSY",
        Error::Io(io) => match io.raw_os_error() {
            Some(libc::EINVAL) => "EINVAL",
            Some(libc::ENOENT) => "ENOENT",
            Some(libc::EACCES) => "EACCES",
            Some(libc::ENOSPC) => "ENOSPC",
            Some(libc::ENOMEM) => "ENOMEM",
            _ => panic!("unexpected system error {io}"),
        },
        other => panic!("unexpected error {other:?}"),
    };
    name.to_string()
}

/// A copy of a vector's image in the segment directory, removed on drop.
struct Segment {
    name: String,
}

impl Segment {
    fn copy_of(bin: &Path, vector: &str) -> Segment {
        let name = unique_name(&format!("vec-{vector}"));
        let path = shm_channel::dir().join(&name);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        f.write_all(&fs::read(bin).unwrap()).unwrap();
        Segment { name }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // The consumer's close may already have removed a finished stream.
        let _ = fs::remove_file(shm_channel::dir().join(&self.name));
    }
}

#[derive(Clone, Copy, Debug)]
enum Way {
    Read,
    ReadInto,
    Peek,
}

fn read_one(rx: &mut Consumer, way: Way) -> Result<Vec<u8>, Error> {
    match way {
        Way::Read => {
            let mut buf = Vec::new();
            rx.read(&mut buf).map(|_| buf)
        }
        Way::ReadInto => {
            let mut buf = vec![0u8; rx.max_payload()];
            rx.read_into(&mut buf).map(|n| buf[..n].to_vec())
        }
        Way::Peek => rx.peek().map(|m| m.to_vec()),
    }
}

/// Checks one vector read one way; returns a description of the first disagreement.
fn check(bin: &Path, vector: &str, expect: &Expect, way: Way) -> Result<(), String> {
    let seg = Segment::copy_of(bin, vector);
    let mut rx = match OpenOptions::new().consumer(&seg.name) {
        Ok(rx) if expect.open == "ok" => rx,
        Ok(_) => return Err(format!("open succeeded, expected {}", expect.open)),
        Err(e) if err_name(&e) == expect.open => return Ok(()),
        Err(e) => {
            return Err(format!(
                "open failed with {} ({e}), expected {}",
                err_name(&e),
                expect.open
            ))
        }
    };
    rx.set_timeout(Some(Duration::ZERO));
    for (i, want) in expect.msgs.iter().enumerate() {
        match read_one(&mut rx, way) {
            Ok(got) if &got == want => {}
            Ok(got) => return Err(format!("message {i}: got {got:02x?}, expected {want:02x?}")),
            Err(e) => return Err(format!("message {i}: {} ({e})", err_name(&e))),
        }
    }
    let end = expect
        .end
        .as_deref()
        .ok_or("an `open ok` vector needs an `end` line")?;
    match read_one(&mut rx, way) {
        Err(e) if err_name(&e) == end => {}
        Err(e) => return Err(format!("end: {} ({e}), expected {end}", err_name(&e))),
        Ok(got) => return Err(format!("end: got a message {got:02x?}, expected {end}")),
    }
    // The end is stable: asking again gives the same answer.
    match read_one(&mut rx, way) {
        Err(e) if err_name(&e) == end => Ok(()),
        other => Err(format!("second end: {other:?}, expected {end}")),
    }
}

#[test]
fn every_vector_reads_as_its_expect_file_says() {
    let dir = vectors_dir();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|f| f.strip_suffix(".bin").map(str::to_string))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no vectors in {}", dir.display());

    let mut failures = vec![];
    for name in &names {
        let bin = dir.join(format!("{name}.bin"));
        let text = fs::read_to_string(dir.join(format!("{name}.expect")))
            .unwrap_or_else(|e| panic!("{name}.bin has no readable {name}.expect: {e}"));
        let expect = parse_expect(&text);
        let ways: &[Way] = if expect.open == "ok" {
            &[Way::Read, Way::ReadInto, Way::Peek]
        } else {
            &[Way::Read] // the open fails: there is nothing to read
        };
        for &way in ways {
            if let Err(why) = check(&bin, name, &expect, way) {
                failures.push(format!("{name} ({way:?}): {why}"));
            }
        }
    }
    // Every .expect belongs to a .bin.
    for f in fs::read_dir(&dir).unwrap() {
        let f = f.unwrap().file_name().into_string().unwrap();
        if let Some(stem) = f.strip_suffix(".expect") {
            assert!(names.iter().any(|n| n == stem), "{f} has no {stem}.bin");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors disagree:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
    eprintln!("{} vectors checked", names.len());
}

#[test]
fn the_expect_parser_reads_the_documented_format() {
    let e = parse_expect("# comment\n\nopen ok\nmsg 00ff\nmsg -\nend EPIPE\n");
    assert_eq!(
        e,
        Expect {
            open: "ok".into(),
            msgs: vec![vec![0, 255], vec![]],
            end: Some("EPIPE".into()),
        }
    );
    let e = parse_expect("open EPROTO\n");
    assert_eq!((e.open.as_str(), e.msgs.len(), e.end), ("EPROTO", 0, None));
}
