//! Services (kind 4): a server and clients, in one process (threads) and across processes.
//!
//! As in cross_process.rs, the test binary runs itself as the child (`service_child`, an
//! ignored test run with `--ignored --exact` and `SHM_RS_SVC_CHILD` naming the scenario);
//! a child to be killed prints a line when it reached that point, then waits on its stdin.
//! States (a request held, a client dead) are established by what the peers report, never
//! by a fixed sleep.

mod common;

use std::env;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use common::*;
use shm_channel::{Client, Error, Producer, Server, ServiceOptions};

const CHILD_ENV: &str = "SHM_RS_SVC_CHILD";
const NAME_ENV: &str = "SHM_RS_SVC_NAME";
const READY: &str = "SHM_RS_SVC_READY";

fn opts(max: usize, clients: u32) -> ServiceOptions {
    let mut o = ServiceOptions::new();
    o.create(true)
        .max_request(max)
        .max_response(max)
        .max_clients(clients);
    o
}

/// Request `i` of client `tag`: tag, number, a body of `i % 200` bytes, CRC-like sum.
fn request(tag: u32, i: u32) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&tag.to_le_bytes());
    m.extend_from_slice(&i.to_le_bytes());
    m.extend((0..i % 200).map(|k| (k as u8) ^ (tag as u8) ^ (i as u8)));
    let sum = m.iter().fold(0u32, |a, &b| a.rotate_left(5) ^ u32::from(b));
    m.extend_from_slice(&sum.to_le_bytes());
    m
}

/// The server's answer: the body reversed after the request's first 8 bytes and its sum;
/// panics if the request's sum is wrong.
fn answer(req: &[u8]) -> Vec<u8> {
    let n = req.len();
    let sum = req[..n - 4]
        .iter()
        .fold(0u32, |a, &b| a.rotate_left(5) ^ u32::from(b));
    assert_eq!(sum.to_le_bytes(), req[n - 4..], "request checksum");
    let mut out = req[..8].to_vec();
    out.extend_from_slice(&req[n - 4..]);
    out.extend(req[8..n - 4].iter().rev());
    out
}

fn errno(e: &Error) -> Option<i32> {
    e.errno()
}

#[test]
fn round_trips_both_ways_copy_and_in_place() {
    let name = unique_name("svc-rt");
    let _clean = Cleanup(name.clone());
    let mut srv = opts(300, 4).server(&name).unwrap();
    let mut cli = Client::open(&name).unwrap();
    assert_eq!(
        (cli.max_request(), cli.max_response(), cli.max_clients()),
        (300, 300, 4)
    );
    thread::scope(|s| {
        s.spawn(|| {
            // copy in, copy out
            let mut buf = Vec::new();
            for _ in 0..3 {
                let id = srv.receive(&mut buf, Some(LONG)).unwrap();
                assert!(srv.respond(id, &answer(&buf)).unwrap());
            }
            // in place both ways
            let r = srv.receive_in_place(Some(LONG)).unwrap();
            let (id, a) = (r.id(), answer(&r));
            drop(r); // released: the answer is still owed
            let mut space = srv.respond_in_place(id, a.len()).unwrap().unwrap();
            space.copy_from_slice(&a);
            space.commit(a.len()).unwrap();
            let r = srv.receive_in_place(Some(LONG)).unwrap();
            let a = answer(&r);
            assert!(r.respond(&a).unwrap());
        });
        for i in [0u32, 1, 288] {
            let req = request(1, i);
            assert_eq!(cli.request(&req, Some(LONG)).unwrap(), answer(&req));
        }
        let req = request(1, 7);
        let got = cli.request_in_place(&req, Some(LONG)).unwrap();
        assert_eq!(&*got, answer(&req).as_slice());
        let req = request(1, 8);
        let mut space = cli.reserve(req.len(), Some(LONG)).unwrap();
        space.copy_from_slice(&req);
        assert_eq!(&*space.send(Some(LONG)).unwrap(), answer(&req).as_slice());
    });
    let st = srv.stats().unwrap();
    assert_eq!((st.requests, st.responses), (5, 5));
}

#[test]
fn sizes_roles_and_kinds_are_checked() {
    let name = unique_name("svc-err");
    let _clean = Cleanup(name.clone());
    let mut srv = opts(16, 2).server(&name).unwrap();
    assert!(matches!(Server::open(&name), Err(Error::Busy)));
    let mut a = Client::open(&name).unwrap();
    let _b = Client::open(&name).unwrap();
    let full = Client::open(&name).unwrap_err();
    assert_eq!(errno(&full), Some(libc::EUSERS), "{full:?}");
    assert!(matches!(
        a.request(&[0; 17], Some(SHORT)),
        Err(Error::MessageTooLarge { len: 17, max: 16 })
    ));
    assert!(matches!(
        srv.receive(&mut Vec::new(), Some(Duration::ZERO)),
        Err(Error::WouldBlock)
    ));
    assert!(matches!(Producer::open(&name), Err(Error::WrongKind)));
    let stream = unique_name("svc-stream");
    let _s = Producer::create(&stream).unwrap();
    assert!(matches!(Client::open(&stream), Err(Error::WrongKind)));
    shm_channel::force_unlink(&stream).unwrap();
    let mut none = Client::create(&unique_name("svc-none")).unwrap();
    assert!(matches!(
        none.wait_server(Some(SHORT)),
        Err(Error::TimedOut)
    ));
    shm_channel::force_unlink(none.name()).unwrap();
}

#[test]
fn a_withdrawn_request_never_runs_and_a_late_answer_is_never_delivered() {
    let name = unique_name("svc-late");
    let _clean = Cleanup(name.clone());
    let mut srv = opts(64, 2).server(&name).unwrap();
    let mut cli = Client::open(&name).unwrap();
    // Not taken: withdrawn; the server never sees it.
    assert!(matches!(
        cli.request(b"never", Some(SHORT)),
        Err(Error::TimedOut)
    ));
    assert!(matches!(
        srv.receive(&mut Vec::new(), Some(Duration::ZERO)),
        Err(Error::WouldBlock)
    ));
    // Taken, answered after the client gave up and sent the next: refused; the next
    // request gets its own answer.
    let (tx, rx) = std::sync::mpsc::channel();
    thread::scope(|s| {
        s.spawn(|| {
            let mut buf = Vec::new();
            let first = srv.receive(&mut buf, Some(LONG)).unwrap();
            tx.send(()).unwrap();
            let second = srv.receive(&mut buf, Some(LONG)).unwrap();
            assert_eq!(buf, b"second");
            assert!(!srv.respond(first, b"stale").unwrap());
            assert!(srv.respond(second, b"fresh").unwrap());
        });
        assert!(matches!(
            cli.request(b"first", Some(Duration::from_millis(200))),
            Err(Error::TimedOut)
        ));
        rx.recv().unwrap(); // the server had taken it: given up, not withdrawn
        assert_eq!(cli.request(b"second", Some(LONG)).unwrap(), b"fresh");
    });
}

#[test]
fn serve_answers_and_drops_until_stopped() {
    let name = unique_name("svc-serve");
    let _clean = Cleanup(name.clone());
    let mut srv = opts(64, 2).server(&name).unwrap();
    let mut cli = Client::open(&name).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|s| {
        let server = s.spawn(|| {
            srv.serve(
                |req| (req != b"drop").then(|| req.to_ascii_uppercase()),
                || stop.load(std::sync::atomic::Ordering::Relaxed),
                Duration::from_millis(20),
            )
        });
        assert_eq!(cli.request(b"abc", Some(LONG)).unwrap(), b"ABC");
        assert!(matches!(
            cli.request(b"drop", Some(Duration::from_millis(200))),
            Err(Error::TimedOut)
        ));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(server.join().unwrap().unwrap(), 2);
    });
}

// ---- across processes ----------------------------------------------------------------------

struct ChildProc {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

fn spawn_child(scenario: &str, name: &str) -> ChildProc {
    let mut child = Command::new(env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "service_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, scenario)
        .env(NAME_ENV, name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, lines) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    ChildProc { child, lines }
}

impl ChildProc {
    /// Waits for the child's line ending with `what`.
    fn wait_line(&mut self, what: &str) {
        loop {
            match self.lines.recv_timeout(LONG) {
                Ok(line) if line.ends_with(what) => return,
                Ok(_) => {}
                Err(e) => {
                    self.child.kill().ok();
                    panic!("no {what:?} line from the child: {e}");
                }
            }
        }
    }

    fn kill(mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the child ended before the kill"
        );
        self.child.kill().unwrap();
        assert_eq!(self.child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    fn succeeded(mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

fn ready_to_die() -> ! {
    println!("{READY}");
    let _ = std::io::stdin().read(&mut [0u8; 1]);
    std::process::exit(3); // no destructors: no close
}

/// The child's side of each scenario below.
#[test]
#[ignore = "the child half of the tests below, which run it with --ignored --exact"]
fn service_child() {
    let scenario = env::var(CHILD_ENV).expect("runs only as the child of a service test");
    let name = env::var(NAME_ENV).unwrap();
    match scenario.as_str() {
        "clients" => {
            // 16 clients on threads, each 40 checksummed requests, every answer checked.
            let clients: Vec<Client> = (0..16).map(|_| Client::open(&name).unwrap()).collect();
            println!("joined");
            thread::scope(|s| {
                for (k, mut c) in clients.into_iter().enumerate() {
                    s.spawn(move || {
                        let tag = std::process::id() * 100 + k as u32;
                        c.wait_server(Some(LONG)).unwrap();
                        for i in 0..40 {
                            let req = request(tag, i);
                            assert_eq!(c.request(&req, Some(LONG)).unwrap(), answer(&req));
                        }
                    });
                }
            });
        }
        "hold-server" => {
            let mut srv = opts(64, 4).server(&name).unwrap();
            let _held = srv.receive(&mut Vec::new(), Some(LONG)).unwrap();
            ready_to_die();
        }
        "hold-client" => {
            let mut c = Client::open(&name).unwrap();
            let e = c.request(b"hold me", None).unwrap_err();
            panic!("the held request ended: {e:?}");
        }
        other => panic!("unknown scenario {other}"),
    }
}

#[test]
fn sixty_four_clients_in_four_processes() {
    let name = unique_name("svc-64");
    let _clean = Cleanup(name.clone());
    let mut srv = opts(256, 64).server(&name).unwrap();
    let mut children: Vec<ChildProc> = (0..4).map(|_| spawn_child("clients", &name)).collect();
    for c in &mut children {
        c.wait_line("joined");
    }
    assert_eq!(srv.stats().unwrap().live_clients, 64);
    let mut buf = Vec::new();
    for _ in 0..64 * 40 {
        let id = srv.receive(&mut buf, Some(LONG)).unwrap();
        assert!(srv.respond(id, &answer(&buf)).unwrap());
    }
    for c in children {
        c.succeeded();
    }
    assert_eq!(srv.stats().unwrap().responses, 64 * 40);
}

#[test]
fn a_dead_server_is_reported_and_a_new_one_takes_over() {
    let name = unique_name("svc-sdead");
    let _clean = Cleanup(name.clone());
    let mut pending = opts(64, 4).client(&name).unwrap();
    let mut idle = Client::open(&name).unwrap();
    let mut child = spawn_child("hold-server", &name);
    thread::scope(|s| {
        let waiting = s.spawn(|| pending.request(b"held", Some(LONG)));
        child.wait_line(READY); // it holds the request, unanswered
        child.kill();
        assert!(matches!(waiting.join().unwrap(), Err(Error::PeerDied)));
    });
    assert!(matches!(
        idle.request(b"new", Some(LONG)),
        Err(Error::PeerDied)
    ));
    let mut srv = Server::open(&name).unwrap();
    thread::scope(|s| {
        s.spawn(|| {
            let mut buf = Vec::new();
            for _ in 0..2 {
                let id = srv.receive(&mut buf, Some(LONG)).unwrap();
                srv.respond(id, &buf.to_ascii_uppercase()).unwrap();
            }
        });
        assert_eq!(pending.request(b"again", Some(LONG)).unwrap(), b"AGAIN");
        assert_eq!(idle.request(b"new", Some(LONG)).unwrap(), b"NEW");
    });
    assert_eq!(srv.stats().unwrap().server_epoch, 2);
}

#[test]
fn a_client_killed_mid_request_is_reaped_and_its_slot_reused() {
    let name = unique_name("svc-cdead");
    let _clean = Cleanup(name.clone());
    let mut srv = opts(64, 1).server(&name).unwrap();
    let child = spawn_child("hold-client", &name);
    let mut buf = Vec::new();
    let id = srv.receive(&mut buf, Some(LONG)).unwrap();
    assert_eq!(buf, b"hold me");
    child.kill();
    let mut reaped = Vec::new();
    wait_until("the dead client to be reaped", || {
        reaped = srv.reap().unwrap();
        !reaped.is_empty()
    });
    assert_eq!(reaped, [id.client()]);
    assert!(!srv.respond(id, b"too late").unwrap());
    let mut next = Client::open(&name).unwrap(); // max_clients 1: the very slot
    thread::scope(|s| {
        s.spawn(|| {
            let id = srv.receive(&mut buf, Some(LONG)).unwrap();
            srv.respond(id, b"yours").unwrap();
        });
        assert_eq!(next.request(b"mine", Some(LONG)).unwrap(), b"yours");
    });
}

#[test]
fn handles_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Server>();
    assert_send::<Client>();
}
