//! Monitoring: counters and state of a channel, and the read-only observer handle.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shm_channel_sys as sys;

use crate::error::Result;
use crate::handle::Handle;
use crate::OpenOptions;

/// A side's state as recorded in the segment.
///
/// ```
/// use shm_channel::PeerState;
/// # let name = &format!("doc-peer-state-{}", std::process::id());
/// let tx = shm_channel::Producer::create(name)?;
/// let st = tx.stat()?;
/// assert_eq!((st.producer_state, st.consumer_state), (PeerState::Attached, PeerState::None));
/// # drop(tx);
/// # Ok::<(), shm_channel::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerState {
    /// Never attached.
    None,
    /// Attached: alive, or died without closing (see [`Stats::producer_alive`]).
    Attached,
    /// Closed cleanly (for the producer: end-of-stream).
    Closed,
    /// A value this version does not know.
    Other(u32),
}

impl PeerState {
    pub(crate) fn from_raw(v: u32) -> PeerState {
        match v {
            sys::SHM_CHANNEL_PEER_NONE => PeerState::None,
            sys::SHM_CHANNEL_PEER_ATTACHED => PeerState::Attached,
            sys::SHM_CHANNEL_PEER_CLOSED => PeerState::Closed,
            other => PeerState::Other(other),
        }
    }
}

/// A snapshot of a channel's header: sizes, positions, counters and both sides' state.
/// Counters may lag the truth by a little: each side updates its own without locking.
///
/// ```
/// # let name = &format!("doc-stats-{}", std::process::id());
/// let mut tx = shm_channel::Producer::create(name)?;
/// let mut rx = shm_channel::Consumer::open(name)?;
/// tx.write(&[0; 10])?;
/// rx.read(&mut Vec::new())?;
/// let st = rx.stat()?;
/// assert_eq!((st.msgs_written, st.msgs_read, st.bytes_read, st.used), (1, 1, 10, 0));
/// # Ok::<(), shm_channel::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Kind of channel (1: stream).
    pub kind: u32,
    /// Layout version of the segment, `(major, minor)`.
    pub layout_version: (u16, u16),
    /// Ring data bytes.
    pub capacity: u64,
    /// Largest message, in bytes.
    pub max_payload: u64,
    /// Free-running byte position of the writer.
    pub write_pos: u64,
    /// Free-running byte position of the reader.
    pub read_pos: u64,
    /// Bytes written and not yet released (`write_pos - read_pos`).
    pub used: u64,
    /// Messages written.
    pub msgs_written: u64,
    /// Payload bytes written.
    pub bytes_written: u64,
    /// Messages read.
    pub msgs_read: u64,
    /// Payload bytes read.
    pub bytes_read: u64,
    /// Times the writer found the ring full.
    pub full_events: u64,
    /// Times the reader found the ring empty and had to wait.
    pub empty_events: u64,
    /// Futex wake calls made by the producer.
    pub producer_wakes: u64,
    /// Futex wake calls made by the consumer.
    pub consumer_wakes: u64,
    /// Times the producer slept on a futex.
    pub producer_sleeps: u64,
    /// Times the consumer slept on a futex.
    pub consumer_sleeps: u64,
    /// The producer's recorded state.
    pub producer_state: PeerState,
    /// The consumer's recorded state.
    pub consumer_state: PeerState,
    /// Incremented on every producer attach.
    pub producer_epoch: u32,
    /// Incremented on every consumer attach.
    pub consumer_epoch: u32,
    /// A live process holds the producer role.
    pub producer_alive: bool,
    /// A live process holds the consumer role.
    pub consumer_alive: bool,
    /// A live handle other than an observer is attached.
    pub in_use: bool,
    /// Pid of the process that created the segment (informational only).
    pub creator_pid: u32,
    /// When the segment was created.
    pub created: SystemTime,
}

impl Stats {
    pub(crate) fn from_raw(st: &sys::shm_channel_stat_t) -> Stats {
        Stats {
            kind: st.kind,
            layout_version: (st.layout_major, st.layout_minor),
            capacity: st.capacity,
            max_payload: st.max_payload,
            write_pos: st.write_pos,
            read_pos: st.read_pos,
            used: st.used,
            msgs_written: st.msgs_written,
            bytes_written: st.bytes_written,
            msgs_read: st.msgs_read,
            bytes_read: st.bytes_read,
            full_events: st.full_events,
            empty_events: st.empty_events,
            producer_wakes: st.producer_wakes,
            consumer_wakes: st.consumer_wakes,
            producer_sleeps: st.producer_sleeps,
            consumer_sleeps: st.consumer_sleeps,
            producer_state: PeerState::from_raw(st.producer_state),
            consumer_state: PeerState::from_raw(st.consumer_state),
            producer_epoch: st.producer_epoch,
            consumer_epoch: st.consumer_epoch,
            producer_alive: st.producer_alive != 0,
            consumer_alive: st.consumer_alive != 0,
            in_use: st.in_use != 0,
            creator_pid: st.creator_pid,
            created: UNIX_EPOCH + Duration::from_nanos(st.created_ns),
        }
    }
}

/// A read-only view of a channel, for monitoring: it claims no role, so it never gets in
/// the way of the producer or the consumer.
///
/// ```
/// use shm_channel::{Observer, Producer};
/// # let name = &format!("doc-observer-{}", std::process::id());
/// let mut tx = Producer::create(name)?;
/// tx.write(b"queued")?;
/// let obs = Observer::open(name)?;
/// let st = obs.stat()?;
/// assert_eq!(st.msgs_written - st.msgs_read, 1);
/// assert!(st.producer_alive && !st.consumer_alive);
/// # shm_channel::force_unlink(name)?;
/// # Ok::<(), shm_channel::Error>(())
/// ```
#[derive(Debug)]
pub struct Observer {
    h: Handle,
}

impl Observer {
    pub(crate) fn from_handle(h: Handle) -> Observer {
        Observer { h }
    }

    /// Opens the existing channel `name` read-only.
    ///
    /// ```
    /// assert!(shm_channel::Observer::open("doc-observer-missing").is_err());
    /// ```
    pub fn open(name: &str) -> Result<Observer> {
        OpenOptions::new().observer(name)
    }

    /// The channel's name, as given when opening.
    ///
    /// ```
    /// # let name = &format!("doc-observer-name-{}", std::process::id());
    /// # let tx = shm_channel::Producer::create(name)?;
    /// let obs = shm_channel::Observer::open(name)?;
    /// assert_eq!(obs.name(), name);
    /// # drop(obs); drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        self.h.name()
    }

    /// Capacity of the ring, in bytes.
    ///
    /// ```
    /// # let name = &format!("doc-observer-cap-{}", std::process::id());
    /// # let tx = shm_channel::Producer::create(name)?;
    /// let obs = shm_channel::Observer::open(name)?;
    /// assert_eq!(obs.capacity(), shm_channel::DEFAULT_CAPACITY);
    /// # drop(obs); drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.h.capacity()
    }

    /// Largest message the channel carries, in bytes.
    ///
    /// ```
    /// # let name = &format!("doc-observer-max-{}", std::process::id());
    /// # let tx = shm_channel::Producer::create(name)?;
    /// let obs = shm_channel::Observer::open(name)?;
    /// assert_eq!(obs.max_payload(), tx.max_payload());
    /// # drop(obs); drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn max_payload(&self) -> usize {
        self.h.max_payload()
    }

    /// A snapshot of the channel's counters and state.
    ///
    /// ```
    /// # let name = &format!("doc-observer-stat-{}", std::process::id());
    /// # let tx = shm_channel::Producer::create(name)?;
    /// let obs = shm_channel::Observer::open(name)?;
    /// assert_eq!(obs.stat()?.layout_version, (1, 1));
    /// # drop(obs); drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn stat(&self) -> Result<Stats> {
        self.h.stat()
    }
}
