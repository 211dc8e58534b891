//! Services (kind 4, `spec/service.md`): one [`Server`], many [`Client`]s, request/response.
//!
//! A server offers a named service; up to `max_clients` clients (64 by default) send it
//! requests, each with one request in flight, and each gets only the answer to its own
//! request. The server waits for the next request from any client in one call
//! ([`Server::receive`]), may hold one request of every client at once, and answers them in
//! any order ([`Server::respond`]), or not at all ([`Server::drop_request`]).
//!
//! ```
//! use shm_channel::{Client, Server};
//! use std::time::Duration;
//! # let name = &format!("doc-service-{}", std::process::id());
//!
//! let mut server = Server::create(name)?;
//! let mut client = Client::create(name)?; // in real use: another process
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         let mut buf = Vec::new();
//!         let id = server.receive(&mut buf, None)?;
//!         buf.reverse();
//!         server.respond(id, &buf)
//!     });
//!     let answer = client.request(b"ping", Some(Duration::from_secs(10)))?;
//!     assert_eq!(answer, b"gnip");
//!     Ok::<(), shm_channel::Error>(())
//! })?;
//! # Ok::<(), shm_channel::Error>(())
//! ```
//!
//! # Errors
//!
//! As for streams ([`Error`]), with these meanings for a client's request:
//! [`Error::TimedOut`] (no answer in time: the request was withdrawn if the server had not
//! taken it, and its late answer is never returned by a later request), [`Error::PeerDied`]
//! (the server died; no successor runs the request), [`Error::Io`] of kind
//! [`BrokenPipe`](std::io::ErrorKind::BrokenPipe) (the server closed) or
//! [`ConnectionReset`](std::io::ErrorKind::ConnectionReset) (the server that had the
//! request is gone and another has attached: send it again), [`Error::MessageTooLarge`],
//! [`Error::Interrupted`] (a signal: the request was given up). Opening a client when every
//! slot is held gives [`Error::Io`] with `errno` `EUSERS`; a second live server
//! [`Error::Busy`].

use std::ops::{Deref, DerefMut};
use std::time::Duration;
use std::{fmt, ptr, slice};

use shm_channel_sys as sys;

use crate::error::{check, Error, Op, Result};
use crate::handle::{timeout_ns, Handle};

/// Options for opening a service, in the manner of [`crate::OpenOptions`]: by default an
/// existing service of any size is opened, and refused if it belongs to another user or is
/// more permissive than mode `0600`.
///
/// ```
/// use shm_channel::ServiceOptions;
/// # let name = &format!("doc-svc-options-{}", std::process::id());
/// let server = ServiceOptions::new()
///     .create(true)
///     .max_request(64)
///     .max_response(1 << 20)
///     .max_clients(8)
///     .server(name)?;
/// assert_eq!((server.max_request(), server.max_response(), server.max_clients()),
///            (64, 1 << 20, 8));
/// # Ok::<(), shm_channel::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    flags: u32,
    cfg: sys::shm_channel_service_config_t,
    mode: u32,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ServiceOptions {
    /// Options that open an existing service of any size, with mode `0600`.
    pub fn new() -> Self {
        ServiceOptions {
            flags: 0,
            cfg: sys::shm_channel_service_config_t::default(),
            mode: 0o600,
        }
    }

    /// Creates the service if it does not exist. Either side may create it.
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.set(sys::SHM_CHANNEL_CREATE, create);
        if !create {
            self.set(sys::SHM_CHANNEL_EXCL, false);
        }
        self
    }

    /// Creates the service, failing if it already exists (`ErrorKind::AlreadyExists`).
    pub fn create_new(&mut self, create_new: bool) -> &mut Self {
        self.set(sys::SHM_CHANNEL_EXCL, create_new);
        if create_new {
            self.set(sys::SHM_CHANNEL_CREATE, true);
        }
        self
    }

    /// Largest request, 0 to 2^30 bytes; 0 (the default) accepts an existing service's and
    /// creates 4096.
    pub fn max_request(&mut self, bytes: usize) -> &mut Self {
        self.cfg.max_request = bytes as u64;
        self
    }

    /// Largest response, as [`max_request`](Self::max_request).
    pub fn max_response(&mut self, bytes: usize) -> &mut Self {
        self.cfg.max_response = bytes as u64;
        self
    }

    /// Client slots, 1 to 1024; 0 (the default) accepts an existing service's and creates 64.
    pub fn max_clients(&mut self, clients: u32) -> &mut Self {
        self.cfg.max_clients = clients;
        self
    }

    /// Permission bits of a new segment (default `0o600`), as [`crate::OpenOptions::mode`].
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// Accepts a segment owned by another user or more permissive than the mode, as
    /// [`crate::OpenOptions::allow_foreign`].
    pub fn allow_foreign(&mut self, allow: bool) -> &mut Self {
        self.set(sys::SHM_CHANNEL_ALLOW_FOREIGN, allow);
        self
    }

    /// Opens the service `name` as its server. A second live server gets [`Error::Busy`];
    /// after one closes or dies, a new one takes over the name.
    pub fn server(&self, name: &str) -> Result<Server> {
        let svc = self.open(name, sys::SHM_CHANNEL_SERVER)?;
        Ok(Server {
            svc,
            dead: Vec::new(),
        })
    }

    /// Opens the service `name` as one of its clients (`errno` `EUSERS` when every slot is
    /// held by a live client). A client never waits here for a server: requests do.
    pub fn client(&self, name: &str) -> Result<Client> {
        let svc = self.open(name, sys::SHM_CHANNEL_CLIENT)?;
        Ok(Client { svc })
    }

    fn open(&self, name: &str, role: u32) -> Result<Service> {
        let h = Handle::open_with(name, |out, c_name| {
            // SAFETY: `out` is a valid out-pointer, `c_name` a NUL-terminated string and
            // `cfg` a valid config, all alive for the call.
            unsafe {
                sys::shm_channel_open_service(out, c_name, role, self.flags, &self.cfg, self.mode)
            }
        })?;
        let st = stat(&h)?;
        Ok(Service {
            h,
            max_request: st.max_request as usize,
            max_response: st.max_response as usize,
            max_clients: st.max_clients,
        })
    }

    fn set(&mut self, flag: u32, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

/// A snapshot of a service's counters (`shm_channel_service_stat_t`).
pub type ServiceStats = sys::shm_channel_service_stat_t;

fn stat(h: &Handle) -> Result<ServiceStats> {
    let mut st = ServiceStats::default();
    // SAFETY: `h` is an open handle and `st` a valid out-pointer; the call only reads the
    // handle's fixed fields and the shared segment.
    let rc = unsafe { sys::shm_channel_service_stat(h.raw(), &mut st) };
    check(rc, Op::Other)?;
    Ok(st)
}

/// What servers and clients share.
#[derive(Debug)]
struct Service {
    h: Handle,
    max_request: usize,
    max_response: usize,
    max_clients: u32,
}

/// The error for a C return value of a service call.
fn fail(rc: i32) -> Error {
    Error::from_code(rc, Op::Other)
}

macro_rules! common {
    () => {
        /// The service's name, as given when opening.
        pub fn name(&self) -> &str {
            self.svc.h.name()
        }

        /// The largest request, in bytes.
        pub fn max_request(&self) -> usize {
            self.svc.max_request
        }

        /// The largest response, in bytes.
        pub fn max_response(&self) -> usize {
            self.svc.max_response
        }

        /// How many clients may be attached at once.
        pub fn max_clients(&self) -> u32 {
            self.svc.max_clients
        }

        /// A snapshot of the service's counters (clients, requests, responses...).
        pub fn stats(&self) -> Result<ServiceStats> {
            stat(&self.svc.h)
        }

        /// Sets how long a waiting call spins before it sleeps (default 20 µs; at most 10 s).
        pub fn set_spin(&mut self, spin: Duration) -> Result<()> {
            self.svc.h.set_spin(spin)
        }
    };
}

// ---- client ------------------------------------------------------------------------------

/// A client of a service: sends requests, one at a time, and waits for their answers.
///
/// Dropping it frees its slot (a request still pending is given up).
#[derive(Debug)]
pub struct Client {
    svc: Service,
}

impl Client {
    /// Opens the service `name` as a client, creating it (with the default sizes) if it
    /// does not exist. Use [`ServiceOptions`] for sizes, a mode or exclusive creation.
    pub fn create(name: &str) -> Result<Client> {
        ServiceOptions::new().create(true).client(name)
    }

    /// Opens the existing service `name` as a client.
    pub fn open(name: &str) -> Result<Client> {
        ServiceOptions::new().client(name)
    }

    common!();

    /// Sends `req` and returns the answer. If no server is attached yet, first waits for
    /// one within the same timeout (`None`: forever). See the module's errors.
    pub fn request(&mut self, req: &[u8], timeout: Option<Duration>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.request_into(req, &mut out, timeout)?;
        Ok(out)
    }

    /// As [`request`](Self::request), into `resp` (resized to the answer; its capacity is
    /// kept, so a reused buffer allocates once).
    pub fn request_into(
        &mut self,
        req: &[u8],
        resp: &mut Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if req.len() > self.svc.max_request {
            return Err(self.too_large(req.len()));
        }
        resp.clear();
        resp.reserve(self.svc.max_response);
        let mut len = 0u64;
        // SAFETY: `req` is readable for its length and `resp` writable for its capacity
        // (at least max_response bytes, so the answer always fits); the handle is used by
        // this thread only (&mut self).
        let rc = unsafe {
            sys::shm_channel_request(
                self.svc.h.raw(),
                req.as_ptr().cast(),
                req.len() as u64,
                resp.as_mut_ptr().cast(),
                resp.capacity() as u64,
                &mut len,
                timeout_ns(timeout),
            )
        };
        if rc < 0 {
            return Err(self.request_error(rc, req.len()));
        }
        // SAFETY: the library wrote `len` <= capacity bytes of the answer.
        unsafe { resp.set_len(len as usize) };
        Ok(())
    }

    /// Zero-copy answer: sends `req` and returns a guard that shows the answer in place, in
    /// the shared segment, until it is dropped (the next request reuses the space).
    pub fn request_in_place(
        &mut self,
        req: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Response<'_>> {
        let mut space = self.reserve(req.len(), timeout)?;
        space.copy_from_slice(req);
        space.send(timeout)
    }

    /// Zero-copy request: space for a request of `len` bytes in this client's request
    /// buffer. Fill it, then [`RequestSpace::send`] sends it and waits for the answer;
    /// dropping the guard sends nothing. `timeout` bounds the wait for a server (and for
    /// the buffer, while the server still reads a request this client gave up on).
    pub fn reserve(&mut self, len: usize, timeout: Option<Duration>) -> Result<RequestSpace<'_>> {
        if len > self.svc.max_request {
            return Err(self.too_large(len));
        }
        let mut p = ptr::null_mut();
        // SAFETY: `p` is a valid out-pointer; the handle is used by this thread only.
        let rc = unsafe {
            sys::shm_channel_reserve(self.svc.h.raw(), len as u64, &mut p, timeout_ns(timeout))
        };
        if rc < 0 {
            return Err(self.request_error(rc, len));
        }
        let space: &mut [u8] = if len == 0 {
            &mut []
        } else {
            // SAFETY: on success `p` points at `len` writable bytes in our mapping that nobody
            // else touches until the request is committed (or, aborted, the next reserve).
            unsafe { slice::from_raw_parts_mut(p.cast(), len) }
        };
        Ok(RequestSpace {
            client: self,
            space,
        })
    }

    /// Waits until a live server is attached: [`Error::TimedOut`] if none came in time.
    pub fn wait_server(&mut self, timeout: Option<Duration>) -> Result<()> {
        // SAFETY: the handle is open and used by this thread only.
        let rc = unsafe { sys::shm_channel_wait_server(self.svc.h.raw(), timeout_ns(timeout)) };
        check(rc, Op::Other).map(drop)
    }

    fn too_large(&self, len: usize) -> Error {
        Error::MessageTooLarge {
            len,
            max: self.svc.max_request,
        }
    }

    fn request_error(&self, rc: i32, len: usize) -> Error {
        if rc == -libc::EMSGSIZE {
            self.too_large(len)
        } else {
            fail(rc)
        }
    }

    fn response(&mut self, timeout: Option<Duration>) -> Result<Response<'_>> {
        let mut p = ptr::null();
        let mut len = 0u64;
        // SAFETY: valid out-pointers; the handle is used by this thread only.
        let rc = unsafe {
            sys::shm_channel_response(self.svc.h.raw(), &mut p, &mut len, timeout_ns(timeout))
        };
        if rc < 0 {
            return Err(fail(rc));
        }
        let data: &[u8] = if len == 0 || p.is_null() {
            &[]
        } else {
            // SAFETY: on success `p` points at `len` bytes of the answer inside our mapping,
            // which the server writes again only after this client's next request: the guard
            // borrows the client mutably, so no request can be sent while it lives.
            unsafe { slice::from_raw_parts(p.cast(), len as usize) }
        };
        Ok(Response { data })
    }
}

/// Space for a request in place, from [`Client::reserve`].
pub struct RequestSpace<'a> {
    client: &'a mut Client,
    space: &'a mut [u8],
}

impl<'a> RequestSpace<'a> {
    /// Sends the request and waits (up to `timeout`) for its answer, shown in place.
    pub fn send(self, timeout: Option<Duration>) -> Result<Response<'a>> {
        let len = self.space.len();
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: moving the client reference out of a value that is never dropped (its
        // Drop would abort the reservation that commit publishes below).
        let client: &'a mut Client = unsafe { ptr::read(&this.client) };
        // SAFETY: the handle holds this reservation; used by this thread only.
        let rc = unsafe { sys::shm_channel_commit(client.svc.h.raw(), len as u64) };
        if rc < 0 {
            return Err(client.request_error(rc, len));
        }
        client.response(timeout)
    }
}

impl Drop for RequestSpace<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle holds this reservation (the guard borrows it mutably).
        unsafe { sys::shm_channel_abort(self.client.svc.h.raw()) };
    }
}

impl Deref for RequestSpace<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.space
    }
}

impl DerefMut for RequestSpace<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.space
    }
}

impl fmt::Debug for RequestSpace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSpace")
            .field("len", &self.space.len())
            .finish_non_exhaustive()
    }
}

/// An answer shown in place (zero-copy), from [`Client::request_in_place`] or
/// [`RequestSpace::send`]; valid while the guard lives.
pub struct Response<'a> {
    data: &'a [u8],
}

impl Deref for Response<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data
    }
}

impl fmt::Debug for Response<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("len", &self.data.len())
            .finish_non_exhaustive()
    }
}

// ---- server ------------------------------------------------------------------------------

/// Names one received request: the client's slot and the request's number in that slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(sys::shm_channel_request_id_t);

impl RequestId {
    /// The client's slot, 0 to `max_clients - 1`.
    pub fn client(&self) -> u32 {
        self.0.client
    }

    /// The request's number in its slot, from 1 (unique for the life of the segment).
    pub fn seq(&self) -> u64 {
        self.0.seq
    }
}

/// The server of a service: receives requests from any client and answers them.
///
/// Dropping it closes it: clients waiting for an answer get `BrokenPipe`, and the name
/// stays for the next server. If it dies instead, they get [`Error::PeerDied`].
#[derive(Debug)]
pub struct Server {
    svc: Service,
    dead: Vec<u32>,
}

impl Server {
    /// Opens the service `name` as its server, creating it (with the default sizes) if it
    /// does not exist. Use [`ServiceOptions`] for sizes, a mode or exclusive creation.
    pub fn create(name: &str) -> Result<Server> {
        ServiceOptions::new().create(true).server(name)
    }

    /// Opens the existing service `name` as its server.
    pub fn open(name: &str) -> Result<Server> {
        ServiceOptions::new().server(name)
    }

    common!();

    /// Waits (up to `timeout`; `None` forever, zero never: [`Error::WouldBlock`]) for the
    /// next request from any client, copies it into `buf` (resized to it) and returns its
    /// id. The client may send its next request at once; the answer is still owed.
    pub fn receive(&mut self, buf: &mut Vec<u8>, timeout: Option<Duration>) -> Result<RequestId> {
        buf.clear();
        buf.reserve(self.svc.max_request);
        let mut len = 0u64;
        let mut id = sys::shm_channel_request_id_t::default();
        // SAFETY: `buf` is writable for its capacity (at least max_request, so a request
        // always fits) and the out-pointers are valid; used by this thread only.
        let rc = unsafe {
            sys::shm_channel_receive(
                self.svc.h.raw(),
                buf.as_mut_ptr().cast(),
                buf.capacity() as u64,
                &mut len,
                &mut id,
                timeout_ns(timeout),
            )
        };
        check(rc, Op::Read)?;
        // SAFETY: the library wrote `len` <= capacity bytes.
        unsafe { buf.set_len(len as usize) };
        Ok(RequestId(id))
    }

    /// Zero-copy: as [`receive`](Self::receive), with the request shown in place until the
    /// guard is answered ([`Received::respond`]), dropped ([`Received::drop_request`]) or
    /// dropped as a value (then the request is only released: the answer is still owed, by
    /// its [`id`](Received::id)).
    pub fn receive_in_place(&mut self, timeout: Option<Duration>) -> Result<Received<'_>> {
        let mut p = ptr::null();
        let mut len = 0u64;
        let mut id = sys::shm_channel_request_id_t::default();
        // SAFETY: valid out-pointers; used by this thread only.
        let rc = unsafe {
            sys::shm_channel_receive_peek(
                self.svc.h.raw(),
                &mut p,
                &mut len,
                &mut id,
                timeout_ns(timeout),
            )
        };
        check(rc, Op::Read)?;
        let data: &[u8] = if len == 0 || p.is_null() {
            &[]
        } else {
            // SAFETY: on success `p` points at `len` bytes of the request in our mapping, which
            // its client does not touch until the server releases or answers it; the guard
            // borrows the server mutably, so that happens only through the guard.
            unsafe { slice::from_raw_parts(p.cast(), len as usize) }
        };
        Ok(Received {
            server: self,
            id: RequestId(id),
            data,
            done: false,
        })
    }

    /// Answers request `id` with `data` (copied; never waits). `Ok(false)`: the client gave
    /// up on it (timed out and sent another) or is gone (died, its slot reaped): nothing
    /// is written. [`Error::MessageTooLarge`] if `data` is larger than `max_response` (the
    /// request is still owed).
    pub fn respond(&mut self, id: RequestId, data: &[u8]) -> Result<bool> {
        // SAFETY: `data` is readable for its length; used by this thread only.
        let rc = unsafe {
            sys::shm_channel_respond(
                self.svc.h.raw(),
                &id.0,
                data.as_ptr().cast(),
                data.len() as u64,
            )
        };
        self.answered(rc, data.len())
    }

    /// Zero-copy answer: space for up to `len` bytes of the answer to `id`, in the client's
    /// response buffer. Fill it, then [`ResponseSpace::commit`]; dropping the guard sends
    /// nothing (the request is still owed). `Ok(None)`: the client gave up on the request
    /// or is gone, as [`respond`](Self::respond) says.
    pub fn respond_in_place(
        &mut self,
        id: RequestId,
        len: usize,
    ) -> Result<Option<ResponseSpace<'_>>> {
        let mut p = ptr::null_mut();
        // SAFETY: valid out-pointer; used by this thread only.
        let rc = unsafe {
            sys::shm_channel_respond_reserve(self.svc.h.raw(), &id.0, len as u64, &mut p)
        };
        if !self.answered(rc, len)? {
            return Ok(None);
        }
        let space: &mut [u8] = if len == 0 {
            &mut []
        } else {
            // SAFETY: on success `p` points at `len` writable bytes of the client's response
            // buffer, which its client reads only after the commit.
            unsafe { slice::from_raw_parts_mut(p.cast(), len) }
        };
        Ok(Some(ResponseSpace {
            server: self,
            id,
            space,
        }))
    }

    /// Answers request `id` not at all: its client's call times out, or sees the close or
    /// death of the server.
    pub fn drop_request(&mut self, id: RequestId) -> Result<()> {
        // SAFETY: used by this thread only.
        let rc = unsafe { sys::shm_channel_drop(self.svc.h.raw(), &id.0) };
        check(rc, Op::Other).map(drop)
    }

    /// Reclaims the slots of clients that died, now, and returns the slots reclaimed since
    /// the last call (a waiting [`receive`](Self::receive) also reclaims, several times a
    /// second). Requests of those clients are no longer owed.
    pub fn reap(&mut self) -> Result<Vec<u32>> {
        self.dead.resize(self.svc.max_clients as usize, 0);
        // SAFETY: `dead` is writable for max_clients entries; used by this thread only.
        let rc = unsafe {
            sys::shm_channel_reap(
                self.svc.h.raw(),
                self.dead.as_mut_ptr(),
                self.svc.max_clients,
            )
        };
        let n = check(rc, Op::Other)? as usize;
        Ok(self.dead[..n].to_vec())
    }

    /// Answers each request with `handler(request)`'s return value (`None` drops it) until
    /// `stop()` returns true (checked at least every `poll`) or an error; returns how many
    /// requests were answered or dropped. Answers to clients that gave up are skipped.
    pub fn serve(
        &mut self,
        mut handler: impl FnMut(&[u8]) -> Option<Vec<u8>>,
        mut stop: impl FnMut() -> bool,
        poll: Duration,
    ) -> Result<u64> {
        let mut buf = Vec::new();
        let mut served = 0;
        while !stop() {
            let id = match self.receive(&mut buf, Some(poll)) {
                Ok(id) => id,
                Err(Error::TimedOut) | Err(Error::WouldBlock) => continue,
                Err(e) => return Err(e),
            };
            match handler(&buf) {
                Some(answer) => {
                    self.respond(id, &answer)?;
                }
                None => self.drop_request(id)?,
            }
            served += 1;
        }
        Ok(served)
    }

    /// 0/`ESTALE`/`EINVAL`/`EMSGSIZE` of respond and respond_reserve as a result.
    fn answered(&self, rc: i32, len: usize) -> Result<bool> {
        match rc {
            0 => Ok(true),
            rc if rc == -libc::ESTALE || rc == -libc::EINVAL => Ok(false),
            rc if rc == -libc::EMSGSIZE => Err(Error::MessageTooLarge {
                len,
                max: self.svc.max_response,
            }),
            rc => Err(fail(rc)),
        }
    }
}

/// A request shown in place, from [`Server::receive_in_place`].
pub struct Received<'a> {
    server: &'a mut Server,
    id: RequestId,
    data: &'a [u8],
    done: bool,
}

impl Received<'_> {
    /// The request's id (to answer it later, after dropping the guard).
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// Answers it (copied), as [`Server::respond`].
    pub fn respond(mut self, data: &[u8]) -> Result<bool> {
        self.done = true;
        self.server.respond(self.id, data)
    }

    /// Answers it not at all, as [`Server::drop_request`].
    pub fn drop_request(mut self) -> Result<()> {
        self.done = true;
        self.server.drop_request(self.id)
    }
}

impl Drop for Received<'_> {
    fn drop(&mut self) {
        if !self.done {
            // SAFETY: the server holds this request in place (the guard borrows it
            // mutably). The only possible error is "not held", which cannot happen here.
            unsafe { sys::shm_channel_receive_release(self.server.svc.h.raw(), &self.id.0) };
        }
    }
}

impl Deref for Received<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.data
    }
}

impl fmt::Debug for Received<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("id", &self.id)
            .field("len", &self.data.len())
            .finish_non_exhaustive()
    }
}

/// Space for an answer in place, from [`Server::respond_in_place`].
pub struct ResponseSpace<'a> {
    server: &'a mut Server,
    id: RequestId,
    space: &'a mut [u8],
}

impl ResponseSpace<'_> {
    /// Publishes the answer with its first `len` bytes (at most the reserved length).
    pub fn commit(self, len: usize) -> Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        let len = len.min(this.space.len());
        // SAFETY: the handle holds this reservation; the guard is not dropped (its Drop
        // would abort the reservation published here).
        let rc = unsafe {
            sys::shm_channel_respond_commit(this.server.svc.h.raw(), &this.id.0, len as u64)
        };
        check(rc, Op::Other).map(drop)
    }
}

impl Drop for ResponseSpace<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle holds this reservation (the guard borrows it mutably).
        unsafe { sys::shm_channel_abort(self.server.svc.h.raw()) };
    }
}

impl Deref for ResponseSpace<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.space
    }
}

impl DerefMut for ResponseSpace<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.space
    }
}

impl fmt::Debug for ResponseSpace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseSpace")
            .field("id", &self.id)
            .field("len", &self.space.len())
            .finish_non_exhaustive()
    }
}
