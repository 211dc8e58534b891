//! The writing side of a stream channel.

use std::ops::{Deref, DerefMut};
use std::time::Duration;
use std::{fmt, ptr, slice};

use shm_channel_sys as sys;

use crate::error::{Error, Op, Result};
use crate::handle::Handle;
use crate::{Batch, OpenOptions, Stats};

/// The writing side of a stream channel: the one process (or handle) that may write.
///
/// Dropping the producer closes it, which marks end-of-stream: the consumer reads every
/// message still in the ring, then gets [`Error::EndOfStream`]. Waiting calls use the
/// handle's timeout ([`set_timeout`](Self::set_timeout)).
///
/// ```
/// use shm_channel::Producer;
/// # let name = &format!("doc-producer-{}", std::process::id());
///
/// let mut tx = Producer::create(name)?;
/// for i in 0u64..3 {
///     tx.write(&i.to_le_bytes())?;
/// }
/// # shm_channel::force_unlink(name)?;
/// # Ok::<(), shm_channel::Error>(())
/// ```
#[derive(Debug)]
pub struct Producer {
    h: Handle,
}

impl Producer {
    pub(crate) fn from_handle(h: Handle) -> Producer {
        Producer { h }
    }

    /// The owned C handle (compat.rs: the compat-only calls).
    pub(crate) fn handle(&self) -> &Handle {
        &self.h
    }

    /// Opens the channel `name` as its producer, creating it (with the default capacity)
    /// if it does not exist. Use [`OpenOptions`] for a capacity, a mode or exclusive
    /// creation.
    ///
    /// ```
    /// # let name = &format!("doc-producer-create-{}", std::process::id());
    /// let tx = shm_channel::Producer::create(name)?;
    /// // A second live producer is refused.
    /// assert!(matches!(shm_channel::Producer::create(name), Err(shm_channel::Error::Busy)));
    /// # drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn create(name: &str) -> Result<Producer> {
        OpenOptions::new().create(true).producer(name)
    }

    /// Opens the existing channel `name` as its producer.
    ///
    /// ```
    /// # let name = &format!("doc-producer-open-{}", std::process::id());
    /// assert!(shm_channel::Producer::open(name).is_err()); // no such channel yet
    /// let rx = shm_channel::Consumer::create(name)?;
    /// let tx = shm_channel::Producer::open(name)?;
    /// # drop((tx, rx));
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Producer> {
        OpenOptions::new().producer(name)
    }

    /// The channel's name, as given when opening.
    ///
    /// ```
    /// # let name = &format!("doc-producer-name-{}", std::process::id());
    /// let tx = shm_channel::Producer::create(name)?;
    /// assert_eq!(tx.name(), name);
    /// # drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        self.h.name()
    }

    /// Capacity of the ring, in bytes.
    ///
    /// ```
    /// # let name = &format!("doc-producer-cap-{}", std::process::id());
    /// let tx = shm_channel::OpenOptions::new().create(true).capacity(8192).producer(name)?;
    /// assert_eq!(tx.capacity(), 8192);
    /// # drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.h.capacity()
    }

    /// Largest message the channel accepts, in bytes (half the capacity, less 8).
    ///
    /// ```
    /// # let name = &format!("doc-producer-max-{}", std::process::id());
    /// let tx = shm_channel::OpenOptions::new().create(true).capacity(8192).producer(name)?;
    /// assert_eq!(tx.max_payload(), 4088);
    /// # drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn max_payload(&self) -> usize {
        self.h.max_payload()
    }

    /// Sets how long waiting calls wait for room: `None` (the default) waits forever,
    /// `Some(Duration::ZERO)` never waits.
    ///
    /// ```
    /// use shm_channel::{Error, OpenOptions};
    /// use std::time::Duration;
    /// # let name = &format!("doc-producer-timeout-{}", std::process::id());
    ///
    /// let mut tx = OpenOptions::new().create(true).capacity(1024).producer(name)?;
    /// tx.set_timeout(Some(Duration::ZERO));
    /// let err = loop {
    ///     if let Err(e) = tx.write(&[0; 100]) { break e; } // until the ring is full
    /// };
    /// assert!(matches!(err, Error::WouldBlock));
    /// # shm_channel::force_unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.h.set_timeout(timeout)
    }

    /// The timeout set by [`set_timeout`](Self::set_timeout).
    ///
    /// ```
    /// # let name = &format!("doc-producer-gettimeout-{}", std::process::id());
    /// let tx = shm_channel::Producer::create(name)?;
    /// assert_eq!(tx.timeout(), None);
    /// # drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn timeout(&self) -> Option<Duration> {
        self.h.timeout()
    }

    /// Sets how long a waiting call spins before sleeping on a futex (default 20 µs; zero
    /// sleeps at once). Spinning costs CPU but answers in well under a microsecond, where
    /// waking a sleeping process costs tens of microseconds. At most 10 s.
    ///
    /// ```
    /// # let name = &format!("doc-producer-spin-{}", std::process::id());
    /// let mut tx = shm_channel::Producer::create(name)?;
    /// tx.set_spin(std::time::Duration::from_micros(50))?;
    /// # drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn set_spin(&mut self, spin: Duration) -> Result<()> {
        self.h.set_spin(spin)
    }

    /// Copies one message into the ring and publishes it, waiting for room as the timeout
    /// allows.
    ///
    /// Errors: [`Error::MessageTooLarge`], [`Error::WouldBlock`], [`Error::TimedOut`],
    /// [`Error::Interrupted`], [`Error::ConsumerClosed`] and [`Error::PeerDied`] (the ring
    /// is full and the consumer is gone), [`Error::Corrupt`], [`Error::Busy`] (a
    /// [`Reservation`] was leaked).
    ///
    /// ```
    /// # let name = &format!("doc-producer-write-{}", std::process::id());
    /// let mut tx = shm_channel::Producer::create(name)?;
    /// tx.write(b"a message")?;
    /// tx.write(b"")?; // empty messages are messages too
    /// # shm_channel::force_unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    #[inline]
    pub fn write(&mut self, msg: &[u8]) -> Result<()> {
        // SAFETY: `msg` is valid for `msg.len()` bytes during the call; the handle is open
        // and used by this thread only (&mut self).
        let rc = unsafe {
            sys::shm_channel_write(
                self.h.raw(),
                msg.as_ptr().cast(),
                msg.len() as u64,
                self.h.timeout_ns(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(self.write_error(rc, msg.len()))
        }
    }

    /// Writes a prefix of `batch` in one call: waits (as [`write`](Self::write)) for room
    /// for the first message, then writes as many as fit without waiting and publishes
    /// them together. Returns how many were written (0 for an empty batch).
    ///
    /// ```
    /// use shm_channel::Batch;
    /// # let name = &format!("doc-producer-batch-{}", std::process::id());
    /// let mut tx = shm_channel::Producer::create(name)?;
    /// let batch: Batch = [&b"one"[..], b"two", b"three"].into_iter().collect();
    /// assert_eq!(tx.write_batch(&batch)?, 3);
    /// # shm_channel::force_unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    #[inline]
    pub fn write_batch(&mut self, batch: &Batch) -> Result<usize> {
        self.write_batch_from(batch, 0, 0)
    }

    /// Writes every message of `batch`, in as many calls as the ring needs. On an error,
    /// a prefix of the batch may already have been written.
    ///
    /// ```
    /// use shm_channel::Batch;
    /// # let name = &format!("doc-producer-batch-all-{}", std::process::id());
    /// let mut tx = shm_channel::Producer::create(name)?;
    /// let mut batch = Batch::new();
    /// for i in 0u32..100 {
    ///     batch.push(&i.to_le_bytes());
    /// }
    /// tx.write_batch_all(&batch)?;
    /// # shm_channel::force_unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn write_batch_all(&mut self, batch: &Batch) -> Result<()> {
        let lens = batch.raw_lens();
        let (mut first, mut offset) = (0usize, 0usize);
        while first < lens.len() {
            let n = self.write_batch_from(batch, first, offset)?;
            if n == 0 {
                // The library writes at least one message or fails; never loop on nothing.
                return Err(Error::Io(std::io::Error::other(
                    "write_batch wrote nothing",
                )));
            }
            offset += lens[first..first + n]
                .iter()
                .map(|&l| l as usize)
                .sum::<usize>();
            first += n;
        }
        Ok(())
    }

    /// Writes messages `first..` of `batch`, whose bytes start at `offset`.
    #[inline]
    fn write_batch_from(&mut self, batch: &Batch, first: usize, offset: usize) -> Result<usize> {
        let lens = &batch.raw_lens()[first..];
        let data = &batch.bytes()[offset..];
        // The C call counts in a u32 and refuses more than i32::MAX: a longer batch is
        // written a prefix at a time, like any other partial write.
        let count = lens.len().min(i32::MAX as usize) as u32;
        // SAFETY: `lens` holds `count` (or more) lengths and `data` holds at least their
        // sum in bytes (Batch keeps the two in step); both outlive the call, and the
        // handle is used by this thread only (&mut self).
        let rc = unsafe {
            sys::shm_channel_write_batch(
                self.h.raw(),
                data.as_ptr().cast(),
                lens.as_ptr(),
                count,
                self.h.timeout_ns(),
            )
        };
        if rc >= 0 {
            Ok(rc as usize)
        } else {
            Err(self.write_error(rc, lens.first().map_or(0, |&l| l as usize)))
        }
    }

    /// Reserves `len` bytes of contiguous, 8-byte aligned space inside the ring, waiting
    /// for room as the timeout allows. Fill the returned guard, then
    /// [`commit`](Reservation::commit) it; dropping it uncommitted aborts the message.
    /// Nothing is visible to the consumer before the commit.
    ///
    /// ```
    /// # let name = &format!("doc-producer-reserve-{}", std::process::id());
    /// let mut tx = shm_channel::Producer::create(name)?;
    /// let mut space = tx.reserve(4)?;
    /// space.copy_from_slice(b"ping");
    /// space.commit()?;
    /// # shm_channel::force_unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    #[inline]
    pub fn reserve(&mut self, len: usize) -> Result<Reservation<'_>> {
        let mut p = ptr::null_mut();
        // SAFETY: `p` is a valid out-pointer; the handle is open and used by this thread
        // only (&mut self).
        let rc = unsafe {
            sys::shm_channel_reserve(self.h.raw(), len as u64, &mut p, self.h.timeout_ns())
        };
        if rc != 0 {
            return Err(self.write_error(rc, len));
        }
        let buf: &mut [u8] = if p.is_null() {
            &mut []
        } else {
            // SAFETY: on success the library points `p` at `len` writable bytes inside our
            // mapping that nobody else reads or writes until we commit or abort: the
            // consumer reads only below the published write position, and no other
            // producer can exist. The slice borrows `self` mutably (through the guard), so
            // the mapping outlives it and no second reservation can overlap it.
            unsafe { slice::from_raw_parts_mut(p.cast::<u8>(), len) }
        };
        Ok(Reservation {
            h: &mut self.h,
            buf,
        })
    }

    /// A snapshot of the channel's counters and state.
    ///
    /// ```
    /// # let name = &format!("doc-producer-stat-{}", std::process::id());
    /// let mut tx = shm_channel::Producer::create(name)?;
    /// tx.write(b"12345")?;
    /// let st = tx.stat()?;
    /// assert_eq!((st.msgs_written, st.bytes_written), (1, 5));
    /// # shm_channel::force_unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn stat(&self) -> Result<Stats> {
        self.h.stat()
    }

    /// Closes the producer, marking end-of-stream; the same as dropping it.
    ///
    /// ```
    /// # let name = &format!("doc-producer-close-{}", std::process::id());
    /// let mut rx = shm_channel::Consumer::create(name)?;
    /// shm_channel::Producer::open(name)?.close();
    /// assert!(matches!(rx.read(&mut Vec::new()), Err(shm_channel::Error::EndOfStream)));
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn close(self) {}

    #[cold]
    fn write_error(&self, rc: i32, len: usize) -> Error {
        if rc == -libc::EMSGSIZE {
            Error::MessageTooLarge {
                len,
                max: self.max_payload(),
            }
        } else {
            Error::from_code(rc, Op::Write)
        }
    }
}

/// Space reserved in the ring by [`Producer::reserve`]: dereferences to `&mut [u8]`.
///
/// [`commit`](Self::commit) publishes it; dropping it uncommitted aborts it, and the
/// consumer never sees it. The space holds whatever bytes were there before: fill all of
/// it, or commit a shorter message with [`commit_len`](Self::commit_len).
///
/// ```
/// # let name = &format!("doc-reservation-{}", std::process::id());
/// let mut tx = shm_channel::Producer::create(name)?;
/// let mut rx = shm_channel::Consumer::open(name)?;
/// {
///     let mut space = tx.reserve(3)?;
///     space.copy_from_slice(b"abc");
///     // dropped without commit: aborted
/// }
/// tx.set_timeout(Some(std::time::Duration::ZERO));
/// rx.set_timeout(Some(std::time::Duration::ZERO));
/// assert!(matches!(rx.read(&mut Vec::new()), Err(shm_channel::Error::WouldBlock)));
/// # Ok::<(), shm_channel::Error>(())
/// ```
pub struct Reservation<'a> {
    h: &'a mut Handle,
    buf: &'a mut [u8],
}

impl Reservation<'_> {
    /// Publishes the whole reserved space as one message.
    ///
    /// ```
    /// # let name = &format!("doc-reservation-commit-{}", std::process::id());
    /// let mut tx = shm_channel::Producer::create(name)?;
    /// let mut space = tx.reserve(8)?;
    /// space.copy_from_slice(&42u64.to_le_bytes());
    /// space.commit()?;
    /// assert_eq!(tx.stat()?.msgs_written, 1);
    /// # shm_channel::force_unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    #[inline]
    pub fn commit(self) -> Result<()> {
        let len = self.buf.len();
        self.commit_len(len)
    }

    /// Publishes the first `len` bytes of the reserved space as one message (for when the
    /// final size is known only after filling). `len` larger than the reservation is an
    /// `ErrorKind::InvalidInput` error, and the reservation is then aborted.
    ///
    /// ```
    /// # let name = &format!("doc-reservation-commit-len-{}", std::process::id());
    /// let mut tx = shm_channel::Producer::create(name)?;
    /// let mut space = tx.reserve(1024)?;
    /// let text = b"shorter than reserved";
    /// space[..text.len()].copy_from_slice(text);
    /// space.commit_len(text.len())?;
    /// assert_eq!(tx.stat()?.bytes_written, text.len() as u64);
    /// # shm_channel::force_unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    #[inline]
    pub fn commit_len(self, len: usize) -> Result<()> {
        // SAFETY: the handle is open, used by this thread only (the guard holds it
        // mutably), and holds the reservation this guard stands for.
        let rc = unsafe { sys::shm_channel_commit(self.h.raw(), len as u64) };
        if rc == 0 {
            std::mem::forget(self); // committed: nothing left to abort
            Ok(())
        } else {
            Err(Error::from_code(rc, Op::Write)) // `self` drops here and aborts
        }
    }

    /// Drops the reservation without publishing it; the same as dropping the guard.
    ///
    /// ```
    /// # let name = &format!("doc-reservation-abort-{}", std::process::id());
    /// let mut tx = shm_channel::Producer::create(name)?;
    /// tx.reserve(16)?.abort();
    /// assert_eq!(tx.stat()?.msgs_written, 0);
    /// # drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    #[inline]
    pub fn abort(self) {}
}

impl Drop for Reservation<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the handle is open and holds the reservation this guard stands for. The
        // only possible error is "no reservation", which cannot happen here.
        unsafe { sys::shm_channel_abort(self.h.raw()) };
    }
}

impl Deref for Reservation<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.buf
    }
}

impl DerefMut for Reservation<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buf
    }
}

impl fmt::Debug for Reservation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("len", &self.buf.len())
            .finish_non_exhaustive()
    }
}
