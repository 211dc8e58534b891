//! Broadcast topics across the bridge: `--export-topic NAME` (a local subscriber whose every
//! message goes out on Zenoh) and `--import-topic NAME` (a Zenoh subscriber whose every
//! message is published on the local topic of the same name, created with the type tag,
//! depth and maximum size that travel in each message).
//!
//! Neither side ever makes a local publisher wait: topics never do. Losses are counted where
//! they happen, per exporter session:
//!   - `missed`: messages the exporting bridge's local subscriber was lapped by (the library's
//!     missed count, sent along with the next message);
//!   - `lost`: messages dropped between the bridges (a gap in the bridge sequence numbers;
//!     only with `--topic-drop`, where Zenoh drops under congestion instead of blocking the
//!     exporting bridge - which then gets lapped instead, so `missed` grows).
//! So for one exporter session: local messages published after the bridge joined =
//! published on the remote side + `missed` + `lost`.
//!
//! Wire `<prefix>/<NAME>/topic`: u64 session | u64 seq (from 0 per session) | u64 missed just
//! before this message | u8 kind (0 message, 1 end of stream) | u32 depth | u32 max_payload |
//! u16 tag length | tag | payload. All little-endian. `<prefix>/<NAME>/topic/info` (a Zenoh
//! query the exporter answers): depth | max_payload | tag length | tag, as above; the importer
//! asks it at start and creates its local topic with them before any message comes.

use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shm_channel::{Error as ShmError, Publisher, Subscriber, TopicOptions};
use zenoh::qos::CongestionControl;
use zenoh::Wait;

use crate::{log, u64_at, BoxResult, Job};

const KIND_MSG: u8 = 0;
const KIND_END: u8 = 1;
const HEAD: usize = 8 + 8 + 8 + 1 + 10;

pub(crate) fn session_id() -> u64 {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    (t ^ ((std::process::id() as u64) << 32)) | 1
}

fn not_found(e: &ShmError) -> bool {
    matches!(e, ShmError::Io(io) if io.kind() == std::io::ErrorKind::NotFound)
}

/// depth u32 | max_payload u32 | tag length u16 | tag.
fn params(depth: u32, max_payload: u32, tag: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(10 + tag.len());
    v.extend_from_slice(&depth.to_le_bytes());
    v.extend_from_slice(&max_payload.to_le_bytes());
    v.extend_from_slice(&(tag.len() as u16).to_le_bytes());
    v.extend_from_slice(tag.as_bytes());
    v
}

fn parse_params(p: &[u8]) -> Option<(u32, u32, String, usize)> {
    if p.len() < 10 {
        return None;
    }
    let depth = u32::from_le_bytes(p[0..4].try_into().unwrap());
    let max = u32::from_le_bytes(p[4..8].try_into().unwrap());
    let tlen = u16::from_le_bytes(p[8..10].try_into().unwrap()) as usize;
    let tag = String::from_utf8_lossy(p.get(10..10 + tlen)?).into_owned();
    Some((depth, max, tag, 10 + tlen))
}

fn open_publisher(name: &str, depth: u32, max: u32, tag: &str) -> BoxResult<Publisher> {
    let p = TopicOptions::new().create(true).depth(depth).max_payload(max as usize).type_tag(tag).publisher::<[u8]>(name)?;
    log(&format!("import-topic {name}: publishing (depth {depth}, max {max} B, type {tag:?})"));
    Ok(p)
}

/// Local subscriber -> Zenoh. Waits for the topic to exist; forwards until its publisher
/// closes (end of stream, forwarded) or `stop`.
pub(crate) fn exporter(job: Job) -> BoxResult<()> {
    let key = job.key("topic");
    let Job { session, name, a, c, stop } = job;
    let mut sub: Subscriber = loop {
        match TopicOptions::new().subscriber::<[u8]>(&name) {
            Ok(s) => break s,
            Err(e) if not_found(&e) => {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    };
    sub.set_timeout(Some(Duration::from_millis(100)));
    let (depth, max_payload, tag) = (sub.depth(), sub.max_payload() as u32, sub.type_tag().to_owned());
    log(&format!("export-topic {name}: subscribed (depth {depth}, max {max_payload} B, type {tag:?})"));
    // The topic's parameters, for an importer that creates its local topic before any message.
    let info = params(depth, max_payload, &tag);
    let _info = session
        .declare_queryable(format!("{key}/info"))
        .callback(move |q| {
            let _ = q.reply(q.key_expr().clone(), info.clone()).wait();
        })
        .wait()?;
    let cc = if a.topic_drop { CongestionControl::Drop } else { CongestionControl::Block };
    let publisher = session.declare_publisher(key).congestion_control(cc).wait()?;
    let sid = session_id();
    let mut seq = 0u64;
    let mut buf = Vec::new();
    let mut frame = Vec::new();
    let mut send = |kind: u8, missed: u64, payload: &[u8], seq: &mut u64| -> BoxResult<()> {
        frame.clear();
        frame.extend_from_slice(&sid.to_le_bytes());
        frame.extend_from_slice(&seq.to_le_bytes());
        frame.extend_from_slice(&missed.to_le_bytes());
        frame.push(kind);
        frame.extend_from_slice(&params(depth, max_payload, &tag));
        frame.extend_from_slice(payload);
        publisher.put(frame.clone()).wait()?;
        *seq += 1;
        Ok(())
    };
    while !stop.load(Ordering::Relaxed) {
        match sub.next_into(&mut buf) {
            Ok(missed) => {
                send(KIND_MSG, missed, &buf, &mut seq)?;
                c.sent.fetch_add(1, Ordering::Relaxed);
                c.missed.fetch_add(missed, Ordering::Relaxed);
            }
            Err(ShmError::EndOfStream) => {
                send(KIND_END, 0, &[], &mut seq)?;
                log(&format!("export-topic {name}: end of stream forwarded after {seq} messages"));
                // Zenoh has no acknowledgement for a put: give the end time to leave.
                thread::sleep(Duration::from_millis(500));
                return Ok(());
            }
            Err(ShmError::TimedOut | ShmError::WouldBlock | ShmError::Interrupted) => {}
            Err(ShmError::PeerDied) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Zenoh -> local publisher. The publisher is opened (the topic created if absent) with the
/// parameters of the first message; an end of stream closes it and ends this side.
pub(crate) fn importer(job: Job) -> BoxResult<()> {
    let key = job.key("topic");
    let Job { session, name, c, stop, .. } = job;
    let sub = session
        .declare_subscriber(&key)
        .with(zenoh::handlers::FifoChannel::new(1024))
        .wait()?;
    // Create the local topic before the first message, with the exporter's parameters, so
    // that local subscribers can attach first (and a subscriber of another type is refused).
    let mut publ: Option<Publisher> = None;
    let info_key = format!("{key}/info");
    let mut asked = Instant::now() - Duration::from_secs(1);
    let (mut sid, mut next) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        if publ.is_none() && asked.elapsed() >= Duration::from_millis(500) {
            asked = Instant::now();
            let replies = session.get(&info_key).timeout(Duration::from_millis(400)).wait()?;
            if let Ok(r) = replies.recv() {
                if let Some((depth, max, tag, _)) = r.result().ok().and_then(|s| parse_params(&s.payload().to_bytes())) {
                    publ = Some(open_publisher(&name, depth, max, &tag)?);
                }
            }
        }
        let s = match sub.recv_timeout(Duration::from_millis(100))? {
            Some(s) => s,
            None => continue,
        };
        let p = s.payload().to_bytes();
        if p.len() < HEAD {
            continue;
        }
        let (s_id, seq, missed, kind) = (u64_at(&p, 0), u64_at(&p, 8), u64_at(&p, 16), p[24]);
        let Some((depth, max, tag, plen)) = parse_params(&p[25..]) else { continue };
        let payload = &p[25 + plen..];
        if s_id != sid {
            if sid != 0 {
                c.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            log(&format!("import-topic {name}: exporter session {s_id:016x} (first seq {seq})"));
            sid = s_id;
            // A new exporter joined the topic at its newest message: what came before is
            // not a loss of this session.
            next = seq;
        }
        if seq > next {
            c.lost.fetch_add(seq - next, Ordering::Relaxed);
        }
        next = seq + 1;
        c.missed.fetch_add(missed, Ordering::Relaxed);
        if publ.is_none() {
            publ = Some(open_publisher(&name, depth, max, &tag)?);
        }
        if kind == KIND_END {
            drop(publ.take()); // closes: local subscribers read what is held, then end of stream
            log(&format!("import-topic {name}: end of stream forwarded after seq {seq}"));
            return Ok(());
        }
        publ.as_mut().unwrap().publish(payload)?;
        c.written.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
