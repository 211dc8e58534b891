//! Services across the bridge: `--export-service NAME` (remote clients reach the local server
//! through Zenoh queries) and `--import-service NAME` (a local service whose server is the
//! bridge: each request goes to the exporting machine as a Zenoh query, its answer comes back).
//!
//! The importing side mirrors the remote server's life, so that a local client sees what it
//! would see on one machine. The local server role is held by a child process of the bridge
//! (`shm-channel-bridge svc-proxy`, the same binary): when the remote server dies, the bridge
//! SIGKILLs the child, so local clients get EOWNERDEAD (`PeerDied`); when it closes, the child
//! closes, so they get EPIPE (`ServerClosed`); when a new remote server attaches, a new child
//! attaches (a request sent to the previous one gets ECONNRESET or EOWNERDEAD, never the new
//! server's answer: the library's rule). No remote server yet: no local server either, clients
//! wait for one (ETIMEDOUT at their timeout). A request the remote side could not answer in
//! time (`--service-timeout-ms`, or the exporting bridge unreachable) is dropped: the local
//! client times out, as with a server that never answers.
//!
//! Wire: `<prefix>/<NAME>/svc` queries: payload = the request; reply = u8 status (0 answered,
//! 1 timed out, 2 server died, 3 server closed, 4 server replaced, 5 other error) | state |
//! the answer. `<prefix>/<NAME>/svc/state`, every 100 ms from the exporter: state =
//! max_request u64 | max_response u64 | max_clients u32 | server_state u32 | server_epoch u32 |
//! server_alive u32 (all LE; server_state as enum shm_channel_peer_state).
//! Between the importer and its child: requests u32 client | u64 seq | u32 len | bytes (child
//! stdout); answers u32 client | u64 seq | u8 action (0 respond, 1 drop, 2 close, 3 die) |
//! u32 len | bytes (child stdin). The child exits without closing (a death) on `die` and when
//! its stdin ends (the bridge died).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use shm_channel::{Client, Error as ShmError, ServiceOptions, ServiceStats};
use zenoh::Wait;

use crate::{log, u64_at, Args, BoxResult, Counters, Job};

const WORKERS: usize = 4;
const STATE_LEN: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    max_request: u64,
    max_response: u64,
    max_clients: u32,
    server_state: u32,
    epoch: u32,
    alive: bool,
}

impl State {
    fn of(s: &ServiceStats) -> State {
        State {
            max_request: s.max_request,
            max_response: s.max_response,
            max_clients: s.max_clients,
            server_state: s.server_state,
            epoch: s.server_epoch,
            alive: s.server_alive != 0,
        }
    }

    fn bytes(&self) -> [u8; STATE_LEN] {
        let mut b = [0u8; STATE_LEN];
        b[0..8].copy_from_slice(&self.max_request.to_le_bytes());
        b[8..16].copy_from_slice(&self.max_response.to_le_bytes());
        b[16..20].copy_from_slice(&self.max_clients.to_le_bytes());
        b[20..24].copy_from_slice(&self.server_state.to_le_bytes());
        b[24..28].copy_from_slice(&self.epoch.to_le_bytes());
        b[28..32].copy_from_slice(&(self.alive as u32).to_le_bytes());
        b
    }

    fn parse(b: &[u8]) -> Option<State> {
        let u = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        (b.len() >= STATE_LEN).then(|| State {
            max_request: u64_at(b, 0),
            max_response: u64_at(b, 8),
            max_clients: u(16),
            server_state: u(20),
            epoch: u(24),
            alive: u(28) != 0,
        })
    }

    /// 0: no server yet; 1: alive; 2: gone (died or closed). Within an epoch it only grows.
    fn rank(&self) -> u8 {
        match (self.server_state, self.alive) {
            (1, true) => 1,
            (1, false) | (2, _) => 2,
            _ => 0,
        }
    }

    fn describe(&self) -> &'static str {
        match (self.server_state, self.alive) {
            (1, true) => "alive",
            (1, false) => "dead",
            (2, _) => "closed",
            _ => "none yet",
        }
    }
}

fn not_found(e: &ShmError) -> bool {
    matches!(e, ShmError::Io(io) if io.kind() == std::io::ErrorKind::NotFound)
}

fn status_of(e: &ShmError) -> u8 {
    match e {
        ShmError::TimedOut | ShmError::WouldBlock | ShmError::Interrupted => 1,
        ShmError::PeerDied => 2,
        ShmError::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe => 3,
        ShmError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionReset => 4,
        _ => 5,
    }
}

// ---- exporting side ------------------------------------------------------------------------

fn open_client(name: &str, stop: &AtomicBool) -> BoxResult<Option<Client>> {
    loop {
        match ServiceOptions::new().client(name) {
            Ok(c) => return Ok(Some(c)),
            Err(e) if not_found(&e) => {
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Remote clients -> the local server: a Zenoh queryable served by `WORKERS` local clients
/// (one request in flight each), and the server's state every 100 ms.
pub(crate) fn exporter(job: Job) -> BoxResult<()> {
    let key = job.key("svc");
    let Job { session, name, a, c, stop } = job;
    let Some(watch) = open_client(&name, &stop)? else { return Ok(()) };
    let (qtx, qrx) = mpsc::channel::<zenoh::query::Query>();
    let qrx = Arc::new(Mutex::new(qrx));
    let _queryable = session
        .declare_queryable(&key)
        .callback(move |q| {
            let _ = qtx.send(q);
        })
        .wait()?;
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (qrx, c, stop, a, name) = (qrx.clone(), c.clone(), stop.clone(), a.clone(), name.clone());
        let mut cl = ServiceOptions::new().client(&name)?;
        workers.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let q = match qrx.lock().unwrap().recv_timeout(Duration::from_millis(100)) {
                    Ok(q) => q,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                let req = q.payload().map(|p| p.to_bytes().into_owned()).unwrap_or_default();
                c.requests.fetch_add(1, Ordering::Relaxed);
                let (status, body) = match cl.request(&req, Some(a.service_timeout)) {
                    Ok(v) => (0u8, v),
                    Err(e) => (status_of(&e), Vec::new()),
                };
                if status != 0 {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                }
                let st = cl.stats().map(|s| State::of(&s).bytes()).unwrap_or([0; STATE_LEN]);
                let mut reply = Vec::with_capacity(1 + STATE_LEN + body.len());
                reply.push(status);
                reply.extend_from_slice(&st);
                reply.extend_from_slice(&body);
                let _ = q.reply(q.key_expr().clone(), reply).wait();
                c.sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let state_pub = session.declare_publisher(format!("{key}/state")).wait()?;
    let mut last: Option<State> = None;
    log(&format!("export-service {name}: serving remote clients on {key}"));
    while !stop.load(Ordering::Relaxed) {
        if let Ok(s) = watch.stats() {
            let st = State::of(&s);
            if last != Some(st) {
                log(&format!("export-service {name}: server {} (epoch {})", st.describe(), st.epoch));
                last = Some(st);
            }
            state_pub.put(st.bytes().to_vec()).wait()?;
        }
        thread::sleep(Duration::from_millis(100));
    }
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

// ---- importing side ------------------------------------------------------------------------

/// What the importer's loop hears: the remote server's state (heartbeats and replies), or that
/// a request to the proxy of generation `.0` ended with the remote server gone (`.1` status).
enum Event {
    State(State),
    Gone(u64, u8),
}

/// The child holding the local server role for one remote server epoch.
struct Proxy {
    child: Child,
    stdin: Arc<Mutex<ChildStdin>>,
    epoch: u32,
    gen: u64,
    live: Arc<AtomicBool>,
    inflight: Arc<AtomicU64>,
}

impl Proxy {
    /// Lets the answers already on their way reach the child first (the remote server answered
    /// them before it died or closed; on one machine their clients would have them), for at
    /// most 1 s.
    fn settle(&self) {
        let t = Instant::now();
        while self.inflight.load(Ordering::Acquire) > 0 && t.elapsed() < Duration::from_secs(1) {
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// The child dies (exits without closing: local clients see EOWNERDEAD) after the answers
    /// already written to it; SIGKILL if it has not within 1 s.
    fn kill(mut self) {
        self.settle();
        self.live.store(false, Ordering::Relaxed);
        let _ = answer(&self.stdin, 0, 0, 3, &[]);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(1) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(1));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn close(mut self) {
        self.settle();
        self.live.store(false, Ordering::Relaxed);
        let _ = answer(&self.stdin, 0, 0, 2, &[]);
        let _ = self.child.wait();
    }
}

fn answer(stdin: &Mutex<ChildStdin>, client: u32, seq: u64, action: u8, data: &[u8]) -> std::io::Result<()> {
    let mut f = Vec::with_capacity(17 + data.len());
    f.extend_from_slice(&client.to_le_bytes());
    f.extend_from_slice(&seq.to_le_bytes());
    f.push(action);
    f.extend_from_slice(&(data.len() as u32).to_le_bytes());
    f.extend_from_slice(data);
    let mut g = stdin.lock().unwrap();
    g.write_all(&f)?;
    g.flush()
}

fn start_proxy(
    session: &zenoh::Session,
    name: &str,
    key: &str,
    st: &State,
    a: &Args,
    c: &Arc<Counters>,
    states: &mpsc::Sender<Event>,
    gen: u64,
) -> BoxResult<Proxy> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["svc-proxy", name])
        .args([st.max_request.to_string(), st.max_response.to_string(), st.max_clients.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdin = Arc::new(Mutex::new(child.stdin.take().unwrap()));
    let mut out = child.stdout.take().unwrap();
    let live = Arc::new(AtomicBool::new(true));
    let inflight = Arc::new(AtomicU64::new(0));
    let (session, key, stdin2, live2, c, states, inflight2) =
        (session.clone(), key.to_owned(), stdin.clone(), live.clone(), c.clone(), states.clone(), inflight.clone());
    let timeout = a.service_timeout + Duration::from_secs(1);
    // One thread reads the child's requests; each request is a Zenoh query in a thread of its
    // own (one per client at most: a client has one request in flight).
    thread::spawn(move || {
        let mut head = [0u8; 16];
        while out.read_exact(&mut head).is_ok() {
            let client = u32::from_le_bytes(head[0..4].try_into().unwrap());
            let seq = u64_at(&head, 4);
            let len = u32::from_le_bytes(head[12..16].try_into().unwrap()) as usize;
            let mut req = vec![0u8; len];
            if out.read_exact(&mut req).is_err() {
                break;
            }
            c.requests.fetch_add(1, Ordering::Relaxed);
            inflight2.fetch_add(1, Ordering::AcqRel);
            let (session, key, stdin, live, c, states, inflight) =
                (session.clone(), key.clone(), stdin2.clone(), live2.clone(), c.clone(), states.clone(), inflight2.clone());
            thread::spawn(move || {
                let reply = session
                    .get(&key)
                    .payload(req)
                    .timeout(timeout)
                    .wait()
                    .ok()
                    .and_then(|r| r.recv().ok())
                    .and_then(|r| r.into_result().ok())
                    .map(|s| s.payload().to_bytes().into_owned());
                let (status, st) = match &reply {
                    Some(r) if r.len() > STATE_LEN => (r[0], State::parse(&r[1..])),
                    _ => (6, None), // no answer: the exporting bridge is unreachable
                };
                if status != 0 {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    log(&format!("import-service {key}: request {client}/{seq}: {}", match status {
                        1 => "the remote server did not answer in time: dropped (the client times out)",
                        2 => "the remote server died",
                        3 => "the remote server closed",
                        4 => "the remote server was replaced",
                        5 => "remote error: dropped",
                        _ => "no answer from the exporting bridge: dropped (the client times out)",
                    }));
                }
                // The answer first (a server that answers, then closes or dies, has answered),
                // then the remote server's fate (which may close or kill the child).
                if live.load(Ordering::Relaxed) {
                    let (action, data) = match (status, &reply) {
                        (0, Some(r)) => (0, &r[1 + STATE_LEN..]),
                        _ => (1, &[][..]),
                    };
                    if answer(&stdin, client, seq, action, data).is_ok() && action == 0 {
                        c.written.fetch_add(1, Ordering::Relaxed);
                    }
                }
                inflight.fetch_sub(1, Ordering::AcqRel);
                if let Some(st) = st {
                    let _ = states.send(Event::State(st));
                }
                if (2..=4).contains(&status) {
                    // The server that had the request is gone: so is ours (if the state did not
                    // already say so), and the client hears it as on one machine.
                    let _ = states.send(Event::Gone(gen, status));
                }
            });
        }
    });
    Ok(Proxy { child, stdin, epoch: st.epoch, gen, live, inflight })
}

/// A local service whose server is this bridge, mirroring the remote server's life.
pub(crate) fn importer(job: Job) -> BoxResult<()> {
    let key = job.key("svc");
    let Job { session, name, a, c, stop } = job;
    let (stx, srx) = mpsc::channel::<Event>();
    let stx2 = stx.clone();
    let _sub = session
        .declare_subscriber(format!("{key}/state"))
        .callback(move |s| {
            if let Some(st) = State::parse(&s.payload().to_bytes()) {
                let _ = stx2.send(Event::State(st));
            }
        })
        .wait()?;
    let mut gen = 0u64;
    let mut seen: Option<(u32, u8)> = None;
    let mut proxy: Option<Proxy> = None;
    let mut created = false;
    let mut heard = Instant::now();
    let mut silent_logged = false;
    while !stop.load(Ordering::Relaxed) {
        if let Some(p) = proxy.as_mut() {
            if let Ok(Some(status)) = p.child.try_wait() {
                log(&format!("import-service {name}: the local server process ended ({status})"));
                proxy = None;
                seen = None;
            }
        }
        let st = match srx.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::State(st)) => st,
            Ok(Event::Gone(g, status)) => {
                if proxy.as_ref().is_some_and(|p| p.gen == g) {
                    let p = proxy.take().unwrap();
                    if status == 3 {
                        p.close();
                    } else {
                        p.kill();
                    }
                    log(&format!("import-service {name}: local server ended: the remote one is gone"));
                    seen = None; // the next state of a live remote server starts another
                }
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {
                if heard.elapsed() > Duration::from_secs(2) && !silent_logged {
                    log(&format!("import-service {name}: no state from the exporting bridge for 2 s"));
                    silent_logged = true;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        heard = Instant::now();
        if silent_logged {
            log(&format!("import-service {name}: exporting bridge heard again"));
            c.reconnects.fetch_add(1, Ordering::Relaxed);
            silent_logged = false;
        }
        if !created {
            // The local service, with the remote one's sizes: local clients can open it now and
            // wait for a server, as on one machine.
            let cl = ServiceOptions::new()
                .create(true)
                .max_request(st.max_request as usize)
                .max_response(st.max_response as usize)
                .max_clients(st.max_clients)
                .client(&name)?;
            drop(cl);
            log(&format!(
                "import-service {name}: local service ready (max request {} B, max response {} B, {} clients)",
                st.max_request, st.max_response, st.max_clients
            ));
            created = true;
        }
        let now = (st.epoch, st.rank());
        if seen.is_some_and(|s| now <= s) {
            continue;
        }
        seen = Some(now);
        log(&format!("import-service {name}: remote server {} (epoch {})", st.describe(), st.epoch));
        match now.1 {
            1 => {
                if let Some(p) = proxy.take() {
                    p.kill();
                }
                gen += 1;
                proxy = Some(start_proxy(&session, &name, &key, &st, &a, &c, &stx, gen)?);
            }
            2 => {
                if proxy.as_ref().is_some_and(|p| p.epoch == st.epoch) {
                    let p = proxy.take().unwrap();
                    if st.server_state == 2 {
                        p.close();
                    } else {
                        p.kill(); // local clients see the server die, as the remote ones did
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(p) = proxy.take() {
        p.close();
    }
    Ok(())
}

/// The child: holds the local server role; requests out on stdout, answers in on stdin.
pub(crate) fn proxy_main(mut it: impl Iterator<Item = String>) -> BoxResult<()> {
    let name = it.next().ok_or("svc-proxy: NAME")?;
    let mut num = || -> BoxResult<u64> { Ok(it.next().ok_or("svc-proxy: sizes")?.parse()?) };
    let (req, resp, clients) = (num()?, num()?, num()?);
    let mut srv = ServiceOptions::new()
        .create(true)
        .max_request(req as usize)
        .max_response(resp as usize)
        .max_clients(clients as u32)
        .server(&name)?;
    type Answer = (u32, u64, u8, Vec<u8>);
    let (tx, rx) = mpsc::channel::<Answer>();
    thread::spawn(move || {
        let mut input = std::io::stdin().lock();
        let mut head = [0u8; 17];
        while input.read_exact(&mut head).is_ok() {
            let len = u32::from_le_bytes(head[13..17].try_into().unwrap()) as usize;
            let mut data = vec![0u8; len];
            if input.read_exact(&mut data).is_err() {
                break;
            }
            let a = (u32::from_le_bytes(head[0..4].try_into().unwrap()), u64_at(&head, 4), head[12], data);
            if tx.send(a).is_err() {
                break;
            }
        }
    });
    let mut out = std::io::stdout().lock();
    let mut pending = HashMap::new();
    let mut buf = Vec::new();
    loop {
        // Answers first; while some are owed, wait for them briefly rather than for requests.
        loop {
            let got = if pending.is_empty() {
                rx.try_recv().map_err(|e| e == TryRecvError::Disconnected)
            } else {
                rx.recv_timeout(Duration::from_micros(100)).map_err(|e| e == RecvTimeoutError::Disconnected)
            };
            match got {
                Ok((client, seq, action, data)) => match action {
                    0 | 1 => {
                        if let Some(id) = pending.remove(&(client, seq)) {
                            if action == 0 {
                                srv.respond(id, &data)?;
                            } else {
                                srv.drop_request(id)?;
                            }
                        }
                    }
                    2 => {
                        drop(srv); // close: waiting clients get EPIPE
                        return Ok(());
                    }
                    // Die: leave without closing (waiting clients see the server die).
                    _ => std::process::exit(3),
                },
                // The bridge is gone: leave without closing (clients see the server die).
                Err(true) => std::process::exit(3),
                Err(false) => break,
            }
        }
        let wait = if pending.is_empty() { Duration::from_millis(20) } else { Duration::ZERO };
        match srv.receive(&mut buf, Some(wait)) {
            Ok(id) => {
                pending.insert((id.client(), id.seq()), id);
                let mut f = Vec::with_capacity(16 + buf.len());
                f.extend_from_slice(&id.client().to_le_bytes());
                f.extend_from_slice(&id.seq().to_le_bytes());
                f.extend_from_slice(&(buf.len() as u32).to_le_bytes());
                f.extend_from_slice(&buf);
                out.write_all(&f)?;
                out.flush()?;
            }
            Err(ShmError::TimedOut | ShmError::WouldBlock | ShmError::Interrupted) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
