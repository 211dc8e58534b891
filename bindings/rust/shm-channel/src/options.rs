//! How a channel is opened: the builder behind `Producer::create` and friends.

use shm_channel_sys as sys;

use crate::error::Result;
use crate::handle::Handle;
use crate::{Consumer, Observer, Producer};

/// Options for opening a channel, in the manner of [`std::fs::OpenOptions`].
///
/// By default a channel is opened only if it exists, with any capacity, and refused if it
/// belongs to another user or is more permissive than mode `0600`.
///
/// ```
/// use shm_channel::OpenOptions;
/// # let name = &format!("doc-options-{}", std::process::id());
///
/// let tx = OpenOptions::new().create(true).capacity(1 << 20).producer(name)?;
/// let rx = OpenOptions::new().consumer(name)?; // opens the existing channel
/// assert_eq!(rx.capacity(), 1 << 20);
/// # drop((tx, rx));
/// # Ok::<(), shm_channel::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    flags: u32,
    capacity: u64,
    mode: u32,
}

impl Default for OpenOptions {
    /// Same as [`OpenOptions::new`].
    ///
    /// ```
    /// let opts = shm_channel::OpenOptions::default();
    /// # let _ = opts;
    /// ```
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// Options that open an existing channel of any capacity, with mode `0600`.
    ///
    /// ```
    /// let opts = shm_channel::OpenOptions::new();
    /// assert!(opts.producer("doc-options-new-missing").is_err()); // does not exist
    /// ```
    pub fn new() -> Self {
        OpenOptions {
            flags: 0,
            capacity: 0,
            mode: 0o600,
        }
    }

    /// Creates the channel if it does not exist. Either side may create it.
    ///
    /// ```
    /// # let name = &format!("doc-options-create-{}", std::process::id());
    /// let rx = shm_channel::OpenOptions::new().create(true).consumer(name)?;
    /// # drop(rx); shm_channel::unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.set(sys::SHM_CHANNEL_CREATE, create);
        if !create {
            self.set(sys::SHM_CHANNEL_EXCL, false);
        }
        self
    }

    /// Creates the channel, failing if it already exists (`ErrorKind::AlreadyExists`).
    ///
    /// ```
    /// use shm_channel::{Error, OpenOptions};
    /// # let name = &format!("doc-options-new-{}", std::process::id());
    /// let tx = OpenOptions::new().create_new(true).producer(name)?;
    /// let again = OpenOptions::new().create_new(true).consumer(name);
    /// assert!(matches!(again, Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists));
    /// # drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn create_new(&mut self, create_new: bool) -> &mut Self {
        self.set(sys::SHM_CHANNEL_EXCL, create_new);
        if create_new {
            self.set(sys::SHM_CHANNEL_CREATE, true);
        }
        self
    }

    /// Ring capacity in bytes: a power of two from [`MIN_CAPACITY`](crate::MIN_CAPACITY)
    /// to 2^40. When creating, 0 (the default) means
    /// [`DEFAULT_CAPACITY`](crate::DEFAULT_CAPACITY); when opening, 0 accepts any capacity
    /// and anything else must match the existing channel (`ErrorKind::InvalidInput`). The
    /// largest message is a little under half the capacity.
    ///
    /// ```
    /// # let name = &format!("doc-options-cap-{}", std::process::id());
    /// let tx = shm_channel::OpenOptions::new().create(true).capacity(4096).producer(name)?;
    /// assert_eq!(tx.capacity(), 4096);
    /// assert_eq!(tx.max_payload(), 2040);
    /// # drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn capacity(&mut self, bytes: usize) -> &mut Self {
        self.capacity = bytes as u64;
        self
    }

    /// The recommended capacity for messages of up to `max_message` bytes: the smallest
    /// power of two whose largest message (`capacity / 2 - 8`) holds one, and at least
    /// [`DEFAULT_CAPACITY`](crate::DEFAULT_CAPACITY). For large messages (video frames) a
    /// bigger ring is slower, not faster: two frames take turns in a ring this size and stay
    /// in the last-level cache, where a ring of four or five frames makes every copy go to
    /// memory (1080p, 6,220,800 B: 16 MiB, not 32; bench/README.md has the measurements).
    /// A size no capacity can hold gives a capacity the open refuses.
    ///
    /// ```
    /// # let name = &format!("doc-options-cap-for-{}", std::process::id());
    /// let frame = 1920 * 1080 * 3;
    /// let mut tx = shm_channel::OpenOptions::new()
    ///     .create(true)
    ///     .capacity_for_message(frame)
    ///     .producer(name)?;
    /// assert_eq!(tx.capacity(), 16 << 20);
    /// tx.reserve(frame)?.commit()?;
    /// # shm_channel::force_unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn capacity_for_message(&mut self, max_message: usize) -> &mut Self {
        self.capacity(recommended_capacity(max_message))
    }

    /// Permission bits of a new segment (default `0o600`). An existing segment with bits
    /// beyond these is refused unless [`allow_foreign`](Self::allow_foreign).
    ///
    /// ```
    /// # let name = &format!("doc-options-mode-{}", std::process::id());
    /// let tx = shm_channel::OpenOptions::new().create(true).mode(0o640).producer(name)?;
    /// // A consumer asking for 0600 refuses the more permissive segment...
    /// assert!(shm_channel::Consumer::open(name).is_err());
    /// // ...unless it asks for the same mode.
    /// let rx = shm_channel::OpenOptions::new().mode(0o640).consumer(name)?;
    /// # drop((tx, rx));
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Accepts a segment owned by another user, or more permissive than the mode asked
    /// for. Names in the segment directory can be squatted: only use this for segments
    /// you expect to be shared.
    ///
    /// ```
    /// # let name = &format!("doc-options-foreign-{}", std::process::id());
    /// let tx = shm_channel::OpenOptions::new().create(true).mode(0o666).producer(name)?;
    /// let rx = shm_channel::OpenOptions::new().allow_foreign(true).consumer(name)?;
    /// # drop((tx, rx));
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn allow_foreign(&mut self, allow: bool) -> &mut Self {
        self.set(sys::SHM_CHANNEL_ALLOW_FOREIGN, allow);
        self
    }

    /// Opens the channel `name` as its producer (the one writer). A second live producer
    /// gets [`Error::Busy`](crate::Error::Busy).
    ///
    /// `name`: 1 to 200 characters of `[A-Za-z0-9._-]`, not starting with `.`, optionally
    /// preceded by `/`.
    ///
    /// ```
    /// # let name = &format!("doc-options-producer-{}", std::process::id());
    /// let tx = shm_channel::OpenOptions::new().create(true).producer(name)?;
    /// assert_eq!(tx.name(), name);
    /// # drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn producer(&self, name: &str) -> Result<Producer> {
        self.open(name, sys::SHM_CHANNEL_PRODUCER)
            .map(Producer::from_handle)
    }

    /// Opens the channel `name` as its consumer (the one reader). A second live consumer
    /// gets [`Error::Busy`](crate::Error::Busy). A new consumer resumes after the last
    /// message the previous one released.
    ///
    /// ```
    /// # let name = &format!("doc-options-consumer-{}", std::process::id());
    /// let rx = shm_channel::OpenOptions::new().create(true).consumer(name)?;
    /// assert!(shm_channel::Consumer::open(name).is_err()); // the role is taken
    /// # drop(rx); shm_channel::unlink(name)?;
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn consumer(&self, name: &str) -> Result<Consumer> {
        self.open(name, sys::SHM_CHANNEL_CONSUMER)
            .map(Consumer::from_handle)
    }

    /// Opens the channel `name` read-only, for [`Observer::stat`]; claims no role. The
    /// channel must exist ([`create`](Self::create) is refused with
    /// `ErrorKind::InvalidInput`).
    ///
    /// ```
    /// # let name = &format!("doc-options-observer-{}", std::process::id());
    /// let tx = shm_channel::Producer::create(name)?;
    /// let obs = shm_channel::OpenOptions::new().observer(name)?;
    /// assert!(obs.stat()?.producer_alive);
    /// # drop(tx);
    /// # Ok::<(), shm_channel::Error>(())
    /// ```
    pub fn observer(&self, name: &str) -> Result<Observer> {
        self.open(name, sys::SHM_CHANNEL_OBSERVER)
            .map(Observer::from_handle)
    }

    fn open(&self, name: &str, role: u32) -> Result<Handle> {
        Handle::open(name, role, self.flags, self.capacity, self.mode)
    }

    pub(crate) fn set(&mut self, flag: u32, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

/// [`OpenOptions::capacity_for_message`]'s capacity: saturates (to a capacity the open
/// refuses) where no power of two holds the message.
fn recommended_capacity(max_message: usize) -> usize {
    max_message
        .checked_add(8)
        .and_then(|r| r.checked_mul(2))
        .and_then(usize::checked_next_power_of_two)
        .map_or(usize::MAX, |c| c.max(crate::DEFAULT_CAPACITY))
}

#[cfg(test)]
mod tests {
    use super::recommended_capacity;

    #[test]
    fn recommended_capacity_is_the_smallest_that_holds_the_message() {
        assert_eq!(recommended_capacity(0), crate::DEFAULT_CAPACITY);
        assert_eq!(recommended_capacity(64), crate::DEFAULT_CAPACITY);
        // 1080p frame: 16 MiB (largest message 8 MiB - 8), not 32.
        assert_eq!(recommended_capacity(6_220_800), 16 << 20);
        // The boundary: capacity / 2 - 8 is the largest message.
        assert_eq!(recommended_capacity((8 << 20) - 8), 16 << 20);
        assert_eq!(recommended_capacity((8 << 20) - 7), 32 << 20);
        for len in [1usize, 1000, 600_000, 6_220_800, 100 << 20] {
            let c = recommended_capacity(len);
            assert!(
                c.is_power_of_two()
                    && c / 2 - 8 >= len
                    && (c / 4 < len + 8 || c == crate::DEFAULT_CAPACITY)
            );
        }
        assert_eq!(recommended_capacity(usize::MAX), usize::MAX);
        assert_eq!(recommended_capacity(usize::MAX / 2), usize::MAX);
    }
}
