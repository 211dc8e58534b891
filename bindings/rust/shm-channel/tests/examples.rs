//! The `producer` and `consumer` examples, run as the programs they are: bad arguments print
//! the usage, exit with status 2 and create nothing; good ones move a stream between them.
//!
//! `cargo test` builds the examples next to the test binaries (`target/<profile>/examples`).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The example binary `name`, built by `cargo test` alongside this test.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join(name);
    let built = std::fs::metadata(&path).and_then(|m| m.modified());
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{name}.rs"));
    let edited = std::fs::metadata(&source).unwrap().modified().unwrap();
    assert!(
        built.is_ok_and(|t| t >= edited),
        "{} is missing or older than its source: run the whole `cargo test`, which builds \
         the examples",
        path.display()
    );
    path
}

/// A private segment directory for the examples' channels, removed when dropped.
struct SegDir(PathBuf);

impl SegDir {
    fn new(what: &str) -> SegDir {
        let d = shm_channel::dir().join(format!("rs-examples-{}-{what}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        SegDir(d)
    }

    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    fn command(&self, example_name: &str, args: &[&str]) -> Command {
        let mut c = Command::new(example(example_name));
        c.args(args)
            .env("SHM_CHANNEL_DIR", &self.0)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, example_name: &str, args: &[&str]) -> Output {
        self.command(example_name, args).output().unwrap()
    }
}

impl Drop for SegDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn bad_arguments_print_the_usage_and_create_nothing() {
    let dir = SegDir::new("bad");
    let cases: &[(&str, &[&str])] = &[
        ("producer", &["--name", "x"]),
        ("producer", &["-n"]),
        ("producer", &["demo", "--count"]),
        ("producer", &["demo", "many"]),
        ("producer", &["demo", "10", "-5"]),
        ("producer", &["demo", "1", "2", "4096", "extra"]),
        ("producer", &["demo", "1", "10", "3000"]), // capacity not a power of two
        ("producer", &["demo", "1", "10", "512"]),  // capacity below the minimum
        ("producer", &["demo", "1", "4096", "4096"]), // message larger than the maximum
        ("consumer", &["--name", "x"]),
        ("consumer", &["demo", "abc"]),
        ("consumer", &["demo", "1000"]),
        ("consumer", &["demo", "4096", "extra"]),
    ];
    for (ex, args) in cases {
        let out = dir.run(ex, args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{ex} {args:?}: {err}");
        assert!(
            err.contains(&format!("usage: {ex}")),
            "{ex} {args:?}: {err}"
        );
        assert_eq!(dir.entries(), Vec::<String>::new(), "{ex} {args:?} created");
    }
    for ex in ["producer", "consumer"] {
        for help in ["--help", "-h"] {
            let out = dir.run(ex, &["demo", help]);
            assert!(out.status.success(), "{ex} {help}");
            assert!(text(&out.stdout).starts_with(&format!("usage: {ex}")));
            assert_eq!(dir.entries(), Vec::<String>::new(), "{ex} {help} created");
        }
    }
}

#[test]
fn the_producer_example_streams_to_the_consumer_example() {
    let dir = SegDir::new("good");
    // The consumer creates the channel and waits; the producer joins, sends, ends the stream.
    let consumer = dir
        .command("consumer", &["ex-stream", "65536"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let prod = dir.run("producer", &["ex-stream", "500", "4096", "65536"]);
    assert!(prod.status.success(), "{}", text(&prod.stderr));
    assert!(text(&prod.stdout).contains("sent 500 messages of 4096 B"));
    let cons = consumer.wait_with_output().unwrap();
    assert!(cons.status.success(), "{}", text(&cons.stderr));
    assert!(
        text(&cons.stdout).contains("received 500 messages, 2048000 bytes, in order"),
        "{}",
        text(&cons.stdout)
    );
    assert_eq!(
        dir.entries(),
        Vec::<String>::new(),
        "the finished stream is removed"
    );
}
