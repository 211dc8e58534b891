//! Compat channels (spec/compat.md): seed 002's 16-byte-header byte ring.
//!
//! [`OpenOptions::compat`] opens a segment in the layout of seed 002 (`cpp_py_shmbuf`), whose
//! C++ and Python producers and consumers our [`Producer`] and [`Consumer`] then talk to,
//! unchanged, as the safe side of the pair: a torn index from the peer's byte-by-byte
//! stores is refused and read again, and unread records are never overwritten. The stream
//! calls work with the layout's differences:
//!
//! - names of at most [`COMPAT_NAME_MAX`] bytes; the segment is `/dev/shm/<name>`, where
//!   the peer's `shm_open("/<name>")` looks, unless `$SHM_CHANNEL_DIR` points elsewhere;
//! - capacity: a power of two from 8 bytes to 2 GiB; the largest message is capacity - 4;
//! - an empty message is refused (`ErrorKind::InvalidInput`): the peer's consumers stall
//!   forever on one;
//! - reserve and peek of a record split at the wrap go through a copy; nothing is aligned;
//! - a blocked call polls (no futex word exists), sleeping up to 2 ms between polls;
//! - no end-of-stream and no liveness (never [`Error::EndOfStream`] or
//!   [`Error::PeerDied`]): instead, once the segment's name was unlinked (a peer producer
//!   replaced it, or a Python peer's resource tracker removed it) and the ring is drained
//!   (consumer) or full (producer), an `EIDRM` error ([`is_segment_removed`]);
//! - [`Error::Corrupt`] when the peer's index stays out of range for 2 s.
//!
//! ```
//! use shm_channel::OpenOptions;
//! # let name = &format!("doc-compat-{}", std::process::id());
//!
//! let mut tx = OpenOptions::new().compat(true).create(true).capacity(1024).producer(name)?;
//! let mut rx = OpenOptions::new().compat(true).consumer(name)?; // consumers never create
//! tx.write(b"hello")?;
//! let mut buf = Vec::new();
//! rx.read(&mut buf)?;
//! assert_eq!(buf, b"hello");
//! assert!(tx.write(b"").is_err()); // the peer would stall on an empty message
//! assert_eq!(rx.compat_stat()?.msgs, 1);
//! # drop((tx, rx));
//! shm_channel::compat_unlink(name, false)?; // closing never unlinks a compat segment
//! # Ok::<(), shm_channel::Error>(())
//! ```

use shm_channel_sys as sys;

use crate::error::{check, Error, Op, Result};
use crate::handle::Handle;
use crate::{Consumer, OpenOptions, Producer};

/// Longest compat channel name (the peer's limit), not counting a leading `/`.
///
/// ```
/// assert_eq!(shm_channel::COMPAT_NAME_MAX, 63);
/// ```
pub const COMPAT_NAME_MAX: usize = sys::SHM_CHANNEL_COMPAT_NAME_MAX;

impl OpenOptions {
    /// Opens (or with [`create`](Self::create), creates) a compat channel: seed 002's
    /// layout (see the [crate notes](crate#compat-channels) and the list below). A consumer never creates
    /// (`ErrorKind::InvalidInput`). Without [`compat_replace`](Self::compat_replace), an
    /// existing segment is opened and validated, never unlinked. The peer's C++ side creates
    /// mode 0666 minus umask: pass that [`mode`](Self::mode) or
    /// [`allow_foreign`](Self::allow_foreign) to open its segments.
    ///
    /// ```
    /// # let name = &format!("doc-compat-open-{}", std::process::id());
    /// let tx = shm_channel::OpenOptions::new().compat(true).create(true).capacity(64)
    ///     .producer(name)?;
    /// assert_eq!((tx.capacity(), tx.max_payload()), (64, 60));
    /// # drop(tx); shm_channel::compat_unlink(name, true)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn compat(&mut self, compat: bool) -> &mut Self {
        self.set(sys::SHM_CHANNEL_COMPAT, compat);
        if !compat {
            self.set(sys::SHM_CHANNEL_COMPAT_REPLACE, false);
        }
        self
    }

    /// Compat producer: first unlink whatever has the name, then create, as the peer's
    /// producer does (a consumer still attached to the old segment is orphaned: it drains
    /// it, then gets `EIDRM`). Implies [`compat`](Self::compat) and
    /// [`create`](Self::create).
    ///
    /// ```
    /// # let name = &format!("doc-compat-replace-{}", std::process::id());
    /// use shm_channel::OpenOptions;
    /// let old = OpenOptions::new().compat(true).create(true).capacity(64).producer(name)?;
    /// drop(old);
    /// let tx = OpenOptions::new().compat_replace(true).capacity(128).producer(name)?;
    /// assert_eq!(tx.capacity(), 128); // a new segment
    /// # drop(tx); shm_channel::compat_unlink(name, true)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn compat_replace(&mut self, replace: bool) -> &mut Self {
        self.set(sys::SHM_CHANNEL_COMPAT_REPLACE, replace);
        if replace {
            self.set(sys::SHM_CHANNEL_COMPAT | sys::SHM_CHANNEL_CREATE, true);
        }
        self
    }
}

/// A compat handle's view of its channel ([`Producer::compat_stat`],
/// [`Consumer::compat_stat`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompatStats {
    /// Ring data bytes.
    pub capacity: u32,
    /// The segment's head (u32), as this handle last accepted it.
    pub head: u32,
    /// The segment's tail (u32), as this handle last accepted it.
    pub tail: u32,
    /// `head - tail` (u32).
    pub used: u32,
    /// Loads of the peer's index refused as out of range (torn), ever.
    pub torn_loads: u64,
    /// Messages this handle wrote (producer) or read (consumer).
    pub msgs: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Calls that found the ring full (producer) or empty (consumer).
    pub waits: u64,
    /// Sleeps between polls.
    pub sleeps: u64,
    /// The segment's name was found unlinked.
    pub segment_gone: bool,
}

fn compat_stat(h: &Handle) -> Result<CompatStats> {
    let mut st = sys::shm_channel_compat_stat_t::default();
    // SAFETY: `h` is an open handle and `st` a valid out-pointer; the call reads the
    // handle's own fields and the segment's two indices (Handle is not Sync).
    let rc = unsafe { sys::shm_channel_compat_stat(h.raw(), &mut st) };
    check(rc, Op::Other)?;
    Ok(CompatStats {
        capacity: st.capacity,
        head: st.head,
        tail: st.tail,
        used: st.used,
        torn_loads: st.torn_loads,
        msgs: st.msgs,
        bytes: st.bytes,
        waits: st.waits,
        sleeps: st.sleeps,
        segment_gone: st.segment_gone != 0,
    })
}

impl Producer {
    /// Compat channels: this handle's view ([`CompatStats`]); [`Error::WrongKind`] on a
    /// stream.
    ///
    /// ```
    /// # let name = &format!("doc-compat-pstat-{}", std::process::id());
    /// let mut tx = shm_channel::OpenOptions::new().compat(true).create(true).capacity(64)
    ///     .producer(name)?;
    /// tx.write(b"abc")?;
    /// let st = tx.compat_stat()?;
    /// assert_eq!((st.head, st.tail, st.msgs), (7, 0, 1));
    /// # drop(tx); shm_channel::compat_unlink(name, true)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn compat_stat(&self) -> Result<CompatStats> {
        compat_stat(self.handle())
    }
}

impl Consumer {
    /// Compat channels: this handle's view ([`CompatStats`]); [`Error::WrongKind`] on a
    /// stream.
    ///
    /// ```
    /// # let name = &format!("doc-compat-cstat-{}", std::process::id());
    /// # let tx = shm_channel::OpenOptions::new().compat(true).create(true).capacity(64)
    /// #     .producer(name)?;
    /// let rx = shm_channel::OpenOptions::new().compat(true).consumer(name)?;
    /// assert_eq!(rx.compat_stat()?.torn_loads, 0);
    /// # drop((tx, rx)); shm_channel::compat_unlink(name, true)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn compat_stat(&self) -> Result<CompatStats> {
        compat_stat(self.handle())
    }
}

/// Removes compat channel `name`. Without `force`, only a compat segment no handle of this
/// library is attached to ([`Error::Busy`]; the peer's processes cannot be seen), and only
/// if it is one ([`Error::NotAChannel`]).
///
/// ```
/// # let name = &format!("doc-compat-unlink-{}", std::process::id());
/// let tx = shm_channel::OpenOptions::new().compat(true).create(true).capacity(64)
///     .producer(name)?;
/// assert!(matches!(shm_channel::compat_unlink(name, false), Err(shm_channel::Error::Busy)));
/// drop(tx);
/// shm_channel::compat_unlink(name, false)?;
/// # Ok::<(), shm_channel::Error>(())
/// ```
pub fn compat_unlink(name: &str, force: bool) -> Result<()> {
    let name = crate::c_name(name)?;
    let flags = sys::SHM_CHANNEL_COMPAT | if force { sys::SHM_CHANNEL_FORCE } else { 0 };
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let rc = unsafe { sys::shm_channel_unlink(name.as_ptr(), flags) };
    check(rc, Op::Other).map(drop)
}

/// Whether `err` says a compat channel's segment was unlinked under the handle (`EIDRM`):
/// a consumer has read everything left in it, a producer found its ring full. Open the
/// channel again to follow a new segment.
///
/// ```
/// use shm_channel::{is_segment_removed, Error};
/// assert!(is_segment_removed(&Error::Io(std::io::Error::from_raw_os_error(libc::EIDRM))));
/// assert!(!is_segment_removed(&Error::WouldBlock));
/// ```
pub fn is_segment_removed(err: &Error) -> bool {
    err.errno() == Some(libc::EIDRM)
}
