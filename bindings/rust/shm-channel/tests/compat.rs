//! Compat channels (spec/compat.md) through the safe API: the peer's layout byte for byte,
//! every stream call on a small ring (split records), the errors the layout gives (empty
//! message, EIDRM after a replace, Corrupt for a segment that is not compat). The 2 s bound
//! on a lasting out-of-range index is the C tests' (test_compat_api).

use std::fs;
use std::os::unix::fs::PermissionsExt;

use shm_channel::{compat_unlink, is_segment_removed, Batch, Error, OpenOptions};

fn name(tag: &str) -> String {
    format!("rs-compat-{}-{tag}", std::process::id())
}

fn header(path: &std::path::Path) -> [u32; 4] {
    let b = fs::read(path).unwrap();
    let w = |i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
    [w(0), w(1), w(2), w(3)]
}

#[test]
fn layout_and_every_call() {
    let n = name("layout");
    let path = shm_channel::dir().join(&n);
    let mut tx = OpenOptions::new()
        .compat(true)
        .create(true)
        .capacity(64)
        .producer(&n)
        .unwrap();
    let mut rx = OpenOptions::new().compat(true).consumer(&n).unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), 64 + 16);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(header(&path), [0, 0, 64, 0]);
    tx.write(b"hello").unwrap();
    assert_eq!(&fs::read(&path).unwrap()[16..25], b"\x05\x00\x00\x00hello");
    assert_eq!(header(&path)[0], 9);
    let mut buf = Vec::new();
    rx.read(&mut buf).unwrap();
    assert_eq!(buf, b"hello");
    assert_eq!(tx.max_payload(), 60);
    assert!(
        matches!(tx.write(b""), Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::InvalidInput)
    );
    assert!(matches!(
        tx.write(&[0; 61]),
        Err(Error::MessageTooLarge { .. })
    ));

    for i in 0..300usize {
        let msg: Vec<u8> = (0..1 + (i * 7) % 60).map(|k| (i + k) as u8).collect();
        match i % 3 {
            0 => tx.write(&msg).unwrap(),
            1 => {
                let mut r = tx.reserve(msg.len()).unwrap();
                r.copy_from_slice(&msg);
                r.commit().unwrap();
            }
            _ => {
                let mut b = Batch::new();
                b.push(&msg);
                assert_eq!(tx.write_batch(&b).unwrap(), 1);
            }
        }
        match i % 3 {
            0 => {
                rx.read(&mut buf).unwrap();
                assert_eq!(buf, msg, "message {i}");
            }
            1 => assert_eq!(&*rx.peek().unwrap(), &msg[..], "message {i}"),
            _ => {
                let mut b = Batch::new();
                assert_eq!(rx.read_batch(&mut b, 4).unwrap(), 1);
                assert_eq!(b.iter().next().unwrap(), &msg[..], "message {i}");
            }
        }
    }
    let st = rx.compat_stat().unwrap();
    assert_eq!((st.msgs, st.head, st.torn_loads), (301, st.tail, 0));
    rx.set_timeout(Some(std::time::Duration::ZERO));
    assert!(matches!(rx.read(&mut buf), Err(Error::WouldBlock)));
    assert!(matches!(
        OpenOptions::new().compat(true).consumer(&n),
        Err(Error::Busy)
    ));
    drop((tx, rx));
    assert!(path.exists(), "close never unlinks a compat segment");
    compat_unlink(&n, false).unwrap();
}

#[test]
fn arguments() {
    let n = name("args");
    assert!(OpenOptions::new().compat(true).consumer(&n).is_err()); // never creates
    assert!(OpenOptions::new()
        .compat(true)
        .create(true)
        .consumer(&n)
        .is_err());
    let long = "x".repeat(64);
    assert!(OpenOptions::new()
        .compat(true)
        .create(true)
        .capacity(64)
        .producer(&long)
        .is_err());
    assert!(OpenOptions::new()
        .compat(true)
        .create(true)
        .capacity(1000)
        .producer(&n)
        .is_err());
    let tx = shm_channel::Producer::create(&n).unwrap(); // a stream is not compat
    assert!(matches!(
        OpenOptions::new().compat(true).consumer(&n),
        Err(Error::Corrupt)
    ));
    assert!(matches!(tx.compat_stat(), Err(Error::WrongKind)));
    drop(tx);
    shm_channel::force_unlink(&n).ok();
}

#[test]
fn replace_orphans_the_old_consumer() {
    let n = name("replace");
    let mut tx = OpenOptions::new()
        .compat(true)
        .create(true)
        .capacity(256)
        .producer(&n)
        .unwrap();
    let mut rx = OpenOptions::new().compat(true).consumer(&n).unwrap();
    tx.write(b"old").unwrap();
    drop(tx);
    let mut tx = OpenOptions::new()
        .compat_replace(true)
        .capacity(256)
        .producer(&n)
        .unwrap();
    tx.write(b"new").unwrap();
    let mut buf = Vec::new();
    rx.read(&mut buf).unwrap();
    assert_eq!(buf, b"old");
    let e = rx.read(&mut buf).unwrap_err(); // blocking: ends, does not wait forever
    assert!(is_segment_removed(&e), "{e:?}");
    assert!(rx.compat_stat().unwrap().segment_gone);
    let mut rx2 = OpenOptions::new().compat(true).consumer(&n).unwrap();
    rx2.read(&mut buf).unwrap();
    assert_eq!(buf, b"new");
    drop((tx, rx, rx2));
    compat_unlink(&n, false).unwrap();
}
