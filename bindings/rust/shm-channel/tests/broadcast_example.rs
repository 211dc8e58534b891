//! The `topic_sensor` example, run as the program it is, against a publisher in this process:
//! it prints every reading, ends at end-of-stream, names both types on a mismatch, and
//! refuses bad arguments with the usage and status 2, opening nothing.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::*;
use shm_channel::{Pod, Publisher};

/// The example binary, built by `cargo test` next to the test binaries.
fn topic_sensor() -> Command {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path: PathBuf = profile_dir.join("examples").join("topic_sensor");
    assert!(
        path.exists(),
        "{} is missing: run the whole `cargo test`",
        path.display()
    );
    let mut c = Command::new(path);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the example on `name` with `args` while `publish` runs here once it has subscribed.
fn run_with(name: &str, args: &[&str], publish: impl FnOnce()) -> Output {
    let child = topic_sensor().arg(name).args(args).spawn().unwrap();
    publish();
    child.wait_with_output().unwrap()
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Xyz([f64; 3]);
// SAFETY: three f64, no padding, every pattern valid.
unsafe impl Pod for Xyz {
    const TYPE_TAG: &'static str = "struct:<3d";
}

#[test]
fn it_prints_every_reading_until_end_of_stream() {
    let name = unique_name("ex-sensor");
    let _c = Cleanup(name.clone());
    let mut tx = Publisher::<f64>::create(&name).unwrap();
    let out = run_with(&name, &[], || {
        wait_until("the example to subscribe", || {
            tx.subscribers().unwrap() == 1
        });
        for v in [21.5, 21.75, 22.0] {
            tx.publish(&v).unwrap();
        }
        drop(tx);
    });
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "reading 1: 21.500\nreading 2: 21.750\nreading 3: 22.000\n\
         end of stream: 3 readings, 0 missed\n"
    );
}

#[test]
fn it_reads_structs_and_samples_the_latest() {
    let name = unique_name("ex-sensor-xyz");
    let _c = Cleanup(name.clone());
    let mut tx = Publisher::<Xyz>::create(&name).unwrap();
    let out = run_with(&name, &["--type", "struct:<3d", "--latest", "1000"], || {
        wait_until("the example to subscribe", || {
            tx.subscribers().unwrap() == 1
        });
        tx.publish(&Xyz([1.0, 2.0, -1.0])).unwrap();
        drop(tx);
    });
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "reading 1: (1.000, 2.000, -1.000)\nend of stream: 1 readings, 0 missed\n"
    );
}

#[test]
fn a_topic_of_another_type_is_an_error_naming_both() {
    let name = unique_name("ex-sensor-type");
    let _c = Cleanup(name.clone());
    let _tx = Publisher::<i64>::create(&name).unwrap();
    let out = run_with(&name, &["--count", "1"], || {});
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("\"f64\"") && err.contains("\"i64\""), "{err}");
}

#[test]
fn bad_arguments_print_the_usage_and_open_nothing() {
    let name = unique_name("ex-sensor-bad");
    for args in [
        &[][..],
        &[name.as_str(), "--type", "f32"],
        &[name.as_str(), "--count"],
        &[name.as_str(), "--count", "x"],
        &[name.as_str(), "--latest", "0"],
        &[name.as_str(), "extra"],
        &[name.as_str(), "--bogus", "1"],
    ] {
        let out = topic_sensor().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("usage: topic_sensor"),
            "{args:?}"
        );
        assert!(!segment_exists(&name), "{args:?} created the topic");
    }
    let out = topic_sensor().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("usage: topic_sensor"));
}
