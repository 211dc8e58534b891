//! The reading side of a stream channel.

use std::ops::Deref;
use std::time::Duration;
use std::{fmt, ptr, slice};

use shm_channel_sys as sys;

use crate::error::{check, Error, Op, Result};
use crate::handle::Handle;
use crate::{Batch, OpenOptions, Stats};

/// The reading side of a stream channel: the one process (or handle) that may read.
///
/// Messages arrive in the order they were written. After the producer closes and the ring
/// is drained, reads fail with [`Error::EndOfStream`]; if the producer died instead, with
/// [`Error::PeerDied`]. Waiting calls use the handle's timeout
/// ([`set_timeout`](Self::set_timeout)).
///
/// ```
/// use shm_channel::{Consumer, Producer};
/// # let name = &format!("doc-consumer-{}", std::process::id());
///
/// let mut rx = Consumer::create(name)?;
/// let mut tx = Producer::open(name)?; // in real use: another process
/// tx.write(b"one")?;
/// tx.write(b"two")?;
/// drop(tx);
///
/// let all: Vec<Vec<u8>> = rx.messages().collect::<Result<_, _>>()?;
/// assert_eq!(all, [b"one", b"two"]);
/// # Ok::<(), shm_channel::Error>(())
/// ```
#[derive(Debug)]
pub struct Consumer {
    h: Handle,
}

impl Consumer {
    pub(crate) fn from_handle(h: Handle) -> Consumer {
        Consumer { h }
    }

    /// The owned C handle (compat.rs: the compat-only calls).
    pub(crate) fn handle(&self) -> &Handle {
        &self.h
    }

    /// Opens the channel `name` as its consumer, creating it (with the default capacity)
    /// if it does not exist. Use [`OpenOptions`] for a capacity, a mode or exclusive
    /// creation.
    ///
    /// ```
    /// # let name = &format!("doc-consumer-create-{}", std::process::id());
    /// let rx = shm_channel::Consumer::create(name)?;
    /// assert!(matches!(shm_channel::Consumer::create(name), Err(shm_channel::Error::Busy)));
    /// # drop(rx); shm_channel::unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn create(name: &str) -> Result<Consumer> {
        OpenOptions::new().create(true).consumer(name)
    }

    /// Opens the existing channel `name` as its consumer.
    ///
    /// ```
    /// # let name = &format!("doc-consumer-open-{}", std::process::id());
    /// assert!(shm_channel::Consumer::open(name).is_err()); // no such channel yet
    /// let tx = shm_channel::Producer::create(name)?;
    /// let rx = shm_channel::Consumer::open(name)?;
    /// # drop((tx, rx));
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Consumer> {
        OpenOptions::new().consumer(name)
    }

    /// The channel's name, as given when opening.
    ///
    /// ```
    /// # let name = &format!("doc-consumer-name-{}", std::process::id());
    /// let rx = shm_channel::Consumer::create(name)?;
    /// assert_eq!(rx.name(), name);
    /// # drop(rx); shm_channel::unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        self.h.name()
    }

    /// Capacity of the ring, in bytes.
    ///
    /// ```
    /// # let name = &format!("doc-consumer-cap-{}", std::process::id());
    /// let rx = shm_channel::Consumer::create(name)?;
    /// assert_eq!(rx.capacity(), shm_channel::DEFAULT_CAPACITY);
    /// # drop(rx); shm_channel::unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.h.capacity()
    }

    /// Largest message the channel carries, in bytes.
    ///
    /// ```
    /// # let name = &format!("doc-consumer-max-{}", std::process::id());
    /// let rx = shm_channel::Consumer::create(name)?;
    /// assert_eq!(rx.max_payload(), shm_channel::DEFAULT_CAPACITY / 2 - 8);
    /// # drop(rx); shm_channel::unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn max_payload(&self) -> usize {
        self.h.max_payload()
    }

    /// Sets how long waiting calls wait for a message: `None` (the default) waits
    /// forever, `Some(Duration::ZERO)` never waits.
    ///
    /// ```
    /// use shm_channel::{Consumer, Error};
    /// use std::time::Duration;
    /// # let name = &format!("doc-consumer-timeout-{}", std::process::id());
    ///
    /// let mut rx = Consumer::create(name)?;
    /// rx.set_timeout(Some(Duration::ZERO));
    /// assert!(matches!(rx.read(&mut Vec::new()), Err(Error::WouldBlock)));
    /// rx.set_timeout(Some(Duration::from_millis(10)));
    /// assert!(matches!(rx.read(&mut Vec::new()), Err(Error::TimedOut)));
    /// # drop(rx); shm_channel::unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.h.set_timeout(timeout)
    }

    /// The timeout set by [`set_timeout`](Self::set_timeout).
    ///
    /// ```
    /// # let name = &format!("doc-consumer-gettimeout-{}", std::process::id());
    /// let mut rx = shm_channel::Consumer::create(name)?;
    /// rx.set_timeout(Some(std::time::Duration::from_secs(1)));
    /// assert_eq!(rx.timeout(), Some(std::time::Duration::from_secs(1)));
    /// # drop(rx); shm_channel::unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn timeout(&self) -> Option<Duration> {
        self.h.timeout()
    }

    /// Sets how long a waiting call spins before sleeping on a futex (default 20 µs; zero
    /// sleeps at once). At most 10 s.
    ///
    /// ```
    /// # let name = &format!("doc-consumer-spin-{}", std::process::id());
    /// let mut rx = shm_channel::Consumer::create(name)?;
    /// rx.set_spin(std::time::Duration::ZERO)?; // sleep at once: no busy CPU while idle
    /// # drop(rx); shm_channel::unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn set_spin(&mut self, spin: Duration) -> Result<()> {
        self.h.set_spin(spin)
    }

    /// Reads the next message into `buf`, replacing its contents and growing it as
    /// needed (its capacity is reused from call to call). Returns the message's length.
    ///
    /// Errors: [`Error::EndOfStream`], [`Error::PeerDied`], [`Error::WouldBlock`],
    /// [`Error::TimedOut`], [`Error::Interrupted`], [`Error::Corrupt`].
    ///
    /// ```
    /// # let name = &format!("doc-consumer-read-{}", std::process::id());
    /// # let mut tx = shm_channel::Producer::create(name)?;
    /// # tx.write(b"hello")?;
    /// let mut rx = shm_channel::Consumer::open(name)?;
    /// let mut buf = Vec::new();
    /// assert_eq!(rx.read(&mut buf)?, 5);
    /// assert_eq!(buf, b"hello");
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    #[inline]
    pub fn read(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        buf.clear();
        loop {
            let mut len = 0u64;
            // SAFETY: the library writes at most `buf.capacity()` bytes into the spare
            // capacity of `buf` (which starts at its pointer, as buf is empty) and sets
            // `len`; the handle is used by this thread only (&mut self).
            let rc = unsafe {
                sys::shm_channel_read(
                    self.h.raw(),
                    buf.as_mut_ptr().cast(),
                    buf.capacity() as u64,
                    &mut len,
                    self.h.timeout_ns(),
                )
            };
            if rc == 0 {
                let len = len as usize;
                assert!(len <= buf.capacity(), "shm_channel_read overran its buffer");
                // SAFETY: on success the library wrote the first `len` bytes, within the
                // capacity (checked above).
                unsafe { buf.set_len(len) };
                return Ok(len);
            }
            if rc != -libc::EMSGSIZE {
                return Err(Error::from_code(rc, Op::Read));
            }
            // Too small: the message stays peeked, so the retry returns it at once. (A size
            // that already fits would be the library contradicting itself: stop there.)
            if len as usize <= buf.capacity() {
                return Err(Error::from_code(rc, Op::Read));
            }
            buf.reserve_exact(len as usize);
        }
    }

    /// Reads the next message into `buf` and returns its length. If `buf` is too small,
    /// fails with [`Error::BufferTooSmall`], and the message stays for the next read.
    /// Other errors as [`read`](Self::read).
    ///
    /// ```
    /// use shm_channel::Error;
    /// # let name = &format!("doc-consumer-read-into-{}", std::process::id());
    /// # let mut tx = shm_channel::Producer::create(name)?;
    /// # tx.write(b"hello")?;
    /// let mut rx = shm_channel::Consumer::open(name)?;
    /// let mut small = [0u8; 2];
    /// assert!(matches!(rx.read_into(&mut small), Err(Error::BufferTooSmall { needed: 5 })));
    /// let mut buf = [0u8; 64];
    /// let n = rx.read_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"hello");
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    #[inline]
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut len = 0u64;
        // SAFETY: `buf` is valid for `buf.len()` bytes of writes during the call; the
        // handle is used by this thread only (&mut self).
        let rc = unsafe {
            sys::shm_channel_read(
                self.h.raw(),
                buf.as_mut_ptr().cast(),
                buf.len() as u64,
                &mut len,
                self.h.timeout_ns(),
            )
        };
        match rc {
            0 => Ok(len as usize),
            rc if rc == -libc::EMSGSIZE => Err(Error::BufferTooSmall {
                needed: len as usize,
            }),
            rc => Err(Error::from_code(rc, Op::Read)),
        }
    }

    /// Shows the next message in place, without copying, waiting for one as the timeout
    /// allows. The message is released when the guard drops; until then, peeking again
    /// returns the same message. Errors as [`read`](Self::read).
    ///
    /// ```
    /// # let name = &format!("doc-consumer-peek-{}", std::process::id());
    /// # let mut tx = shm_channel::Producer::create(name)?;
    /// # tx.write(b"in place")?;
    /// let mut rx = shm_channel::Consumer::open(name)?;
    /// let msg = rx.peek()?;
    /// assert_eq!(&*msg, b"in place");
    /// assert_eq!(msg.as_ptr() as usize % 8, 0); // 8-byte aligned
    /// drop(msg); // released
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    #[inline]
    pub fn peek(&mut self) -> Result<Peeked<'_>> {
        let mut p = ptr::null();
        let mut len = 0u64;
        // SAFETY: `p` and `len` are valid out-pointers; the handle is used by this thread
        // only (&mut self).
        let rc =
            unsafe { sys::shm_channel_peek(self.h.raw(), &mut p, &mut len, self.h.timeout_ns()) };
        check(rc, Op::Read)?;
        let data: &[u8] = if p.is_null() {
            &[]
        } else {
            // SAFETY: on success `p` points at `len` bytes of a published record inside
            // our mapping. The producer does not touch them until we release the record
            // (the guard's drop), and the guard borrows `self` mutably, so the mapping
            // outlives the slice and nothing releases the record behind our back.
            unsafe { slice::from_raw_parts(p.cast::<u8>(), len as usize) }
        };
        Ok(Peeked {
            h: &mut self.h,
            data,
        })
    }

    /// Reads up to `max_msgs` messages into `batch` in one call, replacing its contents:
    /// waits (as [`read`](Self::read)) for the first, then takes as many as are ready and
    /// fit in the batch's byte capacity ([`Batch::with_capacity`]). The batch grows if the
    /// first message alone does not fit. Returns how many were read (0 if `max_msgs` is 0).
    ///
    /// ```
    /// use shm_channel::Batch;
    /// # let name = &format!("doc-consumer-read-batch-{}", std::process::id());
    /// # let mut tx = shm_channel::Producer::create(name)?;
    /// # for m in [&b"a"[..], b"bb", b"ccc"] { tx.write(m)?; }
    /// let mut rx = shm_channel::Consumer::open(name)?;
    /// let mut batch = Batch::with_capacity(64 * 1024, 256);
    /// let n = rx.read_batch(&mut batch, 256)?;
    /// assert_eq!(n, 3);
    /// assert_eq!(batch.iter().collect::<Vec<_>>(), [&b"a"[..], b"bb", b"ccc"]);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    #[inline]
    pub fn read_batch(&mut self, batch: &mut Batch, max_msgs: usize) -> Result<usize> {
        let max = max_msgs.min(i32::MAX as usize);
        batch.clear();
        if max == 0 {
            return Ok(0);
        }
        let (data, lens) = batch.raw_parts_mut();
        lens.reserve(max);
        loop {
            // SAFETY: the library writes at most `data.capacity()` bytes into the spare
            // capacity of `data` and at most `max` (<= lens.capacity()) lengths into the
            // spare capacity of `lens`, both empty vectors; the handle is used by this
            // thread only (&mut self).
            let rc = unsafe {
                sys::shm_channel_read_batch(
                    self.h.raw(),
                    data.as_mut_ptr().cast(),
                    data.capacity() as u64,
                    lens.as_mut_ptr(),
                    max as u32,
                    self.h.timeout_ns(),
                )
            };
            if rc > 0 {
                let n = rc as usize;
                assert!(
                    n <= max,
                    "shm_channel_read_batch returned too many messages"
                );
                // SAFETY: on success the library set the first `n` (<= max, checked above)
                // lengths, within the capacity reserved for `max`.
                unsafe { lens.set_len(n) };
                let total = lens.iter().sum::<u64>();
                assert!(
                    total <= data.capacity() as u64,
                    "shm_channel_read_batch overran its buffer"
                );
                // SAFETY: the library wrote the `total` bytes of those messages, within the
                // capacity (checked above).
                unsafe { data.set_len(total as usize) };
                return Ok(n);
            }
            if rc != -libc::EMSGSIZE {
                return Err(Error::from_code(rc, Op::Read));
            }
            // SAFETY: with -EMSGSIZE the library set lens[0] to the size needed.
            let needed = unsafe { *lens.as_ptr() } as usize;
            if needed <= data.capacity() {
                return Err(Error::from_code(rc, Op::Read));
            }
            data.reserve_exact(needed);
        }
    }

    /// An iterator over the messages, until end-of-stream.
    ///
    /// Each item is a message or an error. The iterator ends after the last message once
    /// the producer has closed. After [`Error::WouldBlock`], [`Error::TimedOut`] or
    /// [`Error::Interrupted`] it may be polled again; after any other error it ends.
    ///
    /// ```
    /// # let name = &format!("doc-consumer-messages-{}", std::process::id());
    /// # let mut tx = shm_channel::Producer::create(name)?;
    /// # for i in 0u64..10 { tx.write(&i.to_le_bytes())?; }
    /// # drop(tx);
    /// let mut rx = shm_channel::Consumer::open(name)?;
    /// let mut n = 0u64;
    /// for msg in rx.messages() {
    ///     let msg = msg?;
    ///     assert_eq!(u64::from_le_bytes(msg[..8].try_into().unwrap()), n);
    ///     n += 1;
    /// }
    /// assert_eq!(n, 10);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn messages(&mut self) -> Messages<'_> {
        Messages {
            rx: self,
            done: false,
        }
    }

    /// A snapshot of the channel's counters and state.
    ///
    /// ```
    /// # let name = &format!("doc-consumer-stat-{}", std::process::id());
    /// let rx = shm_channel::Consumer::create(name)?;
    /// let st = rx.stat()?;
    /// assert!(st.consumer_alive && !st.producer_alive);
    /// # drop(rx); shm_channel::unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn stat(&self) -> Result<Stats> {
        self.h.stat()
    }

    /// Closes the consumer; the same as dropping it. A message peeked and not released
    /// stays for the next consumer.
    ///
    /// ```
    /// # let name = &format!("doc-consumer-close-{}", std::process::id());
    /// let rx = shm_channel::Consumer::create(name)?;
    /// rx.close();
    /// let rx = shm_channel::Consumer::open(name)?; // the role is free again
    /// # drop(rx); shm_channel::unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn close(self) {}
}

impl<'a> IntoIterator for &'a mut Consumer {
    type Item = Result<Vec<u8>>;
    type IntoIter = Messages<'a>;

    /// Same as [`Consumer::messages`].
    ///
    /// ```
    /// # let name = &format!("doc-consumer-into-iter-{}", std::process::id());
    /// # shm_channel::Producer::create(name)?.write(b"x")?;
    /// let mut rx = shm_channel::Consumer::open(name)?;
    /// for msg in &mut rx {
    ///     assert_eq!(msg?, b"x");
    /// }
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    fn into_iter(self) -> Messages<'a> {
        self.messages()
    }
}

/// Iterator over a consumer's messages until end-of-stream; see [`Consumer::messages`].
///
/// ```
/// # let name = &format!("doc-messages-{}", std::process::id());
/// # let mut tx = shm_channel::Producer::create(name)?;
/// # tx.write(b"a")?; tx.write(b"b")?; drop(tx);
/// let mut rx = shm_channel::Consumer::open(name)?;
/// let mut it: shm_channel::Messages<'_> = rx.messages();
/// assert_eq!(it.next().unwrap()?, b"a");
/// assert_eq!(it.next().unwrap()?, b"b");
/// assert!(it.next().is_none()); // end-of-stream
/// # Ok::<(), shm_channel::Error>(())
/// ```
#[derive(Debug)]
pub struct Messages<'a> {
    rx: &'a mut Consumer,
    done: bool,
}

impl Iterator for Messages<'_> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Result<Vec<u8>>> {
        if self.done {
            return None;
        }
        match self.rx.peek() {
            Ok(msg) => Some(Ok(msg.to_vec())),
            Err(Error::EndOfStream) => {
                self.done = true;
                None
            }
            Err(e @ (Error::WouldBlock | Error::TimedOut | Error::Interrupted)) => Some(Err(e)),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for Messages<'_> {}

/// The next message, in place in the ring, from [`Consumer::peek`]: dereferences to
/// `&[u8]`. Dropping it releases the message.
///
/// ```
/// # let name = &format!("doc-peeked-{}", std::process::id());
/// # shm_channel::Producer::create(name)?.write(&[1, 2, 3])?;
/// let mut rx = shm_channel::Consumer::open(name)?;
/// let msg: shm_channel::Peeked<'_> = rx.peek()?;
/// let sum: u32 = msg.iter().map(|&b| u32::from(b)).sum();
/// assert_eq!((msg.len(), sum), (3, 6));
/// # Ok::<(), shm_channel::Error>(())
/// ```
pub struct Peeked<'a> {
    h: &'a mut Handle,
    data: &'a [u8],
}

impl Peeked<'_> {
    /// Releases the message; the same as dropping the guard.
    ///
    /// ```
    /// # let name = &format!("doc-peeked-release-{}", std::process::id());
    /// # shm_channel::Producer::create(name)?.write(b"once")?;
    /// let mut rx = shm_channel::Consumer::open(name)?;
    /// rx.peek()?.release();
    /// assert!(matches!(rx.peek(), Err(shm_channel::Error::EndOfStream)));
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    #[inline]
    pub fn release(self) {}
}

impl Drop for Peeked<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the handle is open, used by this thread only (the guard holds it
        // mutably), and has the record this guard shows peeked. The only possible error
        // is "nothing peeked", which cannot happen here.
        unsafe { sys::shm_channel_release(self.h.raw()) };
    }
}

impl Deref for Peeked<'_> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.data
    }
}

impl AsRef<[u8]> for Peeked<'_> {
    /// The message's bytes.
    ///
    /// ```
    /// # let name = &format!("doc-peeked-as-ref-{}", std::process::id());
    /// # shm_channel::Producer::create(name)?.write(b"abc")?;
    /// let mut rx = shm_channel::Consumer::open(name)?;
    /// let msg = rx.peek()?;
    /// let bytes: &[u8] = msg.as_ref();
    /// assert_eq!(bytes, b"abc");
    /// # drop(msg);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    fn as_ref(&self) -> &[u8] {
        self.data
    }
}

impl fmt::Debug for Peeked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peeked")
            .field("len", &self.data.len())
            .finish_non_exhaustive()
    }
}
