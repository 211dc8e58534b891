//! Topics: broadcast channels (kind 2, spec/broadcast.md) with one [`Publisher`] and any
//! number of [`Subscriber`]s, over raw bytes or a [`Pod`](crate::Pod) type.
//!
//! The publisher never waits: each publish overwrites the oldest of the `depth` messages the
//! topic keeps. A subscriber that keeps up reads every message in order; one that falls
//! behind skips to the oldest message still held and is told exactly how many it missed.
//! Any subscriber can read the newest value in one call, with whether it is new to it.

use std::ffi::CString;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;
use std::{fmt, ptr, slice};

use shm_channel_sys as sys;

use crate::error::{check, Error, Op, Result};
use crate::handle::Handle;
use crate::pod::{AnyBitPattern, Message};
use crate::stats::PeerState;

// ---- options -------------------------------------------------------------------------------

/// Options for opening a topic, in the manner of [`std::fs::OpenOptions`].
///
/// By default a topic is opened only if it exists, with any parameters, and refused if it
/// belongs to another user or is more permissive than mode `0600`. The creation parameters
/// ([`depth`](Self::depth), [`max_payload`](Self::max_payload),
/// [`max_subscribers`](Self::max_subscribers)) are used when creating; when opening an
/// existing topic, those given must match it (`ErrorKind::InvalidInput`).
///
/// ```
/// use shm_channel::{Publisher, Subscriber, TopicOptions};
/// # let name = &format!("doc-topic-options-{}", std::process::id());
///
/// let tx: Publisher = TopicOptions::new()
///     .create(true)
///     .depth(16)
///     .max_payload(1024)
///     .type_tag("str")
///     .publisher(name)?;
/// let rx: Subscriber = TopicOptions::new().from_oldest(true).subscriber(name)?;
/// assert_eq!((rx.depth(), rx.max_payload(), rx.type_tag()), (16, 1024, "str"));
/// # drop((tx, rx));
/// # Ok::<(), shm_channel::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TopicOptions {
    flags: u32,
    mode: u32,
    max_payload: u64,
    depth: u32,
    max_subscribers: u32,
    type_tag: Option<String>,
}

impl Default for TopicOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl TopicOptions {
    /// Options that open an existing topic with any parameters, with mode `0600`.
    pub fn new() -> Self {
        TopicOptions {
            flags: 0,
            mode: 0o600,
            max_payload: 0,
            depth: 0,
            max_subscribers: 0,
            type_tag: None,
        }
    }

    /// Creates the topic if it does not exist. Either side may create it.
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.set(sys::SHM_CHANNEL_CREATE, create);
        if !create {
            self.set(sys::SHM_CHANNEL_EXCL, false);
        }
        self
    }

    /// Creates the topic, failing if the name exists (`ErrorKind::AlreadyExists`).
    pub fn create_new(&mut self, create_new: bool) -> &mut Self {
        self.set(sys::SHM_CHANNEL_EXCL, create_new);
        if create_new {
            self.set(sys::SHM_CHANNEL_CREATE, true);
        }
        self
    }

    /// Messages the topic keeps, 2 to 2^24 (default 8): how far a subscriber may fall
    /// behind before it misses messages, and how long a zero-copy view stays intact
    /// (`depth - 1` further publishes).
    pub fn depth(&mut self, depth: u32) -> &mut Self {
        self.depth = depth;
        self
    }

    /// Largest message in bytes, 1 to 2^31. Default: the size of the type for a typed
    /// topic, 64 for a bytes topic.
    pub fn max_payload(&mut self, bytes: usize) -> &mut Self {
        self.max_payload = bytes as u64;
        self
    }

    /// Entries in the subscriber table: how many subscribers may be attached at once,
    /// 1 to 65536 (default 256).
    pub fn max_subscribers(&mut self, n: u32) -> &mut Self {
        self.max_subscribers = n;
        self
    }

    /// The type tag (1 to 120 printable ASCII bytes) of a **bytes** topic: written when
    /// creating, required when opening ([`Error::TypeMismatch`] otherwise). A typed side
    /// uses its type's [`Pod::TYPE_TAG`](crate::Pod::TYPE_TAG); a different tag here is
    /// `ErrorKind::InvalidInput`.
    pub fn type_tag(&mut self, tag: &str) -> &mut Self {
        self.type_tag = Some(tag.to_owned());
        self
    }

    /// Subscriber: start at the oldest message the topic still holds, not the newest.
    pub fn from_oldest(&mut self, from_oldest: bool) -> &mut Self {
        self.set(sys::SHM_CHANNEL_FROM_OLDEST, from_oldest);
        self
    }

    /// Permission bits of a new segment (default `0o600`).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Accepts a segment owned by another user, or more permissive than the mode asked for.
    pub fn allow_foreign(&mut self, allow: bool) -> &mut Self {
        self.set(sys::SHM_CHANNEL_ALLOW_FOREIGN, allow);
        self
    }

    /// Opens the topic `name` as its publisher, of raw bytes (`Publisher`) or of a
    /// [`Pod`](crate::Pod) type (`Publisher<T>`). A second live publisher gets
    /// [`Error::Busy`]; after one closes or dies, a new one continues the numbering.
    pub fn publisher<T: ?Sized + Message>(&self, name: &str) -> Result<Publisher<T>> {
        let h = self.open::<T>(name, sys::SHM_CHANNEL_PUBLISHER)?;
        let info = TopicInfo::read(&h)?;
        Ok(Publisher {
            h,
            info,
            _t: PhantomData,
        })
    }

    /// Opens the topic `name` as a subscriber (one of up to `max_subscribers`;
    /// [`Error::TooManySubscribers`] beyond). It starts at the newest message (a first read
    /// returns it at once), or at the first if none was published yet, or with
    /// [`from_oldest`](Self::from_oldest) at the oldest still held.
    pub fn subscriber<T: ?Sized + Message>(&self, name: &str) -> Result<Subscriber<T>> {
        let h = self.open::<T>(name, sys::SHM_CHANNEL_SUBSCRIBER)?;
        let info = TopicInfo::read(&h)?;
        Ok(Subscriber {
            h,
            info,
            buf: Vec::new(),
            _t: PhantomData,
        })
    }

    /// The tag this side requires: the type's, or the options' for a bytes topic.
    fn tag<T: ?Sized + Message>(&self) -> Result<&str> {
        if !T::TYPED && T::TAG.is_empty() {
            return Ok(self.type_tag.as_deref().unwrap_or(""));
        }
        match self.type_tag.as_deref() {
            None => Ok(T::TAG),
            Some(t) if t == T::TAG => Ok(T::TAG),
            Some(t) => Err(invalid_input(format!(
                "type tag {t:?} given for a topic of type {:?}",
                T::TAG
            ))),
        }
    }

    fn open<T: ?Sized + Message>(&self, name: &str, role: u32) -> Result<Handle> {
        let tag = self.tag::<T>()?;
        let creating = self.flags & sys::SHM_CHANNEL_CREATE != 0;
        let default_payload = T::default_max_payload().filter(|_| self.max_payload == 0);
        match default_payload {
            // Creating a typed topic with its size as the payload limit: that limit is not
            // the caller's requirement, so an existing topic of the type opens whatever its
            // limit (another language may have created it with a larger one).
            Some(size) if creating && self.flags & sys::SHM_CHANNEL_EXCL == 0 => {
                for _ in 0..8 {
                    let excl = self.flags | sys::SHM_CHANNEL_EXCL;
                    match self.open_raw(name, role, excl, size as u64, tag) {
                        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        other => return other,
                    }
                    let plain = self.flags & !sys::SHM_CHANNEL_CREATE;
                    match self.open_raw(name, role, plain, 0, tag) {
                        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                        other => return other, // else it was removed meanwhile: again
                    }
                }
                Err(Error::WouldBlock)
            }
            Some(size) if creating => self.open_raw(name, role, self.flags, size as u64, tag),
            _ => self.open_raw(name, role, self.flags, self.max_payload, tag),
        }
    }

    fn open_raw(
        &self,
        name: &str,
        role: u32,
        flags: u32,
        max_payload: u64,
        tag: &str,
    ) -> Result<Handle> {
        let c_tag = CString::new(tag).map_err(|_| invalid_input("type tag contains a NUL byte"))?;
        let cfg = sys::shm_channel_broadcast_config_t {
            max_payload,
            depth: self.depth,
            max_subscribers: self.max_subscribers,
            type_tag: if tag.is_empty() {
                ptr::null()
            } else {
                c_tag.as_ptr()
            },
            reserved: [0; 4],
        };
        let mode = self.mode;
        Handle::open_with(name, |out, c_name| {
            // SAFETY: `out` is a valid out-pointer, `c_name` and the tag in `cfg` are
            // NUL-terminated strings, and `cfg` is a valid config; all outlive the call.
            unsafe { sys::shm_channel_open_broadcast(out, c_name, role, flags, &cfg, mode) }
        })
        .map_err(|e| match e {
            Error::TypeMismatch { .. } => Error::TypeMismatch {
                expected: tag.to_owned(),
                found: self
                    .segment_tag(name)
                    .unwrap_or_else(|e| format!("<unknown: {e}>")),
            },
            e => e,
        })
    }

    /// The type tag of the existing topic `name`, read through an observer handle.
    fn segment_tag(&self, name: &str) -> Result<String> {
        let flags = self.flags & sys::SHM_CHANNEL_ALLOW_FOREIGN;
        let mode = self.mode;
        let h = Handle::open_with(name, |out, c_name| {
            // SAFETY: as in open_raw; a NULL config requires nothing.
            unsafe {
                sys::shm_channel_open_broadcast(
                    out,
                    c_name,
                    sys::SHM_CHANNEL_OBSERVER,
                    flags,
                    ptr::null(),
                    mode,
                )
            }
        })?;
        Ok(TopicInfo::read(&h)?.type_tag)
    }

    fn set(&mut self, flag: u32, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

fn invalid_input(msg: impl Into<String>) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        msg.into(),
    ))
}

/// What a handle keeps of the topic's fixed parameters.
#[derive(Clone, Debug)]
struct TopicInfo {
    depth: u32,
    max_payload: usize,
    type_tag: String,
}

impl TopicInfo {
    fn read(h: &Handle) -> Result<TopicInfo> {
        let st = broadcast_stat(h)?;
        Ok(TopicInfo {
            depth: st.depth,
            max_payload: h.max_payload(),
            type_tag: tag_of(&st),
        })
    }
}

fn broadcast_stat(h: &Handle) -> Result<sys::shm_channel_broadcast_stat_t> {
    // SAFETY: plain integers and a char array: all-zero is a valid value.
    let mut st: sys::shm_channel_broadcast_stat_t = unsafe { std::mem::zeroed() };
    // SAFETY: `h` is an open handle and `st` a valid out-pointer; the call only reads the
    // shared header (the handle is not Sync, so no other thread uses it meanwhile).
    let rc = unsafe { sys::shm_channel_broadcast_stat(h.raw(), &mut st) };
    check(rc, Op::Other)?;
    Ok(st)
}

fn tag_of(st: &sys::shm_channel_broadcast_stat_t) -> String {
    let bytes: Vec<u8> = st
        .type_tag
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn sub_stat(h: &Handle, index: i64) -> Result<SubscriberStats> {
    let mut st = sys::shm_channel_sub_stat_t::default();
    // SAFETY: `h` is an open handle and `st` a valid out-pointer; the call only reads.
    let rc = unsafe { sys::shm_channel_sub_stat(h.raw(), index, &mut st) };
    check(rc, Op::Other)?;
    Ok(SubscriberStats::from_raw(&st))
}

fn topic_stat(h: &Handle) -> Result<TopicStats> {
    let b = broadcast_stat(h)?;
    let s = h.stat()?;
    Ok(TopicStats {
        pub_seq: b.pub_seq,
        depth: b.depth,
        max_payload: s.max_payload as usize,
        max_subscribers: b.max_subscribers,
        subscribers: b.subscribers,
        sleepers: b.sleepers,
        joins: b.joins,
        reclaims: b.reclaims,
        type_tag: tag_of(&b),
        msgs_published: s.msgs_written,
        bytes_published: s.bytes_written,
        publisher_wakes: s.producer_wakes,
        publisher_state: s.producer_state,
        publisher_epoch: s.producer_epoch,
        publisher_alive: s.producer_alive,
    })
}

// ---- counters --------------------------------------------------------------------------------

/// A snapshot of a topic's header ([`Publisher::stat`], [`Subscriber::stat`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicStats {
    /// Number of the newest published message (0: none yet). Messages are numbered from 1.
    pub pub_seq: u64,
    /// Messages the topic keeps.
    pub depth: u32,
    /// Largest message, in bytes.
    pub max_payload: usize,
    /// Size of the subscriber table.
    pub max_subscribers: u32,
    /// Subscribers attached, as recorded (a dead one counts until its entry is reclaimed).
    pub subscribers: u32,
    /// Subscribers asleep waiting for a message.
    pub sleepers: u32,
    /// Subscriber joins ever.
    pub joins: u64,
    /// Entries of dead subscribers taken back.
    pub reclaims: u64,
    /// The topic's type tag ("" if untyped).
    pub type_tag: String,
    /// Messages published.
    pub msgs_published: u64,
    /// Payload bytes published.
    pub bytes_published: u64,
    /// Wake-up system calls made by the publisher.
    pub publisher_wakes: u64,
    /// The publisher's recorded state ([`PeerState::Closed`]: end-of-stream).
    pub publisher_state: PeerState,
    /// Incremented by each publisher that attaches.
    pub publisher_epoch: u32,
    /// Whether a live process holds the publisher role.
    pub publisher_alive: bool,
}

/// One subscriber's counters ([`Subscriber::counters`]): exact for the subscriber's own
/// handle.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// Its entry in the subscriber table.
    pub index: u32,
    /// Number of the next message it will read.
    pub next_seq: u64,
    /// Messages delivered intact since it joined.
    pub delivered: u64,
    /// Messages it missed since it joined (skipped after being lapped, or overwritten
    /// while held as a view): its running total.
    pub missed: u64,
    /// Payload bytes delivered.
    pub delivered_bytes: u64,
    /// Published messages it has neither read nor missed yet.
    pub lag: u64,
    /// Times it slept waiting for a message.
    pub sleeps: u64,
    /// Messages skipped just before the last one read or viewed.
    pub last_missed: u64,
}

impl SubscriberStats {
    fn from_raw(st: &sys::shm_channel_sub_stat_t) -> SubscriberStats {
        SubscriberStats {
            index: st.index,
            next_seq: st.next_seq,
            delivered: st.delivered,
            missed: st.missed,
            delivered_bytes: st.delivered_bytes,
            lag: st.lag,
            sleeps: st.sleeps,
            last_missed: st.last_missed,
        }
    }
}

// ---- publisher -------------------------------------------------------------------------------

/// The one writer of a topic, of raw bytes (`Publisher`, i.e. `Publisher<[u8]>`) or of a
/// [`Pod`](crate::Pod) type (`Publisher<T>`).
///
/// Publishing never waits: it overwrites the oldest message the topic keeps, and costs
/// the same with no subscriber or thousands. Dropping (or [`close`](Self::close)) ends the
/// stream: subscribers read what is left, then get [`Error::EndOfStream`]. A publisher
/// that dies without closing is seen as [`Error::PeerDied`].
///
/// `Send`, not `Sync`: it may move between threads, one thread uses it at a time.
///
/// ```
/// use shm_channel::{Publisher, Subscriber};
/// # let name = &format!("doc-publisher-{}", std::process::id());
///
/// let mut tx = Publisher::<f64>::create(name)?; // a topic of f64 values
/// let mut rx = Subscriber::<f64>::open(name)?;  // in real use: other processes
/// tx.publish(&21.5)?;
/// let latest = rx.latest()?.expect("something was published");
/// assert_eq!((latest.value, latest.is_new), (21.5, true));
/// assert!(!rx.latest()?.unwrap().is_new); // the same value, not new any more
/// # Ok::<(), shm_channel::Error>(())
/// ```
pub struct Publisher<T: ?Sized + Message = [u8]> {
    h: Handle,
    info: TopicInfo,
    _t: PhantomData<fn(&T)>,
}

impl<T: ?Sized + Message> Publisher<T> {
    /// Opens the topic `name` as its publisher, creating it (with the default depth 8 and
    /// a payload of the type's size, or 64 bytes for a bytes topic) if it does not exist.
    pub fn create(name: &str) -> Result<Self> {
        TopicOptions::new().create(true).publisher(name)
    }

    /// Opens the existing topic `name` as its publisher.
    pub fn open(name: &str) -> Result<Self> {
        TopicOptions::new().publisher(name)
    }

    /// The topic's name, as given when opening.
    pub fn name(&self) -> &str {
        self.h.name()
    }

    /// Largest message the topic carries, in bytes.
    pub fn max_payload(&self) -> usize {
        self.info.max_payload
    }

    /// Messages the topic keeps.
    pub fn depth(&self) -> u32 {
        self.info.depth
    }

    /// The topic's type tag ("" if untyped).
    pub fn type_tag(&self) -> &str {
        &self.info.type_tag
    }

    /// Publishes one message: a copy of `msg`. Never waits. Errors:
    /// [`Error::MessageTooLarge`], [`Error::Corrupt`].
    pub fn publish(&mut self, msg: &T) -> Result<()> {
        let bytes = msg.bytes_of();
        // SAFETY: `bytes` is valid for reads of its length for the call; the handle is used
        // by this thread only (&mut self).
        let rc = unsafe {
            sys::shm_channel_write(self.h.raw(), bytes.as_ptr().cast(), bytes.len() as u64, 0)
        };
        if rc == -libc::EMSGSIZE {
            return Err(Error::MessageTooLarge {
                len: bytes.len(),
                max: self.info.max_payload,
            });
        }
        check(rc, Op::Write).map(drop)
    }

    /// Subscribers attached now (a dead one counts until its entry is reclaimed).
    pub fn subscribers(&self) -> Result<u32> {
        Ok(broadcast_stat(&self.h)?.subscribers)
    }

    /// A snapshot of the topic's counters and state.
    ///
    /// ```
    /// # let name = &format!("doc-publisher-stat-{}", std::process::id());
    /// let mut tx = shm_channel::Publisher::<i64>::create(name)?;
    /// tx.publish(&7)?;
    /// let st = tx.stat()?;
    /// assert_eq!((st.pub_seq, st.msgs_published, st.type_tag.as_str()), (1, 1, "i64"));
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn stat(&self) -> Result<TopicStats> {
        topic_stat(&self.h)
    }

    /// Closes the publisher (end-of-stream); the same as dropping it.
    pub fn close(self) {}
}

impl Publisher<[u8]> {
    /// Zero-copy publish: a guard over the slot the next message goes to, `max_payload`
    /// bytes to fill in place, published by [`Loan::commit`]. Never waits. The slot held
    /// the oldest message, which is gone from this call on (an abort, i.e. dropping the
    /// guard, does not bring it back).
    ///
    /// ```
    /// # let name = &format!("doc-publisher-loan-{}", std::process::id());
    /// let mut tx: shm_channel::Publisher = shm_channel::Publisher::create(name)?;
    /// let mut rx: shm_channel::Subscriber = shm_channel::Subscriber::open(name)?;
    /// let mut slot = tx.loan()?;
    /// slot[..5].copy_from_slice(b"hello");
    /// slot.commit(5)?;
    /// assert_eq!(rx.next()?.value, b"hello");
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn loan(&mut self) -> Result<Loan<'_>> {
        let cap = self.info.max_payload;
        let mut p = ptr::null_mut();
        // SAFETY: `p` is a valid out-pointer; the handle is used by this thread only.
        let rc = unsafe { sys::shm_channel_reserve(self.h.raw(), cap as u64, &mut p, 0) };
        check(rc, Op::Write)?;
        assert!(!p.is_null() || cap == 0, "shm_channel_reserve gave NULL");
        let data: &mut [u8] = if p.is_null() {
            &mut []
        } else {
            // SAFETY: on success `p` points at `cap` writable bytes of the reserved slot in
            // our mapping; subscribers only read them (and discard what they read while the
            // slot is being written). The guard borrows the publisher mutably, so the
            // mapping outlives the slice and no other call touches the slot meanwhile.
            unsafe { slice::from_raw_parts_mut(p.cast::<u8>(), cap) }
        };
        Ok(Loan {
            h: &mut self.h,
            data,
            done: false,
        })
    }
}

impl<T: ?Sized + Message> fmt::Debug for Publisher<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("name", &self.h.name())
            .field("depth", &self.info.depth)
            .field("max_payload", &self.info.max_payload)
            .field("type_tag", &self.info.type_tag)
            .finish()
    }
}

/// The slot of the next message, from [`Publisher::loan`]: dereferences to its
/// `max_payload` writable bytes. [`commit`](Self::commit) publishes it; dropping it aborts
/// (the message number is used again by the next publish).
pub struct Loan<'a> {
    h: &'a mut Handle,
    data: &'a mut [u8],
    done: bool,
}

impl Loan<'_> {
    /// Publishes the first `len` bytes of the slot. Errors: `ErrorKind::InvalidInput` when
    /// `len` is larger than the slot.
    pub fn commit(mut self, len: usize) -> Result<()> {
        if len > self.data.len() {
            return Err(invalid_input(format!(
                "commit of {len} bytes in a slot of {}",
                self.data.len()
            )));
        }
        self.done = true;
        // SAFETY: a reservation is outstanding on this handle (made by loan, not yet
        // committed or aborted: `done` was false), used by this thread only.
        check(
            unsafe { sys::shm_channel_commit(self.h.raw(), len as u64) },
            Op::Write,
        )
        .map(drop)
    }

    /// Drops the message unpublished; the same as dropping the guard.
    pub fn abort(self) {}
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if !self.done {
            // SAFETY: the reservation is outstanding (not committed); aborting it is always
            // allowed. The slice is not used after this.
            unsafe { sys::shm_channel_abort(self.h.raw()) };
        }
    }
}

impl Deref for Loan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data
    }
}

impl DerefMut for Loan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.data
    }
}

impl fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loan")
            .field("len", &self.data.len())
            .finish()
    }
}

// ---- subscriber ------------------------------------------------------------------------------

/// A message read in order ([`Subscriber::next`], [`Subscriber::recv`]), with how many
/// messages were skipped just before it because the publisher lapped the subscriber.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample<V> {
    /// The message: `Vec<u8>` for a bytes topic, the value for a typed one.
    pub value: V,
    /// Messages missed just before this one (0 while the subscriber keeps up).
    pub missed: u64,
}

/// The newest message ([`Subscriber::latest`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Latest<V> {
    /// The message: `Vec<u8>` for a bytes topic, the value for a typed one.
    pub value: V,
    /// Whether this subscriber had not read it before (seed 000's `is_success`).
    pub is_new: bool,
    /// Messages skipped to reach it (0 when not new).
    pub missed: u64,
}

/// One reader of a topic, of raw bytes (`Subscriber`, i.e. `Subscriber<[u8]>`) or of a
/// [`Pod`](crate::Pod) type (`Subscriber<T>`: opening a topic of another type fails with
/// [`Error::TypeMismatch`], naming both).
///
/// Every message number is accounted for exactly once, as delivered or as missed: a
/// subscriber that keeps up reads every message in order; one the publisher laps skips to
/// the oldest message still held, and [`Sample::missed`] says how many it skipped.
/// [`latest`](Self::latest) reads the newest value at once. After every message is read,
/// reads fail with [`Error::EndOfStream`] (the publisher closed) or [`Error::PeerDied`] (it
/// died); a new publisher may take over, and reading may go on.
///
/// Waiting calls ([`next`](Self::next), [`peek`](Self::peek), the iterator) use the
/// handle's timeout ([`set_timeout`](Self::set_timeout), default: forever).
///
/// `Send`, not `Sync`: it may move between threads, one thread uses it at a time (one
/// subscriber per thread: each has its own position). A `fork()`ed child must not use its
/// parent's subscriber.
///
/// ```
/// use shm_channel::{Error, Publisher, Subscriber, TopicOptions};
/// # let name = &format!("doc-subscriber-{}", std::process::id());
///
/// let mut tx: Publisher = TopicOptions::new().create(true).depth(4).publisher(name)?;
/// let mut rx: Subscriber = Subscriber::open(name)?;
/// for i in 0..10u8 {
///     tx.publish(&[i])?; // the publisher never waits for the subscriber
/// }
/// drop(tx);
/// // The topic keeps the newest 4: the subscriber skipped 6 and is told so.
/// let first = rx.next()?;
/// assert_eq!((first.value, first.missed), (vec![6], 6));
/// let rest: Vec<_> = rx.messages().map(|m| m.unwrap().value[0]).collect();
/// assert_eq!(rest, [7, 8, 9]);
/// assert!(matches!(rx.next(), Err(Error::EndOfStream)));
/// assert_eq!(rx.counters()?.missed, 6);
/// # Ok::<(), shm_channel::Error>(())
/// ```
pub struct Subscriber<T: ?Sized + Message = [u8]> {
    h: Handle,
    info: TopicInfo,
    /// Copy buffer (max_payload bytes once used) that typed and owned reads decode from.
    buf: Vec<u8>,
    _t: PhantomData<fn() -> Box<T>>,
}

impl<T: ?Sized + Message> Subscriber<T> {
    /// Opens the topic `name` as a subscriber, creating it (with the default depth 8 and a
    /// payload of the type's size, or 64 bytes for a bytes topic) if it does not exist.
    pub fn create(name: &str) -> Result<Self> {
        TopicOptions::new().create(true).subscriber(name)
    }

    /// Opens the existing topic `name` as a subscriber.
    ///
    /// ```
    /// use shm_channel::{Error, Publisher, Subscriber};
    /// # let name = &format!("doc-subscriber-mismatch-{}", std::process::id());
    /// let tx = Publisher::<i64>::create(name)?;
    /// let e = Subscriber::<f64>::open(name).unwrap_err();
    /// assert!(matches!(&e, Error::TypeMismatch { expected, found } if expected == "f64" && found == "i64"));
    /// assert_eq!(e.to_string(), r#"type mismatch: this side requires "f64", the topic carries "i64""#);
    /// # drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self> {
        TopicOptions::new().subscriber(name)
    }

    /// The topic's name, as given when opening.
    pub fn name(&self) -> &str {
        self.h.name()
    }

    /// Largest message the topic carries, in bytes.
    pub fn max_payload(&self) -> usize {
        self.info.max_payload
    }

    /// Messages the topic keeps.
    pub fn depth(&self) -> u32 {
        self.info.depth
    }

    /// The topic's type tag ("" if untyped).
    pub fn type_tag(&self) -> &str {
        &self.info.type_tag
    }

    /// Sets how long waiting calls wait for a message: `None` (the default) waits forever,
    /// `Some(Duration::ZERO)` never waits ([`Error::WouldBlock`]), otherwise at most that
    /// long ([`Error::TimedOut`]).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.h.set_timeout(timeout)
    }

    /// The timeout set by [`set_timeout`](Self::set_timeout).
    pub fn timeout(&self) -> Option<Duration> {
        self.h.timeout()
    }

    /// Sets how long a waiting call spins before sleeping on a futex (default 20 µs).
    pub fn set_spin(&mut self, spin: Duration) -> Result<()> {
        self.h.set_spin(spin)
    }

    /// The next message in order, waiting for it (the handle's timeout). Errors:
    /// [`Error::EndOfStream`], [`Error::PeerDied`], [`Error::WouldBlock`],
    /// [`Error::TimedOut`], [`Error::Interrupted`], [`Error::Corrupt`],
    /// [`Error::InvalidValue`] (typed: the message is not a value of the type; it is
    /// consumed).
    #[allow(clippy::should_implement_trait)] // `messages()` is the iterator
    pub fn next(&mut self) -> Result<Sample<T::Owned>> {
        let timeout = self.h.timeout_ns();
        self.recv_ns(timeout)
    }

    /// [`next`](Self::next) waiting at most `timeout` (zero: never wait) instead of the
    /// handle's timeout.
    ///
    /// ```
    /// use shm_channel::{Error, Subscriber};
    /// use std::time::Duration;
    /// # let name = &format!("doc-subscriber-recv-{}", std::process::id());
    /// let mut rx = Subscriber::<bool>::create(name)?;
    /// assert!(matches!(rx.recv(Duration::ZERO), Err(Error::WouldBlock)));
    /// assert!(matches!(rx.recv(Duration::from_millis(5)), Err(Error::TimedOut)));
    /// # drop(rx); shm_channel::force_unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn recv(&mut self, timeout: Duration) -> Result<Sample<T::Owned>> {
        self.recv_ns(i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX))
    }

    fn recv_ns(&mut self, timeout_ns: i64) -> Result<Sample<T::Owned>> {
        let cap = self.info.max_payload;
        let missed = recv_into(&mut self.h, &mut self.buf, cap, timeout_ns)?;
        Ok(Sample {
            value: T::decode(&self.buf)?,
            missed,
        })
    }

    /// The newest message, never waiting: `None` if nothing was published yet. `is_new`
    /// says whether this subscriber had not read it before; a later [`next`](Self::next)
    /// continues after it. Seed 000's `subscribe() -> (value, is_success)`.
    pub fn latest(&mut self) -> Result<Option<Latest<T::Owned>>> {
        let cap = self.info.max_payload;
        self.buf.clear();
        self.buf.reserve_exact(cap);
        let (mut len, mut is_new, mut missed) = (0u64, 0i32, 0u64);
        let mut again = true;
        let rc = loop {
            // SAFETY: the library writes at most `cap` (<= the buffer's capacity) bytes into
            // the spare capacity of the empty buffer and sets the three outputs; the handle
            // is used by this thread only.
            let rc = unsafe {
                sys::shm_channel_read_latest(
                    self.h.raw(),
                    self.buf.as_mut_ptr().cast(),
                    cap as u64,
                    &mut len,
                    &mut is_new,
                    &mut missed,
                )
            };
            match self.nothing_published(rc, &mut again)? {
                Some(true) => return Ok(None),
                Some(false) => continue,
                None => break rc,
            }
        };
        check(rc, Op::Read)?;
        let len = len as usize;
        assert!(len <= cap, "shm_channel_read_latest overran its buffer");
        // SAFETY: on success the library wrote the first `len` bytes (checked above).
        unsafe { self.buf.set_len(len) };
        Ok(Some(Latest {
            value: T::decode(&self.buf)?,
            is_new: is_new != 0,
            missed,
        }))
    }

    /// Zero-copy [`next`](Self::next): a view of the next message in place, until the
    /// guard is released. It stays intact for at least `depth - 1` further publishes;
    /// [`View::release`] says whether it did ([`Error::Overwritten`]).
    pub fn peek(&mut self) -> Result<View<'_, T>> {
        let mut p = ptr::null();
        let mut len = 0u64;
        // SAFETY: `p` and `len` are valid out-pointers; the handle is used by this thread
        // only (&mut self).
        let rc =
            unsafe { sys::shm_channel_peek(self.h.raw(), &mut p, &mut len, self.h.timeout_ns()) };
        check(rc, Op::Read)?;
        let missed = match sub_stat(&self.h, -1) {
            Ok(st) => st.last_missed,
            Err(e) => {
                // SAFETY: a view is held (peek succeeded); releasing it is always allowed.
                unsafe { sys::shm_channel_release(self.h.raw()) };
                return Err(e);
            }
        };
        // SAFETY: peek succeeded: `p`/`len` are a view inside our mapping.
        unsafe { View::new(&mut self.h, p, len, missed, true, self.info.max_payload) }
    }

    /// Zero-copy [`latest`](Self::latest): a view of the newest message in place, never
    /// waiting; `None` if nothing was published yet.
    ///
    /// ```
    /// # let name = &format!("doc-subscriber-peek-latest-{}", std::process::id());
    /// let mut tx = shm_channel::Publisher::<i64>::create(name)?;
    /// let mut rx = shm_channel::Subscriber::<i64>::open(name)?;
    /// assert!(rx.peek_latest()?.is_none());
    /// tx.publish(&42)?;
    /// let view = rx.peek_latest()?.unwrap();
    /// assert_eq!((*view, view.is_new()), (42, true));
    /// view.release()?; // Ok: it was not overwritten while held
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn peek_latest(&mut self) -> Result<Option<View<'_, T>>> {
        let mut p = ptr::null();
        let (mut len, mut is_new, mut missed) = (0u64, 0i32, 0u64);
        let mut again = true;
        let rc = loop {
            // SAFETY: valid out-pointers; the handle is used by this thread only.
            let rc = unsafe {
                sys::shm_channel_peek_latest(
                    self.h.raw(),
                    &mut p,
                    &mut len,
                    &mut is_new,
                    &mut missed,
                )
            };
            match self.nothing_published(rc, &mut again)? {
                Some(true) => return Ok(None),
                Some(false) => continue,
                None => break rc,
            }
        };
        check(rc, Op::Read)?;
        let max = self.info.max_payload;
        // SAFETY: peek_latest succeeded: `p`/`len` are a view inside our mapping.
        unsafe { View::new(&mut self.h, p, len, missed, is_new != 0, max) }.map(Some)
    }

    /// After a latest call returned `rc`: `Some(true)` if it found nothing because nothing
    /// was published yet, `Some(false)` to try once more, `None` to report `rc`.
    ///
    /// `-EAGAIN` from a latest call means nothing was published yet, or the publisher
    /// overwrote every copy. The two are told apart by loading `pub_seq` after the call:
    /// `pub_seq` never decreases, so 0 now means 0 throughout the call (nothing published:
    /// `None` is the truth). Non-zero means a message came during or after the call: one
    /// more call returns it, or `-EAGAIN` again only if every copy was overwritten, which
    /// is then reported ([`Error::WouldBlock`]).
    fn nothing_published(&self, rc: i32, again: &mut bool) -> Result<Option<bool>> {
        if rc != -libc::EAGAIN {
            return Ok(None);
        }
        if broadcast_stat(&self.h)?.pub_seq == 0 {
            return Ok(Some(true));
        }
        if std::mem::take(again) {
            return Ok(Some(false));
        }
        Ok(None)
    }

    /// Iterator over the messages in order, waiting for each (the handle's timeout), until
    /// end-of-stream. A [`Error::PeerDied`] or [`Error::Corrupt`] is yielded once, then the
    /// iterator ends; [`Error::WouldBlock`], [`Error::TimedOut`], [`Error::Interrupted`]
    /// and [`Error::InvalidValue`] are yielded and it may go on.
    pub fn messages(&mut self) -> Messages<'_, T> {
        Messages {
            rx: self,
            done: false,
        }
    }

    /// This subscriber's exact counters: delivered, missed (its running total), lag.
    pub fn counters(&self) -> Result<SubscriberStats> {
        sub_stat(&self.h, -1)
    }

    /// A snapshot of the topic's counters and state.
    pub fn stat(&self) -> Result<TopicStats> {
        topic_stat(&self.h)
    }

    /// Leaves the topic; the same as dropping the subscriber.
    pub fn close(self) {}
}

impl Subscriber<[u8]> {
    /// [`next`](Self::next) into `buf` (replacing its contents, growing it to
    /// `max_payload` once and reusing it after): no allocation per message. Returns the
    /// messages missed just before this one.
    ///
    /// ```
    /// # let name = &format!("doc-subscriber-next-into-{}", std::process::id());
    /// let mut tx: shm_channel::Publisher = shm_channel::Publisher::create(name)?;
    /// let mut rx: shm_channel::Subscriber = shm_channel::Subscriber::open(name)?;
    /// tx.publish(b"abc")?;
    /// let mut buf = Vec::new();
    /// assert_eq!(rx.next_into(&mut buf)?, 0);
    /// assert_eq!(buf, b"abc");
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn next_into(&mut self, buf: &mut Vec<u8>) -> Result<u64> {
        let timeout = self.h.timeout_ns();
        recv_into(&mut self.h, buf, self.info.max_payload, timeout)
    }
}

/// shm_channel_recv into `buf` (cleared, grown to `cap`); returns the missed count.
fn recv_into(h: &mut Handle, buf: &mut Vec<u8>, cap: usize, timeout_ns: i64) -> Result<u64> {
    buf.clear();
    buf.reserve_exact(cap);
    let (mut len, mut missed) = (0u64, 0u64);
    // SAFETY: the library writes at most `cap` (<= the capacity) bytes into the spare
    // capacity of the empty buffer and sets `len` and `missed`; the handle is used by this
    // thread only (&mut).
    let rc = unsafe {
        sys::shm_channel_recv(
            h.raw(),
            buf.as_mut_ptr().cast(),
            cap as u64,
            &mut len,
            &mut missed,
            timeout_ns,
        )
    };
    check(rc, Op::Read)?;
    let len = len as usize;
    assert!(len <= cap, "shm_channel_recv overran its buffer");
    // SAFETY: on success the library wrote the first `len` bytes (checked above).
    unsafe { buf.set_len(len) };
    Ok(missed)
}

impl<T: ?Sized + Message> fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("name", &self.h.name())
            .field("depth", &self.info.depth)
            .field("max_payload", &self.info.max_payload)
            .field("type_tag", &self.info.type_tag)
            .field("timeout", &self.h.timeout())
            .finish()
    }
}

impl<'a, T: ?Sized + Message> IntoIterator for &'a mut Subscriber<T> {
    type Item = Result<Sample<T::Owned>>;
    type IntoIter = Messages<'a, T>;

    /// Same as [`Subscriber::messages`].
    fn into_iter(self) -> Messages<'a, T> {
        self.messages()
    }
}

/// Iterator over a subscriber's messages; see [`Subscriber::messages`].
pub struct Messages<'a, T: ?Sized + Message = [u8]> {
    rx: &'a mut Subscriber<T>,
    done: bool,
}

impl<T: ?Sized + Message> Iterator for Messages<'_, T> {
    type Item = Result<Sample<T::Owned>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.rx.next() {
            Ok(m) => Some(Ok(m)),
            Err(Error::EndOfStream) => {
                self.done = true;
                None
            }
            Err(
                e @ (Error::WouldBlock
                | Error::TimedOut
                | Error::Interrupted
                | Error::InvalidValue { .. }),
            ) => Some(Err(e)),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<T: ?Sized + Message> std::iter::FusedIterator for Messages<'_, T> {}

impl<T: ?Sized + Message> fmt::Debug for Messages<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Messages")
            .field("rx", &self.rx)
            .field("done", &self.done)
            .finish()
    }
}

// ---- zero-copy view --------------------------------------------------------------------------

/// A message in place in the topic, from [`Subscriber::peek`] or
/// [`Subscriber::peek_latest`]: [`bytes`](Self::bytes) always, and it dereferences to `[u8]`
/// (bytes topic) or to the value (a type every bit pattern of which is a value,
/// [`AnyBitPattern`]).
///
/// The publisher does not wait for it: a view stays intact for at least `depth - 1`
/// further publishes. [`release`](Self::release) says whether it did: if not
/// ([`Error::Overwritten`]), what was read may be torn, and the message counts as missed.
/// Dropping the guard releases it too, without the verdict.
pub struct View<'a, T: ?Sized + Message = [u8]> {
    h: &'a mut Handle,
    data: &'a [u8],
    missed: u64,
    is_new: bool,
    released: bool,
    _t: PhantomData<fn() -> Box<T>>,
}

impl<'a, T: ?Sized + Message> View<'a, T> {
    /// # Safety
    /// A view is held on `h` (peek or peek_latest just succeeded) and `p`/`len` are it.
    unsafe fn new(
        h: &'a mut Handle,
        p: *const std::ffi::c_void,
        len: u64,
        missed: u64,
        is_new: bool,
        max: usize,
    ) -> Result<View<'a, T>> {
        assert!(len as usize <= max, "a view longer than max_payload");
        let data: &[u8] = if p.is_null() || len == 0 {
            &[]
        } else {
            // SAFETY: the library's view: `len` bytes inside our mapping, 8-byte aligned.
            // The guard borrows the handle mutably, so the mapping outlives the slice and
            // no other call releases the view meanwhile. The publisher may overwrite the
            // bytes while they are held (a seqlock); every byte pattern is a valid u8, and
            // release reports it.
            unsafe { slice::from_raw_parts(p.cast::<u8>(), len as usize) }
        };
        let view: View<'a, T> = View {
            h,
            data,
            missed,
            is_new,
            released: false,
            _t: PhantomData,
        };
        view.check_shape()?; // a bad message is released (dropped) and reported
        Ok(view)
    }

    /// Typed or text: the view is a value of the type (as of now: a copy is checked).
    fn check_shape(&self) -> Result<()> {
        if !T::TYPED && T::TAG.is_empty() {
            return Ok(());
        }
        // Decode checks the size and the bit pattern (on a copy, as of now).
        T::decode(self.data).map(drop)
    }

    /// The message's bytes, in place.
    pub fn bytes(&self) -> &[u8] {
        self.data
    }

    /// A copy of the message as an owned value (checked again, now).
    pub fn value(&self) -> Result<T::Owned> {
        T::decode(self.data)
    }

    /// Messages skipped just before this one.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Whether this subscriber had not read the message before (always true for
    /// [`Subscriber::peek`]).
    pub fn is_new(&self) -> bool {
        self.is_new
    }

    /// Releases the view: `Ok` if it stayed intact the whole time it was held (the message
    /// counts as delivered), [`Error::Overwritten`] if the publisher began overwriting it
    /// (what was read may be torn; the message counts as missed).
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        // SAFETY: the view is held (not released yet); the slice is not used after this.
        check(unsafe { sys::shm_channel_release(self.h.raw()) }, Op::Read).map(drop)
    }
}

impl<T: ?Sized + Message> Drop for View<'_, T> {
    fn drop(&mut self) {
        if !self.released {
            // SAFETY: as in release.
            unsafe { sys::shm_channel_release(self.h.raw()) };
        }
    }
}

impl Deref for View<'_, [u8]> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data
    }
}

impl<T: AnyBitPattern> Deref for View<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Checked when the view was made (check_shape): exactly size_of::<T>() bytes.
        assert_eq!(self.data.len(), std::mem::size_of::<T>());
        let p = self.data.as_ptr().cast::<T>();
        assert!(p.is_aligned(), "payload not aligned for the type");
        // SAFETY: size checked at creation, alignment just now; every bit pattern is a T
        // (AnyBitPattern), so even bytes the publisher overwrites meanwhile are a T. The
        // reference borrows the guard, which keeps the mapping and the view.
        unsafe { &*p }
    }
}

impl<T: ?Sized + Message> fmt::Debug for View<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("len", &self.data.len())
            .field("missed", &self.missed)
            .field("is_new", &self.is_new)
            .finish()
    }
}
