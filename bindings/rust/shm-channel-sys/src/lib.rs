//! Raw FFI declarations for `shm_channel`, a C library that moves messages between processes
//! through POSIX shared memory.
//!
//! This crate is a literal copy of `c/include/shm_channel.h`: every function, constant and
//! struct, under its C name. A test (`tests/header.rs`) compiles a C file generated from
//! these declarations against the header, so the two cannot drift apart. For a safe API, use
//! the `shm-channel` crate.
//!
//! Every function returns `0` (or a count) on success and a negative `errno` value on
//! failure; [`shm_channel_strerror`] turns a return value into text. Timeouts are in
//! nanoseconds: `0` never waits, a negative value ([`SHM_CHANNEL_INFINITE`]) waits forever.
//!
//! # Linking
//!
//! The build script compiles the C sources this crate carries (`c/`) with the `cc` crate.
//! When the environment variable `SHM_CHANNEL_LIB_DIR` names a folder, it links the prebuilt
//! `libshm_channel.so` found there instead (`SHM_CHANNEL_STATIC=1`: `libshm_channel.a`).
//!
//! # Example
//!
//! ```
//! use shm_channel_sys::*;
//! use std::ffi::CString;
//! use std::ptr;
//!
//! let name = CString::new(format!("doc-sys-{}", std::process::id())).unwrap();
//! let mut prod: *mut shm_channel_t = ptr::null_mut();
//! let mut cons: *mut shm_channel_t = ptr::null_mut();
//! // SAFETY: valid out-pointers and a NUL-terminated name.
//! unsafe {
//!     assert_eq!(shm_channel_open(&mut prod, name.as_ptr(), SHM_CHANNEL_PRODUCER,
//!                                 SHM_CHANNEL_CREATE, 0, 0), 0);
//!     assert_eq!(shm_channel_open(&mut cons, name.as_ptr(), SHM_CHANNEL_CONSUMER, 0, 0, 0), 0);
//!     let msg = b"hello";
//!     assert_eq!(shm_channel_write(prod, msg.as_ptr().cast(), msg.len() as u64, 0), 0);
//!     let mut buf = [0u8; 16];
//!     let mut len = 0u64;
//!     assert_eq!(shm_channel_read(cons, buf.as_mut_ptr().cast(), buf.len() as u64,
//!                                 &mut len, 0), 0);
//!     assert_eq!(&buf[..len as usize], b"hello");
//!     shm_channel_close(prod); // end-of-stream
//!     let rc = shm_channel_read(cons, buf.as_mut_ptr().cast(), 16, &mut len, 0);
//!     assert_eq!(rc, -32); // -EPIPE: end-of-stream
//!     shm_channel_close(cons); // the last closer of a finished stream removes it
//! }
//! ```
#![no_std]
#![allow(non_camel_case_types)]
#![deny(missing_docs)]

use core::ffi::{c_char, c_int, c_void};
use core::marker::{PhantomData, PhantomPinned};

// ---- version ------------------------------------------------------------------------

/// Major version of the library these declarations describe.
pub const SHM_CHANNEL_VERSION_MAJOR: u32 = 1;
/// Minor version of the library these declarations describe.
pub const SHM_CHANNEL_VERSION_MINOR: u32 = 0;
/// Patch version of the library these declarations describe.
pub const SHM_CHANNEL_VERSION_PATCH: u32 = 0;

/// Segment layout major version this library writes and reads (`spec/README.md`).
pub const SHM_CHANNEL_LAYOUT_MAJOR: u16 = 1;
/// Segment layout minor version this library writes.
pub const SHM_CHANNEL_LAYOUT_MINOR: u16 = 0;

// ---- limits -------------------------------------------------------------------------

/// Smallest ring capacity, in bytes (capacities are powers of two).
pub const SHM_CHANNEL_MIN_CAPACITY: u64 = 1024;
/// Largest ring capacity, in bytes (2^40).
pub const SHM_CHANNEL_MAX_CAPACITY: u64 = 1_099_511_627_776;
/// Capacity used when a channel is created with capacity 0.
pub const SHM_CHANNEL_DEFAULT_CAPACITY: u64 = 1_048_576;
/// Size of the segment header; the ring data starts at this offset.
pub const SHM_CHANNEL_HEADER_SIZE: u64 = 4096;
/// Longest accepted name, not counting an optional leading `/`.
pub const SHM_CHANNEL_NAME_MAX: usize = 200;
/// Timeout that waits forever (any negative value does).
pub const SHM_CHANNEL_INFINITE: i64 = -1;
/// Default spin before sleeping on a futex, in nanoseconds.
pub const SHM_CHANNEL_DEFAULT_SPIN_NS: u64 = 20_000;

// ---- enum shm_channel_role ------------------------------------------------------------

/// Role: the one writer; a second live one gets `-EBUSY`.
pub const SHM_CHANNEL_PRODUCER: u32 = 1;
/// Role: the one reader; a second live one gets `-EBUSY`.
pub const SHM_CHANNEL_CONSUMER: u32 = 2;
/// Role: read-only view of any kind for [`shm_channel_stat`]; claims no role.
pub const SHM_CHANNEL_OBSERVER: u32 = 3;
/// Role (broadcast): the one writer; a second live one gets `-EBUSY`.
pub const SHM_CHANNEL_PUBLISHER: u32 = 4;
/// Role (broadcast): one of up to `max_subscribers` readers.
pub const SHM_CHANNEL_SUBSCRIBER: u32 = 5;

/// Longest type tag of a broadcast channel, in bytes.
pub const SHM_CHANNEL_TYPE_TAG_MAX: usize = 120;

// ---- enum shm_channel_open_flags ------------------------------------------------------

/// Open flag: create the segment if it does not exist.
pub const SHM_CHANNEL_CREATE: u32 = 1;
/// Open flag, with [`SHM_CHANNEL_CREATE`]: fail with `-EEXIST` if the segment exists.
pub const SHM_CHANNEL_EXCL: u32 = 2;
/// Open flag: accept a segment owned by another user, or with more permissive mode bits
/// than requested.
pub const SHM_CHANNEL_ALLOW_FOREIGN: u32 = 4;
/// Open flag (broadcast subscriber): start at the oldest message still held.
pub const SHM_CHANNEL_FROM_OLDEST: u32 = 8;

// ---- enum shm_channel_unlink_flags ----------------------------------------------------

/// Unlink flag: unlink even while live handles are attached.
pub const SHM_CHANNEL_FORCE: u32 = 1;

// ---- enum shm_channel_kind ------------------------------------------------------------

/// Kind of channel: a stream (one producer, one consumer, FIFO, lossless).
pub const SHM_CHANNEL_KIND_STREAM: u32 = 1;
/// Kind of channel: broadcast (one publisher, many subscribers, the newest `depth` messages).
pub const SHM_CHANNEL_KIND_BROADCAST: u32 = 2;

// ---- enum shm_channel_peer_state ------------------------------------------------------

/// Peer state: never attached.
pub const SHM_CHANNEL_PEER_NONE: u32 = 0;
/// Peer state: attached (alive, or died without closing).
pub const SHM_CHANNEL_PEER_ATTACHED: u32 = 1;
/// Peer state: closed cleanly (for the producer: end-of-stream).
pub const SHM_CHANNEL_PEER_CLOSED: u32 = 2;

// ---- types --------------------------------------------------------------------------

/// Opaque channel handle (`shm_channel_t`), only ever used behind a pointer.
#[repr(C)]
pub struct shm_channel_t {
    _data: [u8; 0],
    // Not Send, not Sync, not Unpin: the C side decides what may be done with it.
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// Snapshot of a segment's header, filled by [`shm_channel_stat`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct shm_channel_stat_t {
    /// Kind of channel (`SHM_CHANNEL_KIND_*`).
    pub kind: u32,
    /// Layout major version of the segment.
    pub layout_major: u16,
    /// Layout minor version of the segment.
    pub layout_minor: u16,
    /// Ring data bytes.
    pub capacity: u64,
    /// Largest message, in bytes.
    pub max_payload: u64,
    /// Free-running byte position of the writer.
    pub write_pos: u64,
    /// Free-running byte position of the reader.
    pub read_pos: u64,
    /// `write_pos - read_pos`: bytes not yet released.
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
    /// Producer state (`SHM_CHANNEL_PEER_*`).
    pub producer_state: u32,
    /// Consumer state (`SHM_CHANNEL_PEER_*`).
    pub consumer_state: u32,
    /// Incremented on every producer attach.
    pub producer_epoch: u32,
    /// Incremented on every consumer attach.
    pub consumer_epoch: u32,
    /// 1 if a live process holds the producer role.
    pub producer_alive: i32,
    /// 1 if a live process holds the consumer role.
    pub consumer_alive: i32,
    /// 1 if any live handle (other than an observer) is attached.
    pub in_use: i32,
    /// Pid of the creator (informational only).
    pub creator_pid: u32,
    /// `CLOCK_REALTIME` at creation, in nanoseconds (informational).
    pub created_ns: u64,
    /// Zero.
    pub reserved: [u64; 8],
}

/// Creation parameters of a broadcast channel (`shm_channel_broadcast_config_t`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shm_channel_broadcast_config_t {
    /// Largest message, 1..2^31 bytes; 0: 64 when creating, any when opening.
    pub max_payload: u64,
    /// Messages kept, 2..2^24; 0: 8 when creating, any when opening.
    pub depth: u32,
    /// Subscriber table entries, 1..65536; 0: 256 when creating, any when opening.
    pub max_subscribers: u32,
    /// NULL or "": no requirement; else the type tag the segment must have.
    pub type_tag: *const c_char,
    /// Zero.
    pub reserved: [u64; 4],
}

/// Snapshot of a broadcast segment, filled by [`shm_channel_broadcast_stat`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct shm_channel_broadcast_stat_t {
    /// Number of the newest published message (0: none yet).
    pub pub_seq: u64,
    /// Messages kept.
    pub depth: u32,
    /// Subscriber table entries.
    pub max_subscribers: u32,
    /// Entries attached, as recorded.
    pub subscribers: u32,
    /// Subscribers asleep on the futex.
    pub sleepers: u32,
    /// Subscriber joins ever.
    pub joins: u64,
    /// Entries of dead subscribers taken back.
    pub reclaims: u64,
    /// Length of the type tag.
    pub type_len: u32,
    /// The type tag, NUL-terminated.
    pub type_tag: [c_char; 124],
    /// Zero.
    pub reserved: [u64; 4],
}

/// One subscriber's counters, filled by [`shm_channel_sub_stat`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct shm_channel_sub_stat_t {
    /// Its entry in the subscriber table.
    pub index: u32,
    /// State of the entry (`SHM_CHANNEL_PEER_*`).
    pub state: u32,
    /// 1 if a live handle holds the entry.
    pub alive: i32,
    /// Pid (informational).
    pub pid: u32,
    /// Incremented by each subscriber that takes the entry.
    pub epoch: u32,
    /// Zero.
    pub reserved0: u32,
    /// Number of the next message it will read.
    pub next_seq: u64,
    /// Messages delivered intact since it joined.
    pub delivered: u64,
    /// Messages skipped or overwritten while held, since it joined.
    pub missed: u64,
    /// Payload bytes delivered.
    pub delivered_bytes: u64,
    /// Published messages it has neither read nor missed yet.
    pub lag: u64,
    /// Times it slept on the futex.
    pub sleeps: u64,
    /// Own handle only: messages skipped just before the last one read or peeked.
    pub last_missed: u64,
    /// Zero.
    pub reserved: [u64; 4],
}

// ---- functions ----------------------------------------------------------------------
//
// Each function's contract (who may call it, whether it blocks, its return values) is the
// comment above it in shm_channel.h; the docs here summarise it.

extern "C" {
    /// Opens (and with [`SHM_CHANNEL_CREATE`], creates) the channel `name` in `role`.
    ///
    /// `capacity` 0 means "any" when opening and [`SHM_CHANNEL_DEFAULT_CAPACITY`] when
    /// creating; `mode` 0 means `0600`. Returns 0 and sets `*out`, or `-EINVAL`, `-ENOENT`,
    /// `-EEXIST`, `-EBUSY`, `-EACCES`, `-ENOSPC`, `-EPROTO`, `-EPROTONOSUPPORT`,
    /// `-EPROTOTYPE`, `-EBADMSG`, `-ETIMEDOUT`, `-ENOMEM` or another `-errno`.
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// let name = std::ffi::CString::new(format!("doc-open-{}", std::process::id())).unwrap();
    /// let mut ch = std::ptr::null_mut();
    /// // SAFETY: valid out-pointer and name; the handle is closed once, below.
    /// unsafe {
    ///     let rc = shm_channel_open(&mut ch, name.as_ptr(), SHM_CHANNEL_PRODUCER,
    ///                               SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, 4096, 0o600);
    ///     assert_eq!(rc, 0);
    ///     assert_eq!(shm_channel_capacity(ch), 4096);
    ///     // Closing a producer marks end-of-stream; as nothing is left unread, the last
    ///     // handle's close also removed the name.
    ///     shm_channel_close(ch);
    ///     assert_eq!(shm_channel_unlink(name.as_ptr(), 0), -2); // -ENOENT
    /// }
    /// ```
    pub fn shm_channel_open(
        out: *mut *mut shm_channel_t,
        name: *const c_char,
        role: u32,
        flags: u32,
        capacity: u64,
        mode: u32,
    ) -> c_int;

    /// Closes a handle; NULL is accepted. A producer's close marks end-of-stream. Never
    /// blocks. The last handle to close a finished stream unlinks the segment.
    ///
    /// ```
    /// // SAFETY: NULL is accepted.
    /// unsafe { shm_channel_sys::shm_channel_close(std::ptr::null_mut()) };
    /// ```
    pub fn shm_channel_close(ch: *mut shm_channel_t);

    /// Ends the handle's role now, exactly as [`shm_channel_close`] does (a producer marks
    /// end-of-stream and aborts its reservation, the locks are released, the last handle of a
    /// finished stream unlinks it), but keeps the memory mapped until [`shm_channel_close`]:
    /// pointers from peek and reserve stay valid, but see a private copy-on-write image of
    /// the segment instead of the shared one. Afterwards every call on the handle but
    /// `shm_channel_detach` (which does nothing), [`shm_channel_close`],
    /// [`shm_channel_capacity`] and [`shm_channel_max_payload`] returns `-EBADF`. Never
    /// blocks. Returns 0, or `-EINVAL` (NULL handle).
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// let name = std::ffi::CString::new(format!("doc-detach-{}", std::process::id())).unwrap();
    /// let mut ch = std::ptr::null_mut();
    /// // SAFETY: valid out-pointers and name; the handle is closed once, below, and the
    /// // reserved space is only written while the handle is open.
    /// unsafe {
    ///     assert_eq!(shm_channel_open(&mut ch, name.as_ptr(), SHM_CHANNEL_PRODUCER,
    ///                                 SHM_CHANNEL_CREATE | SHM_CHANNEL_EXCL, 4096, 0), 0);
    ///     let mut p = std::ptr::null_mut();
    ///     assert_eq!(shm_channel_reserve(ch, 16, &mut p, 0), 0);
    ///     assert_eq!(shm_channel_detach(ch), 0); // end-of-stream; the name is gone
    ///     p.cast::<u8>().write_bytes(0xAB, 16); // still mapped: a private copy
    ///     assert_eq!(shm_channel_write(ch, p, 1, 0), -9); // -EBADF
    ///     assert_eq!(shm_channel_unlink(name.as_ptr(), 0), -2); // -ENOENT
    ///     shm_channel_close(ch); // unmaps
    /// }
    /// ```
    pub fn shm_channel_detach(ch: *mut shm_channel_t) -> c_int;

    /// Removes the channel's name (with [`SHM_CHANNEL_FORCE`], even while handles are
    /// attached). Returns 0, `-EINVAL`, `-ENOENT`, `-EBUSY`, `-EACCES` or another `-errno`.
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// let name = std::ffi::CString::new("doc-no-such-channel").unwrap();
    /// // SAFETY: a NUL-terminated name.
    /// let rc = unsafe { shm_channel_unlink(name.as_ptr(), 0) };
    /// assert_eq!(rc, -2); // -ENOENT
    /// ```
    pub fn shm_channel_unlink(name: *const c_char, flags: u32) -> c_int;

    /// Producer: copies one message of `len` bytes into the ring and publishes it.
    /// Returns 0, or `-EMSGSIZE`, `-EAGAIN`, `-ETIMEDOUT`, `-EINTR`, `-EOWNERDEAD`,
    /// `-EPIPE`, `-EBADMSG`, `-EBADF`, `-EBUSY`, `-EINVAL`.
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// // SAFETY: a NULL handle is rejected with -EINVAL.
    /// let rc = unsafe { shm_channel_write(std::ptr::null_mut(), b"x".as_ptr().cast(), 1, 0) };
    /// assert_eq!(rc, -22);
    /// ```
    pub fn shm_channel_write(
        ch: *mut shm_channel_t,
        data: *const c_void,
        len: u64,
        timeout_ns: i64,
    ) -> c_int;

    /// Producer: writes up to `count` messages stored back to back in `data`, message `i`
    /// being `lens[i]` bytes. Waits for room for the first, then writes as many as fit.
    /// Returns the number written, 0 if `count` is 0, or the errors of
    /// [`shm_channel_write`].
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// // SAFETY: a NULL handle is rejected with -EINVAL.
    /// let rc = unsafe {
    ///     shm_channel_write_batch(std::ptr::null_mut(), std::ptr::null(), std::ptr::null(), 0, 0)
    /// };
    /// assert_eq!(rc, -22);
    /// ```
    pub fn shm_channel_write_batch(
        ch: *mut shm_channel_t,
        data: *const c_void,
        lens: *const u64,
        count: u32,
        timeout_ns: i64,
    ) -> c_int;

    /// Producer, zero-copy: waits for room for `len` bytes and sets `*ptr` to contiguous,
    /// 8-byte aligned space in the ring; then [`shm_channel_commit`] or
    /// [`shm_channel_abort`]. Returns 0 or the errors of [`shm_channel_write`].
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// let mut p = std::ptr::null_mut();
    /// // SAFETY: a NULL handle is rejected with -EINVAL.
    /// assert_eq!(unsafe { shm_channel_reserve(std::ptr::null_mut(), 8, &mut p, 0) }, -22);
    /// ```
    pub fn shm_channel_reserve(
        ch: *mut shm_channel_t,
        len: u64,
        ptr: *mut *mut c_void,
        timeout_ns: i64,
    ) -> c_int;

    /// Producer: publishes the reserved message with its final length (at most the
    /// reserved length). Returns 0, `-EINVAL` or `-EBADF`.
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// // SAFETY: a NULL handle is rejected with -EINVAL.
    /// assert_eq!(unsafe { shm_channel_commit(std::ptr::null_mut(), 0) }, -22);
    /// ```
    pub fn shm_channel_commit(ch: *mut shm_channel_t, len: u64) -> c_int;

    /// Producer: drops the outstanding reservation. Returns 0, `-EINVAL` (none) or `-EBADF`.
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// // SAFETY: a NULL handle is rejected with -EINVAL.
    /// assert_eq!(unsafe { shm_channel_abort(std::ptr::null_mut()) }, -22);
    /// ```
    pub fn shm_channel_abort(ch: *mut shm_channel_t) -> c_int;

    /// Consumer: copies the next message into `buf` (`cap` bytes) and releases it; `*len`
    /// gets its size. Returns 0, or `-EMSGSIZE` (`*len` = size needed, the message stays),
    /// `-EAGAIN`, `-ETIMEDOUT`, `-EINTR`, `-EPIPE` (end-of-stream), `-EOWNERDEAD`,
    /// `-EBADMSG`, `-EBADF`, `-EINVAL`.
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// let mut len = 0;
    /// // SAFETY: a NULL handle is rejected with -EINVAL.
    /// let rc = unsafe { shm_channel_read(std::ptr::null_mut(), std::ptr::null_mut(), 0, &mut len, 0) };
    /// assert_eq!(rc, -22);
    /// ```
    pub fn shm_channel_read(
        ch: *mut shm_channel_t,
        buf: *mut c_void,
        cap: u64,
        len: *mut u64,
        timeout_ns: i64,
    ) -> c_int;

    /// Consumer: reads up to `max_count` messages back to back into `buf`; `lens[i]` gets
    /// the size of message `i`. Returns the number read, 0 if `max_count` is 0, or the
    /// errors of [`shm_channel_read`] (`-EMSGSIZE` with `lens[0]` = size needed).
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// let mut lens = [0u64; 4];
    /// // SAFETY: a NULL handle is rejected with -EINVAL.
    /// let rc = unsafe {
    ///     shm_channel_read_batch(std::ptr::null_mut(), std::ptr::null_mut(), 0,
    ///                            lens.as_mut_ptr(), 4, 0)
    /// };
    /// assert_eq!(rc, -22);
    /// ```
    pub fn shm_channel_read_batch(
        ch: *mut shm_channel_t,
        buf: *mut c_void,
        cap: u64,
        lens: *mut u64,
        max_count: u32,
        timeout_ns: i64,
    ) -> c_int;

    /// Consumer, zero-copy: waits for the next message and sets `*ptr` / `*len` to it in
    /// place, valid until [`shm_channel_release`]. Returns the errors of
    /// [`shm_channel_read`].
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// let (mut p, mut len) = (std::ptr::null(), 0);
    /// // SAFETY: a NULL handle is rejected with -EINVAL.
    /// assert_eq!(unsafe { shm_channel_peek(std::ptr::null_mut(), &mut p, &mut len, 0) }, -22);
    /// ```
    pub fn shm_channel_peek(
        ch: *mut shm_channel_t,
        ptr: *mut *const c_void,
        len: *mut u64,
        timeout_ns: i64,
    ) -> c_int;

    /// Consumer: releases the peeked message. Returns 0, `-EINVAL` (nothing peeked) or
    /// `-EBADF`.
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// // SAFETY: a NULL handle is rejected with -EINVAL.
    /// assert_eq!(unsafe { shm_channel_release(std::ptr::null_mut()) }, -22);
    /// ```
    pub fn shm_channel_release(ch: *mut shm_channel_t) -> c_int;

    /// Fills `*st` with a snapshot of the segment's header. Any role. Returns 0 or
    /// `-EINVAL`.
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// let mut st = shm_channel_stat_t::default();
    /// // SAFETY: a NULL handle is rejected with -EINVAL.
    /// assert_eq!(unsafe { shm_channel_stat(std::ptr::null_mut(), &mut st) }, -22);
    /// ```
    pub fn shm_channel_stat(ch: *mut shm_channel_t, st: *mut shm_channel_stat_t) -> c_int;

    /// Largest message this channel accepts, in bytes (0 for a NULL handle).
    ///
    /// ```
    /// // SAFETY: NULL is accepted.
    /// assert_eq!(unsafe { shm_channel_sys::shm_channel_max_payload(std::ptr::null_mut()) }, 0);
    /// ```
    pub fn shm_channel_max_payload(ch: *mut shm_channel_t) -> u64;

    /// Capacity of this channel's ring, in bytes (0 for a NULL handle).
    ///
    /// ```
    /// // SAFETY: NULL is accepted.
    /// assert_eq!(unsafe { shm_channel_sys::shm_channel_capacity(std::ptr::null_mut()) }, 0);
    /// ```
    pub fn shm_channel_capacity(ch: *mut shm_channel_t) -> u64;

    /// Sets how long a blocking call spins before sleeping on a futex, in nanoseconds.
    /// Returns 0 or `-EINVAL`.
    ///
    /// ```
    /// // SAFETY: a NULL handle is rejected with -EINVAL.
    /// assert_eq!(unsafe { shm_channel_sys::shm_channel_set_spin(std::ptr::null_mut(), 0) }, -22);
    /// ```
    pub fn shm_channel_set_spin(ch: *mut shm_channel_t, spin_ns: u64) -> c_int;

    /// The directory segments live in: `$SHM_CHANNEL_DIR` if set, else `/dev/shm`.
    ///
    /// ```
    /// // SAFETY: returns a NUL-terminated string that stays valid while the environment
    /// // is not changed.
    /// let dir = unsafe { std::ffi::CStr::from_ptr(shm_channel_sys::shm_channel_dir()) };
    /// assert!(!dir.to_bytes().is_empty());
    /// ```
    pub fn shm_channel_dir() -> *const c_char;

    /// Static text for a return value (negative errno or 0). Never NULL.
    ///
    /// ```
    /// // SAFETY: returns a static NUL-terminated string.
    /// let text = unsafe { std::ffi::CStr::from_ptr(shm_channel_sys::shm_channel_strerror(-32)) };
    /// assert!(text.to_str().unwrap().starts_with("end of stream"));
    /// ```
    pub fn shm_channel_strerror(err: c_int) -> *const c_char;

    /// Library version as `(major << 16) | (minor << 8) | patch`.
    ///
    /// ```
    /// use shm_channel_sys::*;
    /// // SAFETY: no arguments, no preconditions.
    /// let v = unsafe { shm_channel_version() };
    /// assert_eq!(v >> 16, SHM_CHANNEL_VERSION_MAJOR);
    /// ```
    pub fn shm_channel_version() -> u32;

    /// Library version as text, e.g. `"1.0.0"`.
    ///
    /// ```
    /// // SAFETY: returns a static NUL-terminated string.
    /// let v = unsafe { std::ffi::CStr::from_ptr(shm_channel_sys::shm_channel_version_string()) };
    /// assert!(v.to_str().unwrap().starts_with("1."));
    /// ```
    pub fn shm_channel_version_string() -> *const c_char;

    /// Opens (and with [`SHM_CHANNEL_CREATE`], creates) the broadcast channel `name` as
    /// [`SHM_CHANNEL_PUBLISHER`], [`SHM_CHANNEL_SUBSCRIBER`] or [`SHM_CHANNEL_OBSERVER`];
    /// `cfg` may be NULL. Errors as [`shm_channel_open`], and `-EMEDIUMTYPE`, `-EUSERS`.
    pub fn shm_channel_open_broadcast(
        out: *mut *mut shm_channel_t,
        name: *const c_char,
        role: u32,
        flags: u32,
        cfg: *const shm_channel_broadcast_config_t,
        mode: u32,
    ) -> c_int;

    /// Subscriber: [`shm_channel_read`] plus the number of messages skipped before this one.
    pub fn shm_channel_recv(
        ch: *mut shm_channel_t,
        buf: *mut c_void,
        cap: u64,
        len: *mut u64,
        missed: *mut u64,
        timeout_ns: i64,
    ) -> c_int;

    /// Subscriber: the newest message, whether it is new to this handle, and what was
    /// skipped to reach it. Never waits.
    pub fn shm_channel_read_latest(
        ch: *mut shm_channel_t,
        buf: *mut c_void,
        cap: u64,
        len: *mut u64,
        is_new: *mut i32,
        missed: *mut u64,
    ) -> c_int;

    /// Subscriber, zero-copy: [`shm_channel_read_latest`] as a view, until
    /// [`shm_channel_release`].
    pub fn shm_channel_peek_latest(
        ch: *mut shm_channel_t,
        ptr: *mut *const c_void,
        len: *mut u64,
        is_new: *mut i32,
        missed: *mut u64,
    ) -> c_int;

    /// Broadcast, any role: the broadcast part of the header.
    pub fn shm_channel_broadcast_stat(
        ch: *mut shm_channel_t,
        st: *mut shm_channel_broadcast_stat_t,
    ) -> c_int;

    /// Broadcast, any role: subscriber entry `index`'s counters (-1: this subscriber's own).
    pub fn shm_channel_sub_stat(
        ch: *mut shm_channel_t,
        index: i64,
        st: *mut shm_channel_sub_stat_t,
    ) -> c_int;
}

// ---- services (kind 4, spec/service.md): the service block of shm_channel.h ----------------

/// Kind of channel: service (one server, many clients, request/response).
pub const SHM_CHANNEL_KIND_SERVICE: u32 = 4;
/// Role (service): the one server; a second live one gets `-EBUSY`.
pub const SHM_CHANNEL_SERVER: u32 = 6;
/// Role (service): one of up to `max_clients` clients; one more gets `-EUSERS`.
pub const SHM_CHANNEL_CLIENT: u32 = 7;
/// Most client slots of a service.
pub const SHM_CHANNEL_SERVICE_MAX_CLIENTS: u32 = 1024;
/// Largest `max_request` / `max_response` (2^30 bytes).
pub const SHM_CHANNEL_SERVICE_MAX_MESSAGE: u64 = 1_073_741_824;
/// `max_request` / `max_response` of a service created with 0.
pub const SHM_CHANNEL_SERVICE_DEFAULT_MESSAGE: u64 = 4096;
/// `max_clients` of a service created with 0.
pub const SHM_CHANNEL_SERVICE_DEFAULT_CLIENTS: u32 = 64;

/// Creation parameters of a service (`shm_channel_service_config_t`); when opening an
/// existing one, every nonzero field must match.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct shm_channel_service_config_t {
    /// Largest request, 0..2^30 bytes; 0: 4096 when creating, any when opening.
    pub max_request: u64,
    /// Largest response, 0..2^30 bytes; 0: 4096 when creating, any when opening.
    pub max_response: u64,
    /// Client slots, 1..1024; 0: 64 when creating, any when opening.
    pub max_clients: u32,
    /// Zero.
    pub reserved0: u32,
    /// Zero.
    pub reserved: [u64; 4],
}

/// Names one received request: the client's slot and the request's number in that slot.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct shm_channel_request_id_t {
    /// Slot index, 0..max_clients - 1.
    pub client: u32,
    /// Zero.
    pub reserved: u32,
    /// Request number in the slot, from 1.
    pub seq: u64,
}

/// Snapshot of a service segment, filled by [`shm_channel_service_stat`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct shm_channel_service_stat_t {
    /// Largest request, in bytes.
    pub max_request: u64,
    /// Largest response, in bytes.
    pub max_response: u64,
    /// Client slots.
    pub max_clients: u32,
    /// Slots recorded attached (a dead client counts until reaped).
    pub clients: u32,
    /// Slots whose lock a live client holds.
    pub live_clients: u32,
    /// State of the server (`SHM_CHANNEL_PEER_*`).
    pub server_state: u32,
    /// Incremented by every server attach.
    pub server_epoch: u32,
    /// 1 if a live process holds the server role.
    pub server_alive: i32,
    /// Client joins ever.
    pub joins: u64,
    /// Slots of dead clients taken back (by anyone).
    pub reclaims: u64,
    /// Of those, by a server.
    pub reaped: u64,
    /// Requests handed to a server.
    pub requests: u64,
    /// Responses published.
    pub responses: u64,
    /// Responses not written: the client had given up.
    pub stale: u64,
    /// Requests addressed to an earlier server, dropped.
    pub expired: u64,
    /// Requests with an invalid length, dropped.
    pub invalid: u64,
    /// Times the server prepared to sleep.
    pub server_sleeps: u64,
    /// Client wake-ups made by the server.
    pub server_wakes: u64,
    /// Times the attached clients prepared to sleep (sum).
    pub client_sleeps: u64,
    /// Requests the attached clients gave up on (sum).
    pub client_timeouts: u64,
    /// Zero.
    pub reserved: [u64; 6],
}

extern "C" {
    /// Opens (and with [`SHM_CHANNEL_CREATE`], creates) the service `name` as
    /// [`SHM_CHANNEL_SERVER`], [`SHM_CHANNEL_CLIENT`] or [`SHM_CHANNEL_OBSERVER`]; `cfg` may be
    /// NULL. Errors as [`shm_channel_open`], and `-EUSERS` (client: every slot held).
    pub fn shm_channel_open_service(
        out: *mut *mut shm_channel_t,
        name: *const c_char,
        role: u32,
        flags: u32,
        cfg: *const shm_channel_service_config_t,
        mode: u32,
    ) -> c_int;

    /// Client: sends one request and waits for its response (copied into `resp`). A timeout
    /// or a signal gives the request up. `-ETIMEDOUT`, `-EINTR`, `-EPIPE`, `-EOWNERDEAD`,
    /// `-ECONNRESET`, `-EMSGSIZE` (the response stays readable by [`shm_channel_response`]).
    pub fn shm_channel_request(
        ch: *mut shm_channel_t,
        req: *const c_void,
        req_len: u64,
        resp: *mut c_void,
        resp_cap: u64,
        resp_len: *mut u64,
        timeout_ns: i64,
    ) -> c_int;

    /// Client, zero-copy: waits for the response to the request sent with
    /// [`shm_channel_write`] or [`shm_channel_commit`], in place until the next request.
    pub fn shm_channel_response(
        ch: *mut shm_channel_t,
        ptr: *mut *const c_void,
        len: *mut u64,
        timeout_ns: i64,
    ) -> c_int;

    /// Client: waits until a live server is attached. `-ETIMEDOUT`, `-EINTR`.
    pub fn shm_channel_wait_server(ch: *mut shm_channel_t, timeout_ns: i64) -> c_int;

    /// Server: waits for the next request from any client and copies it into `buf`.
    pub fn shm_channel_receive(
        ch: *mut shm_channel_t,
        buf: *mut c_void,
        cap: u64,
        len: *mut u64,
        id: *mut shm_channel_request_id_t,
        timeout_ns: i64,
    ) -> c_int;

    /// Server, zero-copy: [`shm_channel_receive`] in place, until answered, dropped or
    /// released.
    pub fn shm_channel_receive_peek(
        ch: *mut shm_channel_t,
        ptr: *mut *const c_void,
        len: *mut u64,
        id: *mut shm_channel_request_id_t,
        timeout_ns: i64,
    ) -> c_int;

    /// Server: done reading a request held in place; the answer is still owed.
    pub fn shm_channel_receive_release(
        ch: *mut shm_channel_t,
        id: *const shm_channel_request_id_t,
    ) -> c_int;

    /// Server: answers request `*id` (copied). Never waits. `-ESTALE` (the client gave up),
    /// `-EINVAL` (not owed), `-EMSGSIZE`, `-EBUSY`.
    pub fn shm_channel_respond(
        ch: *mut shm_channel_t,
        id: *const shm_channel_request_id_t,
        data: *const c_void,
        len: u64,
    ) -> c_int;

    /// Server, zero-copy: space for the response to `*id` in the client's response buffer.
    pub fn shm_channel_respond_reserve(
        ch: *mut shm_channel_t,
        id: *const shm_channel_request_id_t,
        len: u64,
        ptr: *mut *mut c_void,
    ) -> c_int;

    /// Server: publishes the reserved response with its final length.
    pub fn shm_channel_respond_commit(
        ch: *mut shm_channel_t,
        id: *const shm_channel_request_id_t,
        len: u64,
    ) -> c_int;

    /// Server: answers request `*id` not at all.
    pub fn shm_channel_drop(ch: *mut shm_channel_t, id: *const shm_channel_request_id_t) -> c_int;

    /// Server: reclaims the slots of dead clients now and reports the slots reclaimed since
    /// the last call into `dead`; returns how many.
    pub fn shm_channel_reap(ch: *mut shm_channel_t, dead: *mut u32, cap: u32) -> c_int;

    /// Service, any role: the service part of the segment.
    pub fn shm_channel_service_stat(
        ch: *mut shm_channel_t,
        st: *mut shm_channel_service_stat_t,
    ) -> c_int;
}

// ---- compat channels (spec/compat.md): seed 002's 16-byte-header byte ring -------------
//
// `shm_channel_open(.., flags | SHM_CHANNEL_COMPAT, ..)` opens a segment in the layout of
// seed 002 (cpp_py_shmbuf), and the stream functions work on the handle with the
// differences listed in shm_channel.h's compat block (0-length messages are -EINVAL, split
// records are copied, polling waits, -EIDRM, never -EPIPE or -EOWNERDEAD).

/// Open flag: open (or create) a compat channel; also for [`shm_channel_unlink`].
pub const SHM_CHANNEL_COMPAT: u32 = 256;
/// Open flag (compat producer with [`SHM_CHANNEL_CREATE`]): first unlink whatever has the
/// name, as the peer's producer does.
pub const SHM_CHANNEL_COMPAT_REPLACE: u32 = 512;
/// Kind of channel: compat (`shm_channel_stat_t::kind`).
pub const SHM_CHANNEL_KIND_COMPAT: u32 = 3;
/// Longest compat channel name (the peer's limit), not counting a leading `/`.
pub const SHM_CHANNEL_COMPAT_NAME_MAX: usize = 63;
/// Smallest compat capacity, in bytes (a power of two).
pub const SHM_CHANNEL_COMPAT_MIN_CAPACITY: u64 = 8;
/// Largest compat capacity, in bytes (2^31).
pub const SHM_CHANNEL_COMPAT_MAX_CAPACITY: u64 = 2_147_483_648;
/// Longest sleep between two polls of a blocked compat call, in nanoseconds.
pub const SHM_CHANNEL_COMPAT_POLL_MAX_NS: u64 = 2_000_000;

/// A compat handle's view, filled by [`shm_channel_compat_stat`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct shm_channel_compat_stat_t {
    /// Ring data bytes.
    pub capacity: u32,
    /// Head as last accepted (own index, or the peer's).
    pub head: u32,
    /// Tail as last accepted.
    pub tail: u32,
    /// `head - tail` (u32).
    pub used: u32,
    /// Loads of the peer's index refused as out of range, ever.
    pub torn_loads: u64,
    /// Messages this handle wrote (producer) or read (consumer).
    pub msgs: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Calls that found the ring full (producer) or empty (consumer).
    pub waits: u64,
    /// Sleeps between polls.
    pub sleeps: u64,
    /// 1 once the segment's name was found unlinked.
    pub segment_gone: i32,
    /// Zero.
    pub reserved0: u32,
    /// Zero.
    pub reserved: [u64; 4],
}

extern "C" {
    /// Compat, any role: this handle's view of the channel (-EPROTOTYPE on other kinds).
    pub fn shm_channel_compat_stat(
        ch: *mut shm_channel_t,
        st: *mut shm_channel_compat_stat_t,
    ) -> c_int;
}

// ---- reclaiming dead peers' entries (issue 10) ----
extern "C" {
    /// Take back the entries of a broadcast channel's dead subscribers: the number
    /// reclaimed, or -errno (-EPROTOTYPE: not a broadcast channel).
    pub fn shm_channel_reclaim(name: *const c_char, flags: u32) -> c_int;
}

// ---- batch peek and the mapping window (issue 14) ----------------------------------------

extern "C" {
    /// Consumer (stream), zero-copy: waits (as [`shm_channel_peek`]) for the next message,
    /// then hands over up to `max_count` messages in place without releasing any:
    /// `ptrs[i]` / `lens[i]` = message `i`. Returns their number (1..`max_count`), 0 if
    /// `max_count` is 0, or the errors of [`shm_channel_peek`]; `-EOPNOTSUPP` for another
    /// kind. They stay valid until [`shm_channel_release_n`]; a consumer that dies holding
    /// them released none (its successor gets them again).
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// // SAFETY: a NULL handle is rejected with -EINVAL.
    /// let rc = unsafe {
    ///     shm_channel_peek_batch(std::ptr::null_mut(), std::ptr::null_mut(),
    ///                            std::ptr::null_mut(), 1, 0)
    /// };
    /// assert_eq!(rc, -22);
    /// ```
    pub fn shm_channel_peek_batch(
        ch: *mut shm_channel_t,
        ptrs: *mut *const c_void,
        lens: *mut u64,
        max_count: u32,
        timeout_ns: i64,
    ) -> c_int;

    /// Consumer (stream): releases the first `n` messages of the last
    /// [`shm_channel_peek_batch`] in one step; the rest come again. Returns 0, `-EINVAL`
    /// (more than the batch, or no batch held), `-EBADMSG`, `-EBADF`, `-EOPNOTSUPP`.
    pub fn shm_channel_release_n(ch: *mut shm_channel_t, n: u32) -> c_int;

    /// Any role: `*base` / `*len` = this handle's mapping of the segment (every stream
    /// view lies inside it; it stays mapped until close). Returns 0 or `-EINVAL`.
    pub fn shm_channel_mapping(
        ch: *mut shm_channel_t,
        base: *mut *mut c_void,
        len: *mut u64,
    ) -> c_int;
}

// ---- one-try write and read with few arguments (issue 14, bindings) ----------------------

extern "C" {
    /// [`shm_channel_write`] with timeout 0, one argument less (for bindings whose cost per
    /// call grows with its arguments): 0, `-EAGAIN` (full: nothing written), or its errors.
    pub fn shm_channel_try_write(ch: *mut shm_channel_t, data: *const c_void, len: u64) -> c_int;

    /// [`shm_channel_read`] with timeout 0, returning the message's length (>= 0) or its
    /// negative errno (`-EAGAIN`: nothing ready; `-EMSGSIZE`: larger than `cap`, it stays).
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// // SAFETY: a NULL handle is rejected with -EINVAL.
    /// let rc = unsafe { shm_channel_try_read(std::ptr::null_mut(), std::ptr::null_mut(), 0) };
    /// assert_eq!(rc, -22);
    /// ```
    pub fn shm_channel_try_read(ch: *mut shm_channel_t, buf: *mut c_void, cap: u64) -> i64;
}

// ---- one-try zero copy with few arguments (issue 14, bindings) ----------------------------

extern "C" {
    /// [`shm_channel_reserve`] with timeout 0, returning the space's offset from the handle's
    /// mapping base ([`shm_channel_mapping`], >= 0) or a negative errno (`-EAGAIN`: no room;
    /// `-ERANGE`: not inside the mapping, aborted: use [`shm_channel_reserve`]).
    pub fn shm_channel_try_reserve(ch: *mut shm_channel_t, len: u64) -> i64;

    /// [`shm_channel_peek`] with timeout 0, returning the message's offset from the handle's
    /// mapping base (>= 0, `*len` its size) or a negative errno (`-EAGAIN`: nothing ready;
    /// `-ERANGE`: held, but not inside the mapping: [`shm_channel_peek`] gives its pointer).
    ///
    /// ```
    /// # use shm_channel_sys::*;
    /// // SAFETY: a NULL length pointer is rejected with -EINVAL.
    /// let rc = unsafe { shm_channel_try_peek(std::ptr::null_mut(), std::ptr::null_mut()) };
    /// assert_eq!(rc, -22);
    /// ```
    pub fn shm_channel_try_peek(ch: *mut shm_channel_t, len: *mut u64) -> i64;
}
