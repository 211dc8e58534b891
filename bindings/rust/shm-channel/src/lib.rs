//! Messages between processes on one machine, through POSIX shared memory.
//!
//! A safe API over the `shm_channel` C library (`shm-channel-sys`). A *stream* channel has
//! one [`Producer`] and one [`Consumer`], which may live in different processes and
//! programs written in different languages (C, Python, Rust): messages of 0 bytes up to
//! [`Producer::max_payload`] arrive in order, none is lost, and a full ring makes the
//! writer wait. Either side may start first.
//!
//! ```
//! use shm_channel::{Consumer, Error, Producer};
//!
//! # let name = &format!("doc-crate-{}", std::process::id());
//! let mut tx = Producer::create(name)?; // creates the channel if it does not exist
//! let mut rx = Consumer::create(name)?; // in real use: another process
//!
//! tx.write(b"hello")?;
//! let mut buf = Vec::new();
//! rx.read(&mut buf)?;
//! assert_eq!(buf, b"hello");
//!
//! drop(tx); // closing the producer marks end-of-stream
//! assert!(matches!(rx.read(&mut buf), Err(Error::EndOfStream)));
//! # Ok::<(), shm_channel::Error>(())
//! ```
//!
//! # Waiting
//!
//! Calls that wait for room (writer) or a message (reader) use the handle's timeout, set
//! with [`Producer::set_timeout`] / [`Consumer::set_timeout`]: `None` (the default) waits
//! forever, `Some(Duration::ZERO)` never waits ([`Error::WouldBlock`]), and any other
//! duration waits at most that long ([`Error::TimedOut`]). A blocked call spins briefly,
//! then sleeps on a futex, and never hangs on a peer that died ([`Error::PeerDied`]).
//!
//! # Zero-copy
//!
//! [`Producer::reserve`] hands out writable space inside the ring that is published on
//! [`Reservation::commit`]; [`Consumer::peek`] shows the next message in place until the
//! guard is dropped.
//!
//! # Threads
//!
//! Handles are [`Send`]: they may move between threads. They are not [`Sync`]: the C
//! library allows one thread at a time per handle. Use one handle per thread, or a mutex.
//!
//! ```compile_fail
//! fn shared_between_threads<T: Sync>() {}
//! shared_between_threads::<shm_channel::Producer>(); // error: Producer is not Sync
//! ```
//!
//! Guards borrow their handle, so a reservation or a peeked message cannot outlive it, and
//! the handle cannot be used while one is alive:
//!
//! ```compile_fail
//! # fn f(tx: &mut shm_channel::Producer) -> shm_channel::Result<()> {
//! let space = tx.reserve(8)?;
//! tx.write(b"meanwhile")?; // error: `tx` is already borrowed by `space`
//! space.commit()
//! # }
//! ```
//!
//! # Topics (publish/subscribe)
//!
//! A *topic* (a broadcast channel) has one [`Publisher`] and up to `max_subscribers`
//! [`Subscriber`]s, in any processes and languages. The publisher never waits: the topic
//! keeps the newest `depth` messages ([`TopicOptions::depth`]) and each publish overwrites
//! the oldest. A subscriber reads every message in order while it keeps up
//! ([`Subscriber::next`]); one that falls behind skips to the oldest message held and is told
//! exactly how many it missed ([`Sample::missed`]); [`Subscriber::latest`] reads the newest
//! value at once with whether it is new. Messages are raw bytes (`Publisher`, i.e.
//! `Publisher<[u8]>`) or a plain-old-data type (`Publisher<T>` for `T:` [`Pod`]: `f64`,
//! `i64`, `bool`, or a `#[repr(C)]` type declaring its wire tag); a side of another type
//! gets [`Error::TypeMismatch`] naming both.
//!
//! ```
//! use shm_channel::{Error, Publisher, Subscriber};
//! # let name = &format!("doc-crate-topic-{}", std::process::id());
//!
//! let mut temperature = Publisher::<f64>::create(name)?;
//! let mut display = Subscriber::<f64>::open(name)?; // in real use: other processes
//! let mut logger = Subscriber::<f64>::open(name)?;
//! temperature.publish(&21.5)?;
//! temperature.publish(&21.75)?;
//! assert_eq!(display.latest()?.map(|l| (l.value, l.is_new, l.missed)), Some((21.75, true, 1)));
//! assert_eq!(logger.next()?.value, 21.5); // every reading, in order
//! assert_eq!(logger.next()?.value, 21.75);
//! drop(temperature); // end-of-stream
//! assert!(matches!(logger.next(), Err(Error::EndOfStream)));
//! # Ok::<(), shm_channel::Error>(())
//! ```
//!
//! Zero-copy: [`Publisher::loan`] fills the next slot in place; [`Subscriber::peek`] and
//! [`Subscriber::peek_latest`] give a [`View`] of a message in place, whose
//! [`release`](View::release) says whether the publisher overwrote it while it was held.
//! Publishers and subscribers are [`Send`] and not [`Sync`], like the stream handles: give
//! each thread its own subscriber (each has its own position). Views borrow their
//! subscriber:
//!
//! ```compile_fail
//! fn shared_between_threads<T: Sync>() {}
//! shared_between_threads::<shm_channel::Subscriber<f64>>(); // error: not Sync
//! ```
//!
//! ```compile_fail
//! # fn f(rx: &mut shm_channel::Subscriber) -> shm_channel::Result<()> {
//! let view = rx.peek()?;
//! rx.next()?; // error: `rx` is already borrowed by `view`
//! view.release()
//! # }
//! ```
//!
//! # Segments
//!
//! Channels live in `/dev/shm`, or in the directory named by `$SHM_CHANNEL_DIR`
//! ([`dir`]). The last handle to close a finished stream (end-of-stream, nothing unread)
//! removes it; [`unlink`] and [`force_unlink`] remove a name by hand.
//!
//! # Compat channels
//!
//! [`OpenOptions::compat`] opens a segment in the 16-byte-header layout of seed 002
//! (`cpp_py_shmbuf`), to talk to that project's C++ and Python processes unchanged; the
//! [`Producer`] and [`Consumer`] calls then work with the differences the layout forces
//! (no empty messages, no end-of-stream or liveness, polling waits, copies of records
//! split at the wrap): see the `compat` module's notes on [`OpenOptions::compat`],
//! [`CompatStats`], [`compat_unlink`] and [`is_segment_removed`].
#![deny(missing_docs)]

mod batch;
mod broadcast;
mod compat;
mod consumer;
mod error;
mod handle;
mod options;
mod pod;
mod producer;
mod service;
mod stats;

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use shm_channel_sys as sys;

pub use batch::{Batch, BatchIter};
pub use broadcast::{
    Latest, Loan, Messages as TopicMessages, Publisher, Sample, Subscriber, SubscriberStats,
    TopicOptions, TopicStats, View,
};
pub use compat::{compat_unlink, is_segment_removed, CompatStats, COMPAT_NAME_MAX};
pub use consumer::{Consumer, Messages, Peeked};
pub use error::{Error, Result};
pub use options::OpenOptions;
pub use pod::{AnyBitPattern, Message, Pod};
pub use producer::{Producer, Reservation};
pub use service::{
    Client, Received, RequestId, RequestSpace, Response, ResponseSpace, Server, ServiceOptions,
    ServiceStats,
};
pub use stats::{Observer, PeerState, Stats};

use error::{check, Op};

/// Largest accepted channel name, not counting an optional leading `/`.
///
/// ```
/// assert_eq!(shm_channel::NAME_MAX, 200);
/// ```
pub const NAME_MAX: usize = sys::SHM_CHANNEL_NAME_MAX;

/// Capacity of a channel created without [`OpenOptions::capacity`] (1 MiB).
///
/// ```
/// # let name = &format!("doc-defcap-{}", std::process::id());
/// let tx = shm_channel::Producer::create(name)?;
/// assert_eq!(tx.capacity(), shm_channel::DEFAULT_CAPACITY);
/// # drop(tx);
/// # Ok::<(), shm_channel::Error>(())
/// ```
pub const DEFAULT_CAPACITY: usize = sys::SHM_CHANNEL_DEFAULT_CAPACITY as usize;

/// Smallest ring capacity, in bytes.
///
/// ```
/// assert_eq!(shm_channel::MIN_CAPACITY, 1024);
/// ```
pub const MIN_CAPACITY: usize = sys::SHM_CHANNEL_MIN_CAPACITY as usize;

/// Removes the channel's name, if no live handle is attached ([`Error::Busy`] otherwise).
/// Handles still open keep working on the unnamed segment.
///
/// ```
/// use shm_channel::{unlink, Error, Producer};
/// use std::io::ErrorKind;
/// # let name = &format!("doc-unlink-{}", std::process::id());
///
/// let tx = Producer::create(name)?;
/// assert!(matches!(unlink(name), Err(Error::Busy)));
/// drop(tx); // end-of-stream with nothing unread: the name is removed here...
/// // ...so there is nothing left to unlink.
/// assert!(matches!(unlink(name), Err(Error::Io(e)) if e.kind() == ErrorKind::NotFound));
/// # Ok::<(), shm_channel::Error>(())
/// ```
pub fn unlink(name: &str) -> Result<()> {
    let name = c_name(name)?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    check(
        unsafe { sys::shm_channel_unlink(name.as_ptr(), 0) },
        Op::Other,
    )
    .map(drop)
}

/// Removes the channel's name even while handles are attached; they keep working on the
/// unnamed segment. For cleaning up after processes that died.
///
/// ```
/// # let name = &format!("doc-force-{}", std::process::id());
/// let mut tx = shm_channel::Producer::create(name)?;
/// tx.write(b"never read")?;
/// shm_channel::force_unlink(name)?;
/// tx.write(b"still works")?;
/// # Ok::<(), shm_channel::Error>(())
/// ```
pub fn force_unlink(name: &str) -> Result<()> {
    let name = c_name(name)?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let rc = unsafe { sys::shm_channel_unlink(name.as_ptr(), sys::SHM_CHANNEL_FORCE) };
    check(rc, Op::Other).map(drop)
}

/// The directory segments live in: `$SHM_CHANNEL_DIR` if set, else `/dev/shm`.
///
/// ```
/// let dir = shm_channel::dir();
/// assert!(dir.is_absolute() || std::env::var_os("SHM_CHANNEL_DIR").is_some());
/// ```
pub fn dir() -> PathBuf {
    // SAFETY: the library returns a NUL-terminated string (from the environment or a
    // literal), copied at once, before anything can change the environment.
    let dir = unsafe { CStr::from_ptr(sys::shm_channel_dir()) };
    PathBuf::from(OsStr::from_bytes(dir.to_bytes()))
}

/// Version of the loaded C library, as `(major, minor, patch)`.
///
/// ```
/// let (major, _minor, _patch) = shm_channel::version();
/// assert_eq!(major, 1);
/// ```
pub fn version() -> (u32, u32, u32) {
    // SAFETY: no arguments, no preconditions.
    let v = unsafe { sys::shm_channel_version() };
    (v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// Fails with [`Error::IncompatibleLibrary`] when the loaded library's major version is
/// not the one these bindings were written for (possible with a prebuilt library).
fn check_library() -> Result<()> {
    // SAFETY: no arguments, no preconditions.
    let found = unsafe { sys::shm_channel_version() };
    if found >> 16 == sys::SHM_CHANNEL_VERSION_MAJOR {
        Ok(())
    } else {
        Err(Error::IncompatibleLibrary { found })
    }
}

fn c_name(name: &str) -> Result<CString> {
    CString::new(name).map_err(|_| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "channel name contains a NUL byte",
        ))
    })
}
