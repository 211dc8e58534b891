//! The owned C handle shared by the three role types.

use std::ptr::{self, NonNull};
use std::time::Duration;

use shm_channel_sys as sys;

use crate::error::{check, Error, Op, Result};
use crate::stats::Stats;

/// An open `shm_channel_t`, closed on drop, plus the handle's timeout.
pub(crate) struct Handle {
    raw: NonNull<sys::shm_channel_t>,
    /// Timeout for waiting calls, in the C convention (negative: forever, 0: never wait).
    timeout_ns: i64,
    name: Box<str>,
}

// SAFETY: a shm_channel_t holds only file descriptors, a memory mapping and plain fields;
// it has no thread-local state and no thread affinity (its OFD locks belong to the open
// file description, not to a thread). shm_channel.h: "a handle is used by one thread at a
// time (it may move between threads)". Handle is deliberately not Sync: the C functions
// update the handle's private state (cached positions, the reservation or peeked record)
// without locking, so two threads must never use one handle at once.
unsafe impl Send for Handle {}

impl Handle {
    pub(crate) fn open(
        name: &str,
        role: u32,
        flags: u32,
        capacity: u64,
        mode: u32,
    ) -> Result<Handle> {
        Handle::open_with(name, |out, c_name| {
            // SAFETY: `out` is a valid out-pointer and `c_name` a NUL-terminated string,
            // both alive for the call.
            unsafe { sys::shm_channel_open(out, c_name, role, flags, capacity, mode) }
        })
    }

    /// Opens a handle with `open`, one of the library's open calls, given the out-pointer
    /// and the NUL-terminated name; on success we own the handle it returns.
    pub(crate) fn open_with(
        name: &str,
        open: impl FnOnce(*mut *mut sys::shm_channel_t, *const std::ffi::c_char) -> i32,
    ) -> Result<Handle> {
        crate::check_library()?;
        let c_name = crate::c_name(name)?;
        let mut raw = ptr::null_mut();
        let rc = open(&mut raw, c_name.as_ptr());
        check(rc, Op::Other)?;
        let raw = NonNull::new(raw)
            .ok_or_else(|| Error::Io(std::io::Error::other("shm_channel_open returned NULL")))?;
        Ok(Handle {
            raw,
            timeout_ns: sys::SHM_CHANNEL_INFINITE,
            name: name.into(),
        })
    }

    #[inline]
    pub(crate) fn raw(&self) -> *mut sys::shm_channel_t {
        self.raw.as_ptr()
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    pub(crate) fn timeout_ns(&self) -> i64 {
        self.timeout_ns
    }

    pub(crate) fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout_ns = timeout_ns(timeout);
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        u64::try_from(self.timeout_ns)
            .ok()
            .map(Duration::from_nanos)
    }

    pub(crate) fn set_spin(&mut self, spin: Duration) -> Result<()> {
        let ns = u64::try_from(spin.as_nanos()).unwrap_or(u64::MAX);
        // SAFETY: `self.raw` is an open handle, used by this thread only (&mut self).
        check(
            unsafe { sys::shm_channel_set_spin(self.raw(), ns) },
            Op::Other,
        )
        .map(drop)
    }

    pub(crate) fn capacity(&self) -> usize {
        // SAFETY: `self.raw` is an open handle; this reads a field fixed at open.
        unsafe { sys::shm_channel_capacity(self.raw()) as usize }
    }

    pub(crate) fn max_payload(&self) -> usize {
        // SAFETY: `self.raw` is an open handle; this reads a field fixed at open.
        unsafe { sys::shm_channel_max_payload(self.raw()) as usize }
    }

    pub(crate) fn stat(&self) -> Result<Stats> {
        let mut st = sys::shm_channel_stat_t::default();
        // SAFETY: `self.raw` is an open handle and `st` a valid out-pointer. stat only
        // reads the handle's fixed fields and the shared header, so &self suffices (and
        // Handle is not Sync, so no other thread uses it meanwhile).
        let rc = unsafe { sys::shm_channel_stat(self.raw(), &mut st) };
        check(rc, Op::Other)?;
        Ok(Stats::from_raw(&st))
    }
}

/// A timeout in the C convention: `None` waits forever (negative), durations beyond i64
/// nanoseconds (292 years) saturate instead of wrapping to "forever" or "never wait".
pub(crate) fn timeout_ns(timeout: Option<Duration>) -> i64 {
    match timeout {
        None => sys::SHM_CHANNEL_INFINITE,
        Some(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: we own the handle and close it exactly once; nothing borrows it any more
        // (guards borrow the owning Producer/Consumer mutably, so they are gone).
        unsafe { sys::shm_channel_close(self.raw()) }
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("name", &self.name)
            .field("capacity", &self.capacity())
            .field("timeout", &self.timeout())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle() -> Handle {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("rs-unit-{}-{n}", std::process::id());
        let h = Handle::open(
            &name,
            sys::SHM_CHANNEL_PRODUCER,
            sys::SHM_CHANNEL_CREATE,
            0,
            0,
        )
        .unwrap();
        crate::force_unlink(&name).unwrap();
        h
    }

    #[test]
    fn timeouts_map_to_the_c_convention() {
        let mut h = handle();
        assert_eq!(h.timeout_ns(), -1);
        assert_eq!(h.timeout(), None);
        h.set_timeout(Some(Duration::ZERO));
        assert_eq!(h.timeout_ns(), 0);
        assert_eq!(h.timeout(), Some(Duration::ZERO));
        h.set_timeout(Some(Duration::from_millis(1500)));
        assert_eq!(h.timeout_ns(), 1_500_000_000);
        // Durations beyond i64 nanoseconds (292 years) saturate instead of wrapping to a
        // negative "forever" or a zero "never wait".
        h.set_timeout(Some(Duration::MAX));
        assert_eq!(h.timeout_ns(), i64::MAX);
        h.set_timeout(None);
        assert_eq!(h.timeout_ns(), sys::SHM_CHANNEL_INFINITE);
    }

    #[test]
    fn spin_is_bounded() {
        let mut h = handle();
        h.set_spin(Duration::from_micros(5)).unwrap();
        assert!(h.set_spin(Duration::from_secs(11)).is_err());
    }

    #[test]
    fn handle_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Handle>();
        assert_send::<crate::Producer>();
        assert_send::<crate::Consumer>();
        assert_send::<crate::Observer>();
    }
}
