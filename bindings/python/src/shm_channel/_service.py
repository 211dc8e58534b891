"""Server and Client: the two sides of a service (kind 4, spec/service.md).

A server offers a named service; up to ``max_clients`` clients (default 64) send it
requests, each waiting for its own answer. The handle, close and detach machinery is the
streams' (:class:`shm_channel._channel._Channel`); only opening and the calls differ.
"""

from __future__ import annotations

import errno as _errno
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _errors
from ._channel import (
    _EINTR,
    _EMSGSIZE,
    _ETIMEDOUT,
    _Block,
    _Busy,
    _Channel,
    _check_name,
    _first_wait,
    _int_arg,
    _live_channels,
    _make_finalizer,
    _release_views,
    _timeout_ns,
)
from ._errors import ChannelBusy, IncompatibleLayout, PeerDied, ShmChannelError
from ._lib import ffi, lib

if TYPE_CHECKING:
    from typing_extensions import Buffer, Self
else:
    Buffer = Any
    Self = Any

__all__ = ["Client", "Request", "Server", "ServerClosed", "ServiceStat", "StaleRequest"]

_SERVER = lib.SHM_CHANNEL_SERVER
_CLIENT = lib.SHM_CHANNEL_CLIENT
_ESTALE = -_errno.ESTALE
_EINVAL = -_errno.EINVAL
_SCRATCH = 64 * 1024
_MAX_MSG = 1 << 30

_c_request = lib.shm_channel_request
_c_response = lib.shm_channel_response
_c_receive = lib.shm_channel_receive
_c_receive_peek = lib.shm_channel_receive_peek
_c_respond = lib.shm_channel_respond
_c_drop = lib.shm_channel_drop
_c_reserve = lib.shm_channel_reserve
_c_commit = lib.shm_channel_commit
_c_abort = lib.shm_channel_abort
_cbuffer = ffi.buffer
_from_buffer = ffi.from_buffer


class ServerClosed(BrokenPipeError, ShmChannelError):
    """The server closed the service (``EPIPE``): the request got no answer and none will
    come until another server attaches. Also a :class:`BrokenPipeError`.
    """


def _service_error(rc: int, name: str, role: int, op: str, **extra: Any) -> Exception:
    """The exception for a service call's return value: the meanings that differ from a
    stream's here, the rest as :func:`shm_channel._errors.error` says.
    """
    err = -rc
    cls: type[OSError] = OSError
    text = ""
    if err == _errno.EPIPE:
        cls, text = ServerClosed, f"the server of {name!r} closed the service"
    elif err == _errno.EOWNERDEAD:
        cls = PeerDied
        text = (
            f"the server of {name!r} died; the request got no answer and no successor runs it. "
            "A new server may take over the name"
        )
    elif err == _errno.ECONNRESET:
        text = (
            f"the server of {name!r} that had the request is gone and another has attached; "
            "the request was not run by the new one: send it again"
        )
    elif err == _errno.EUSERS:
        cls = ChannelBusy
        text = f"every client slot of service {name!r} is held by a live client"
    elif err == _errno.EBUSY and op == "open" and role == _SERVER:
        cls = ChannelBusy
        text = f"service {name!r} already has a live server (in this or another process)"
    elif err == _errno.ETIMEDOUT and op == "request":
        text = (
            f"no answer from the server of {name!r} within {extra.get('timeout')} s; the "
            "request was withdrawn if the server had not taken it, and its late answer is "
            "never returned by a later request"
        )
    elif err == _errno.ETIMEDOUT and op == "wait_server":
        text = f"no server attached to {name!r} within {extra.get('timeout')} s"
    elif err == _errno.EAGAIN and op == "receive":
        text = f"no request is waiting on {name!r} (timeout=0)"
    elif err == _errno.EMSGSIZE:
        text = (
            f"a {extra.get('what', 'message')} of {extra.get('size')} bytes is larger than "
            f"the {extra.get('limit')}-byte maximum of service {name!r}"
        )
        exc = _errors.error(rc, name, role, op)
        exc.args = (err, text)
        exc.strerror = text
        exc.size = int(extra.get("size", 0))  # type: ignore[attr-defined]
        exc.limit = int(extra.get("limit", 0))  # type: ignore[attr-defined]
        return exc
    elif err == _errno.EINTR and op == "request":
        cls = InterruptedError
        text = (
            f"a signal interrupted the request to {name!r}; it was given up (withdrawn if the "
            "server had not taken it) and is not sent again"
        )
    elif err == _errno.EINVAL and op == "open":
        return ValueError(
            f"invalid argument opening service {name!r}: if it exists, its max_request, "
            "max_response or max_clients differ from those asked (pass 0 to accept any)"
        )
    elif err == _errno.EPROTOTYPE:
        cls = IncompatibleLayout
        text = f"{name!r} is a channel of another kind, not a service"
    if not text:
        return _errors.error(rc, name, role, op, **extra)
    exc = cls(err, text)
    if isinstance(exc, ShmChannelError):
        exc.channel = name
    return exc


def _sizes(max_request: int, max_response: int, max_clients: int) -> tuple[int, int, int]:
    max_request = _int_arg(max_request, "max_request")
    max_response = _int_arg(max_response, "max_response")
    max_clients = _int_arg(max_clients, "max_clients")
    for what, v in (("max_request", max_request), ("max_response", max_response)):
        if not 0 <= v <= _MAX_MSG:
            raise ValueError(f"{what} must be from 0 (the default) to 2**30 bytes, not {v}")
    if not 0 <= max_clients <= 1024:
        raise ValueError(f"max_clients must be from 0 (the default, 64) to 1024, not {max_clients}")
    return max_request, max_response, max_clients


class _Service(_Channel):
    """What servers and clients share: opening a kind-4 segment; the rest is _Channel's."""

    def __init__(
        self,
        name: str,
        *,
        max_request: int = 0,
        max_response: int = 0,
        max_clients: int = 0,
        create: bool = True,
        exclusive: bool = False,
        mode: int = 0o600,
        allow_foreign: bool = False,
        spin: float | None = None,
    ) -> None:
        cname = _check_name(name)
        max_request, max_response, max_clients = _sizes(max_request, max_response, max_clients)
        if exclusive and not create:
            raise ValueError("exclusive=True needs create=True")
        mode = _int_arg(mode, "mode")
        if not 0 < mode <= 0o777:
            raise ValueError(f"mode must be permission bits such as 0o600, not {mode!r}")
        self._name = name
        self._closing = False
        self._live_views = [0]
        flags = (
            (lib.SHM_CHANNEL_CREATE if create else 0)
            | (lib.SHM_CHANNEL_EXCL if exclusive else 0)
            | (lib.SHM_CHANNEL_ALLOW_FOREIGN if allow_foreign else 0)
        )
        cfg = ffi.new(
            "shm_channel_service_config_t *",
            {
                "max_request": max_request,
                "max_response": max_response,
                "max_clients": max_clients,
            },
        )
        out = ffi.new("shm_channel_t **")
        rc = lib.shm_channel_open_service(out, cname, self._role, flags, cfg, mode)
        if rc:
            raise _service_error(rc, name, self._role, "open", capacity=0, mode=mode)
        # As _Channel.__init__: the handle closes when the last reference to the cdata goes,
        # and whoever takes it out of _claim ends the role, once.
        self._h = ffi.gc(out[0], _make_finalizer(os.getpid()))
        self._claim = [self._h]
        self._capacity = int(lib.shm_channel_capacity(self._h))
        self._max_payload = int(lib.shm_channel_max_payload(self._h))
        st = ffi.new("shm_channel_service_stat_t *")
        rc = lib.shm_channel_service_stat(self._h, st)
        if rc:
            lib.shm_channel_detach(self._h)
            raise _service_error(rc, name, self._role, "open")
        self._max_request = int(st.max_request)
        self._max_response = int(st.max_response)
        self._max_clients = int(st.max_clients)
        _live_channels.add(self)
        if spin is not None:
            self.set_spin(spin)
        self._lenp = ffi.new("uint64_t[1]")
        self._ptrp = ffi.new("void **")

    @property
    def max_request(self) -> int:
        """The largest request, in bytes."""
        return self._max_request

    @property
    def max_response(self) -> int:
        """The largest response, in bytes."""
        return self._max_response

    @property
    def max_clients(self) -> int:
        """How many clients may be attached at once."""
        return self._max_clients

    def service_stat(self) -> ServiceStat:
        """A snapshot of the service's counters (clients, requests, responses...)."""
        st = ffi.new("shm_channel_service_stat_t *")
        with _Busy(self):
            rc = lib.shm_channel_service_stat(self._handle(), st)
        if rc:
            raise self._error(rc, "stat")
        return ServiceStat(st)

    def __repr__(self) -> str:
        state = "closed" if self._h is None else f"max_clients={self._max_clients}"
        return f"<shm_channel.{type(self).__name__} {self._name!r} {state}>"

    def _error(self, rc: int, op: str, **extra: object) -> Exception:
        if self._closing:
            return self._closed_error()
        return _service_error(rc, self._name, self._role, op, **extra)


class ServiceStat:
    """A snapshot of a service's counters (``shm_channel_service_stat_t``): every field of
    the C struct but the reserved words, as an attribute.
    """

    def __init__(self, st: Any) -> None:
        for field, _ in ffi.typeof(st[0]).fields:
            if not field.startswith("reserved"):
                setattr(self, field, getattr(st, field))

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"ServiceStat({body})"


# ---- client ------------------------------------------------------------------------------


class Client(_Service):
    """A client of a service: sends requests and waits for their answers.

    ``Client(name, *, max_request=0, max_response=0, max_clients=0, create=True,
    exclusive=False, mode=0o600, allow_foreign=False, spin=None)``

    Either side may create the service (the sizes then come from whoever creates it; 0
    accepts an existing service's and creates 4096-byte requests and responses and 64
    client slots). A client holds one of ``max_clients`` slots while open
    (:class:`ChannelBusy` when all are held) and has one request in flight at a time; a
    handle is used by one thread at a time. Timeouts are in seconds, as for streams:
    ``None`` waits forever, ``0`` never waits.

    Errors of :meth:`request`: :class:`TimeoutError` (no answer in time: the request was
    withdrawn if the server had not taken it, and its late answer is never returned by a
    later request), :class:`ServerClosed` (a :class:`BrokenPipeError`), :class:`PeerDied`
    (the server died), :class:`ConnectionResetError` (the server that had the request is
    gone and another attached: the request was not run, send it again),
    :class:`MessageTooLarge`.
    """

    _role = _CLIENT

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        cap = min(_SCRATCH, self._max_response)
        self._scratch = ffi.new("char[]", max(cap, 1))
        self._scratch_cap = cap
        self._scratch_buf = _cbuffer(self._scratch)

    def request(self, data: Buffer, timeout: float | None = None) -> bytes:
        """Send `data` (any contiguous buffer) and return the answer as bytes.

        If no server is attached yet, first waits for one within the same timeout.
        """
        with _Busy(self):
            h = self._handle()
            if type(data) is not bytes:
                data = _from_buffer(data)
            size = len(data)  # type: ignore[arg-type]
            lenp = self._lenp
            rc = self._call(
                lambda ns: _c_request(h, data, size, self._scratch, self._scratch_cap, lenp, ns),
                timeout,
            )
            if rc == 0:
                return self._scratch_buf[: lenp[0]]  # type: ignore[no-any-return]
            if rc == _EMSGSIZE and size <= self._max_request:
                # Larger than the scratch buffer: the answer stays readable in place.
                ptrp = self._ptrp
                rc = _c_response(h, ptrp, lenp, 0)
                if rc == 0:
                    return _cbuffer(ptrp[0], lenp[0])[:]  # type: ignore[no-any-return]
        raise self._error(
            rc, "request", size=size, limit=self._max_request, what="request", timeout=timeout
        )

    def request_into(self, data: Buffer, buffer: Buffer, timeout: float | None = None) -> int:
        """Send `data`, copy the answer into `buffer` (any writable contiguous buffer) and
        return its size. An answer larger than `buffer` raises :class:`MessageTooLarge`
        (``size`` says how large); it stays readable with :meth:`response`.
        """
        with _Busy(self):
            h = self._handle()
            src = data if type(data) is bytes else _from_buffer(data)
            size = len(src)  # type: ignore[arg-type]
            dst = _from_buffer(buffer, require_writable=True)
            cap = len(dst)
            lenp = self._lenp
            rc = self._call(lambda ns: _c_request(h, src, size, dst, cap, lenp, ns), timeout)
        if rc == 0:
            return int(lenp[0])
        if rc == _EMSGSIZE and size <= self._max_request:
            raise self._error(rc, "request", size=lenp[0], limit=cap, what="response")
        raise self._error(
            rc, "request", size=size, limit=self._max_request, what="request", timeout=timeout
        )

    def request_view(self, data: Buffer, timeout: float | None = None) -> _ResponseView:
        """Zero-copy answer: ``with client.request_view(data) as view:`` sends `data` and
        yields a read-only memoryview of the answer in place, in the shared segment, valid
        until the block ends (the next request reuses the space).
        """
        _timeout_ns(timeout)
        return _ResponseView(self, data, timeout)

    def reserve(self, size: int, timeout: float | None = None) -> _RequestSpace:
        """Zero-copy request: ``with client.reserve(n) as buf:`` yields a writable
        memoryview of `n` bytes in this client's request mailbox; leaving the block sends
        it (an exception drops it instead). Then :meth:`response` waits for the answer.
        `timeout` bounds the wait for a server (and for the mailbox, while the server still
        reads a request this client gave up on); nothing is sent if it runs out.
        """
        size = _int_arg(size, "size")
        if size < 0:
            raise ValueError(f"size must be >= 0, not {size}")
        _timeout_ns(timeout)
        return _RequestSpace(self, size, timeout)

    def response(self, timeout: float | None = None) -> _ResponseView:
        """``with client.response() as view:`` waits for the answer to the request sent by
        :meth:`reserve` and yields it in place, as :meth:`request_view` does.
        """
        _timeout_ns(timeout)
        return _ResponseView(self, None, timeout)

    def wait_server(self, timeout: float | None = None) -> None:
        """Wait until a server is attached. :class:`TimeoutError` if none came in time."""
        with _Busy(self):
            h = self._handle()
            rc = self._call(lambda ns: lib.shm_channel_wait_server(h, ns), timeout, sliced=True)
        if rc:
            raise self._error(rc, "wait_server", timeout=timeout)

    def _reserve(self, h: Any, size: int, timeout: float | None) -> None:
        # The caller marks the call (_busy). Nothing is sent yet: the wait can be sliced.
        ptrp = self._ptrp
        rc = self._call(lambda ns: _c_reserve(h, size, ptrp, ns), timeout, sliced=True)
        if rc:
            raise self._error(
                rc, "reserve", size=size, limit=self._max_request, what="request", timeout=timeout
            )

    def _call(self, call: Callable[[int], int], timeout: float | None, sliced: bool = False) -> int:
        """One blocking C call of a client. Waiting for a server is cut into slices, as
        streams' waits are (Ctrl-C and close() from another thread are seen within 0.1 s);
        a request is not: a request that times out, or is interrupted by a signal, is given
        up (withdrawn if the server had not taken it), so it waits the whole time in one C
        call. A signal ends it with -EINTR; the handler runs as this returns (Ctrl-C raises
        KeyboardInterrupt), and if the handler returns, InterruptedError is raised: the
        request is not sent again, since the server may have run it.
        """
        if sliced:
            first, deadline = _first_wait(timeout)
            rc = call(first)
            if rc == _ETIMEDOUT or rc == _EINTR:
                rc = self._wait(call, deadline, rc)
            return rc
        return call(_timeout_ns(timeout))


class _RequestSpace(_Block):
    """The context manager returned by :meth:`Client.reserve`."""

    __slots__ = ("_timeout",)
    _reserves = True
    _undo = _c_abort

    def __init__(self, client: Client, size: int, timeout: float | None) -> None:
        self._ch = client
        self._size = size
        self._timeout = timeout
        self._views: list[memoryview] = []

    def __enter__(self) -> memoryview:
        ch = self._ch
        with _Busy(ch):
            h = ch._handle()
            ch._reserve(h, self._size, self._timeout)
            self._views = ch._view(h, ch._ptrp[0], self._size, readonly=False)
        return self._views[0]

    def _failed(self, ch: Any, rc: int) -> Exception:
        return ch._error(rc, "request", size=self._size, limit=ch._max_request)  # type: ignore[no-any-return]


class _ResponseView:
    """The context manager of :meth:`Client.request_view` and :meth:`Client.response`."""

    __slots__ = ("_client", "_data", "_timeout", "_views")

    def __init__(self, client: Client, data: Buffer | None, timeout: float | None) -> None:
        self._client = client
        self._data = data
        self._timeout = timeout
        self._views: list[memoryview] = []

    def __enter__(self) -> memoryview:
        ch = self._client
        with _Busy(ch):
            h = ch._handle()
            if self._data is not None:
                src = self._data if type(self._data) is bytes else _from_buffer(self._data)
                size = len(src)  # type: ignore[arg-type]
                if size > ch._max_request:
                    raise ch._error(
                        _EMSGSIZE, "request", size=size, limit=ch._max_request, what="request"
                    )
                ch._reserve(h, size, self._timeout)
                ffi.memmove(ch._ptrp[0], src, size)
                rc = _c_commit(h, size)
                if rc:
                    raise ch._error(rc, "request", timeout=self._timeout)
            ptrp, lenp = ch._ptrp, ch._lenp
            rc = ch._call(lambda ns: _c_response(h, ptrp, lenp, ns), self._timeout)
            if rc:
                raise ch._error(rc, "request", timeout=self._timeout)
            self._views = ch._view(h, ptrp[0], int(lenp[0]), readonly=True)
        return self._views[0]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _release_views(self._views)
        self._views = []


# ---- server ------------------------------------------------------------------------------


class Request:
    """One request a :class:`Server` received: ``data`` (bytes, or for
    :meth:`Server.receive_view` a read-only memoryview in place), ``client`` (the client's
    slot number) and ``seq`` (its request number). Answer it once with :meth:`respond`
    (or :meth:`reserve`), or not at all with :meth:`drop`; the server may hold one request
    of every client at once and answer them in any order.
    """

    __slots__ = ("_id", "_server", "_views", "client", "data", "done", "seq")

    def __init__(self, server: Server, rid: Any, data: Any, views: list[memoryview]) -> None:
        self._server = server
        self._id = rid
        self._views = views
        self.client = int(rid.client)
        self.seq = int(rid.seq)
        self.data = data
        #: True once answered or dropped.
        self.done = False

    def respond(self, data: Buffer) -> bool:
        """Send the answer (any contiguous buffer; never waits). Returns True, or False if
        the client gave up on this request (timed out and sent another) or is gone (died,
        and its slot was reaped): nothing is written then. :class:`MessageTooLarge` if
        larger than ``max_response`` (the request is still owed).
        """
        srv = self._server
        self._finish()
        with _Busy(srv):
            h = srv._handle()
            src = data if type(data) is bytes else _from_buffer(data)
            size = len(src)  # type: ignore[arg-type]
            rc = _c_respond(h, self._id, src, size)
        if rc == 0:
            return True
        if rc == _ESTALE or rc == _EINVAL:
            # ESTALE: the client gave up on it and sent a newer request. EINVAL: not owed any
            # more although this object was never answered: its client died and was reaped.
            return False
        if rc == _EMSGSIZE:
            self.done = False
        raise srv._error(rc, "respond", size=size, limit=srv._max_response, what="response")

    def reserve(self, size: int) -> _ResponseSpace:
        """Zero-copy answer: ``with request.reserve(n) as buf:`` yields a writable
        memoryview of `n` bytes in the client's response mailbox; leaving the block sends
        it (an exception drops the request instead). If the client gave up on the request,
        :class:`StaleRequest` is raised at the ``with`` statement.
        """
        size = _int_arg(size, "size")
        if size < 0:
            raise ValueError(f"size must be >= 0, not {size}")
        return _ResponseSpace(self, size)

    def drop(self) -> None:
        """Answer not at all: the client's request times out, or sees the server close."""
        if self.done:
            return
        srv = self._server
        self._finish()
        with _Busy(srv):
            h = srv._h
            if h is None:
                return  # closed: every request held is released
            rc = _c_drop(h, self._id)
        if rc:
            raise srv._error(rc, "drop")

    def release(self) -> None:
        """Done reading a request of :meth:`Server.receive_view` in place (its ``data``
        view ends); the answer is still owed, and the client may send its next request.
        """
        srv = self._server
        _release_views(self._views)
        self._views = []
        with _Busy(srv):
            rc = lib.shm_channel_receive_release(srv._handle(), self._id)
        if rc:
            raise srv._error(rc, "release")

    def _finish(self) -> None:
        if self.done:
            raise ValueError(f"request {self.seq} of client {self.client} was answered already")
        self.done = True
        _release_views(self._views)
        self._views = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.done:
            self.drop()

    def __repr__(self) -> str:
        return f"<shm_channel.Request client={self.client} seq={self.seq} {len(self.data)} B>"


class StaleRequest(ShmChannelError):
    """The client gave up on this request (``ESTALE``): its answer would never be read."""


class _ResponseSpace:
    """The context manager returned by :meth:`Request.reserve`."""

    __slots__ = ("_req", "_size", "_views")

    def __init__(self, req: Request, size: int) -> None:
        self._req = req
        self._size = size
        self._views: list[memoryview] = []

    def __enter__(self) -> memoryview:
        req = self._req
        srv = req._server
        if req.done:
            raise ValueError(f"request {req.seq} of client {req.client} was answered already")
        with _Busy(srv):
            h = srv._handle()
            rc = lib.shm_channel_respond_reserve(h, req._id, self._size, srv._ptrp)
            if rc == _ESTALE:
                req.done = True
                exc = StaleRequest(
                    _errno.ESTALE,
                    f"client {req.client} of {srv._name!r} gave up on request {req.seq}",
                )
                exc.channel = srv._name
                raise exc
            if rc:
                raise srv._error(
                    rc, "respond", size=self._size, limit=srv._max_response, what="response"
                )
            self._views = srv._view(h, srv._ptrp[0], self._size, readonly=False)
        return self._views[0]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        req = self._req
        srv = req._server
        _release_views(self._views)
        self._views = []
        if exc_type is not None:
            req.drop()
            return
        req._finish()
        with _Busy(srv):
            h = srv._handle()
            rc = lib.shm_channel_respond_commit(h, req._id, self._size)
        if rc:
            raise srv._error(rc, "respond")


class Server(_Service):
    """The server of a service: receives requests from any client and answers them.

    ``Server(name, *, max_request=0, max_response=0, max_clients=0, create=True,
    exclusive=False, mode=0o600, allow_foreign=False, spin=None)``: the arguments are
    :class:`Client`'s. One live server at a time (:class:`ChannelBusy`); closing it (or
    leaving its ``with`` block) answers every waiting client with :class:`ServerClosed`,
    and the name stays for the next server. If it dies, its clients get
    :class:`PeerDied`, and a new server takes over.
    """

    _role = _SERVER

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        cap = min(_SCRATCH, self._max_request)
        self._scratch = ffi.new("char[]", max(cap, 1))
        self._scratch_cap = cap
        self._scratch_buf = _cbuffer(self._scratch)

    def receive(self, timeout: float | None = None) -> Request:
        """The next request from any client, its data copied out as bytes (the client's
        mailbox is free again at once). Raises :class:`TimeoutError` (or
        :class:`BlockingIOError` with timeout 0) when none came in time.
        """
        rid = ffi.new("shm_channel_request_id_t *")
        with _Busy(self):
            h = self._handle()
            buf, cap, lenp = self._scratch, self._scratch_cap, self._lenp
            first, deadline = _first_wait(timeout)
            rc = _c_receive(h, buf, cap, lenp, rid, first)
            if rc == _ETIMEDOUT or rc == _EINTR:
                rc = self._wait(lambda ns: _c_receive(h, buf, cap, lenp, rid, ns), deadline, rc)
            if rc == 0:
                return Request(self, rid, self._scratch_buf[: lenp[0]], [])
            if rc == _EMSGSIZE:
                # Larger than the scratch buffer: it stays next; take it in one its size.
                big = ffi.new("char[]", int(lenp[0]))
                rc = _c_receive(h, big, len(big), lenp, rid, 0)
                if rc == 0:
                    return Request(self, rid, _cbuffer(big, lenp[0])[:], [])
        raise self._error(rc, "receive", timeout=timeout)

    def receive_view(self, timeout: float | None = None) -> Request:
        """As :meth:`receive`, with ``data`` a read-only memoryview of the request in place
        (zero-copy), valid until it is answered or dropped. Use it as a context manager:
        leaving the ``with`` block unanswered drops it.
        """
        rid = ffi.new("shm_channel_request_id_t *")
        with _Busy(self):
            h = self._handle()
            ptrp, lenp = self._ptrp, self._lenp
            first, deadline = _first_wait(timeout)
            rc = _c_receive_peek(h, ptrp, lenp, rid, first)
            if rc == _ETIMEDOUT or rc == _EINTR:
                rc = self._wait(lambda ns: _c_receive_peek(h, ptrp, lenp, rid, ns), deadline, rc)
            if rc == 0:
                views = self._view(h, ptrp[0], int(lenp[0]), readonly=True)
                return Request(self, rid, views[0], views)
        raise self._error(rc, "receive", timeout=timeout)

    def reap(self) -> list[int]:
        """Reclaim the slots of clients that died, now; returns their slot numbers. A
        waiting :meth:`receive` also does this by itself, several times a second.
        """
        dead = ffi.new("uint32_t[]", self._max_clients)
        with _Busy(self):
            rc = lib.shm_channel_reap(self._handle(), dead, self._max_clients)
        if rc < 0:
            raise self._error(rc, "reap")
        return list(dead[0:rc])

    def serve(
        self,
        handler: Callable[[bytes], Buffer | None],
        *,
        stop: threading.Event | None = None,
        count: int | None = None,
    ) -> int:
        """Answer each request with ``handler(data)``'s return value (any buffer; None
        drops the request unanswered) until `stop` is set, `count` requests were served,
        the server is closed (from another thread or a signal handler), or a signal
        handler raises (KeyboardInterrupt, say). Returns how many requests were served.

        An exception in `handler` drops that request (the client's request times out)
        and propagates. Answers to clients that gave up are skipped.
        """
        served = 0
        receive = self.receive
        while (count is None or served < count) and not (stop is not None and stop.is_set()):
            try:
                req = receive(0.1 if stop is not None else None)
            except TimeoutError:
                continue
            except _errors.ChannelClosedError:
                if self._h is None:
                    break
                raise
            try:
                answer = handler(req.data)
            except BaseException:
                req.drop()
                raise
            if answer is None:
                req.drop()
            else:
                req.respond(answer)
            served += 1
        return served
