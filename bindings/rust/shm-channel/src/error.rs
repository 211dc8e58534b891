//! The error type: one variant per failure a caller may want to tell apart, and
//! [`std::io::Error`] for the system's errors.

use std::{fmt, io};

/// What an operation was doing when the C library returned an error: a few codes mean
/// different things on the two sides of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Write,
    Read,
    Other,
}

/// An error from a channel operation.
///
/// The C library returns negative `errno` values; [`Error::errno`] gives the value back.
/// Codes that mean something particular for a channel have their own variant; the rest
/// (for example `ENOENT`, `EEXIST`, `EACCES`, `ENOSPC`, `EINVAL`) arrive as
/// [`Error::Io`], whose [`io::Error::kind`] tells them apart. The enum is
/// `#[non_exhaustive]`: later versions may add variants.
///
/// ```
/// use shm_channel::{Consumer, Error};
/// use std::io::ErrorKind;
///
/// match Consumer::open("doc-error-no-such-channel") {
///     Err(Error::Io(e)) if e.kind() == ErrorKind::NotFound => {} // not created yet
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The producer closed the channel and every message has been read (`-EPIPE` on a
    /// read). Distinct from [`Error::PeerDied`] and from [`Error::WouldBlock`].
    EndOfStream,
    /// The ring is full and the consumer closed the channel (`-EPIPE` on a write).
    ConsumerClosed,
    /// The process on the other side died without closing (`-EOWNERDEAD`). For a
    /// consumer, every message the producer committed has been read.
    PeerDied,
    /// The ring is full (writer) or empty (reader) and the timeout is zero (`-EAGAIN`).
    WouldBlock,
    /// The timeout passed before the ring had room or a message (`-ETIMEDOUT`).
    TimedOut,
    /// A signal arrived while the call was waiting (`-EINTR`); the call may be retried.
    Interrupted,
    /// The message is larger than the channel accepts (`-EMSGSIZE` on a write).
    MessageTooLarge {
        /// Length of the refused message, in bytes.
        len: usize,
        /// Largest message the channel accepts, in bytes.
        max: usize,
    },
    /// The buffer is too small for the next message, which stays in the channel for the
    /// next read (`-EMSGSIZE` on a read).
    BufferTooSmall {
        /// Size of the next message, in bytes.
        needed: usize,
    },
    /// The segment is corrupt: a header field, position or record is out of range
    /// (`-EBADMSG`).
    Corrupt,
    /// The file is not a shm_channel segment: its magic number is wrong (`-EPROTO`).
    NotAChannel,
    /// The segment's layout major version is not supported (`-EPROTONOSUPPORT`).
    UnsupportedLayout,
    /// The segment is a channel of another kind than the one asked for: a broadcast
    /// channel opened as a stream, or a stream opened as a topic (`-EPROTOTYPE`).
    WrongKind,
    /// The call does not belong to this handle's role (`-EBADF`).
    WrongRole,
    /// The role is held by a live process, a reservation is outstanding, or the channel
    /// is in use (`-EBUSY`).
    Busy,
    /// The loaded C library's major version differs from the one these bindings were
    /// written for.
    IncompatibleLibrary {
        /// Version of the loaded library, as `(major << 16) | (minor << 8) | patch`.
        found: u32,
    },
    // ---- broadcast channels (topics) ----
    /// The topic carries another type than this side requires (`-EMEDIUMTYPE`); both type
    /// tags are named (an empty tag is an untyped, raw-bytes topic).
    TypeMismatch {
        /// The type tag this side asked for.
        expected: String,
        /// The type tag the topic was created with.
        found: String,
    },
    /// Every entry of the topic's subscriber table is held by a live subscriber
    /// (`-EUSERS`).
    TooManySubscribers,
    /// A zero-copy view was overwritten by the publisher while it was held (`-ESTALE` on
    /// release): what was read of it may be torn, and it counts as missed.
    Overwritten,
    /// A typed message's bytes are not a value of its type: wrong length, or a bit pattern
    /// the type does not have (a `bool` byte other than 0 or 1). The message is consumed.
    InvalidValue {
        /// The topic's type tag.
        type_tag: &'static str,
        /// What is wrong with the bytes.
        detail: String,
    },
    /// Any other error from the system or the library, such as `ENOENT` (no such channel),
    /// `EEXIST`, `EACCES`, `ENOSPC`, `ENOMEM` or `EINVAL` (a bad name or argument).
    Io(io::Error),
}

impl Error {
    /// Maps a negative return value of the C library.
    pub(crate) fn from_code(rc: i32, op: Op) -> Error {
        let errno = rc.checked_neg().unwrap_or(rc);
        match errno {
            libc::EPIPE if op == Op::Read => Error::EndOfStream,
            libc::EPIPE if op == Op::Write => Error::ConsumerClosed,
            libc::EOWNERDEAD => Error::PeerDied,
            libc::EAGAIN => Error::WouldBlock,
            libc::ETIMEDOUT => Error::TimedOut,
            libc::EINTR => Error::Interrupted,
            libc::EBADMSG => Error::Corrupt,
            libc::EPROTO => Error::NotAChannel,
            libc::EPROTONOSUPPORT => Error::UnsupportedLayout,
            libc::EPROTOTYPE => Error::WrongKind,
            libc::EBADF => Error::WrongRole,
            libc::EBUSY => Error::Busy,
            libc::EMEDIUMTYPE => Error::TypeMismatch {
                expected: String::new(),
                found: String::new(),
            },
            libc::EUSERS => Error::TooManySubscribers,
            libc::ESTALE => Error::Overwritten,
            _ => Error::Io(io::Error::from_raw_os_error(errno)),
        }
    }

    /// The `errno` value behind this error, if there is one.
    ///
    /// ```
    /// use shm_channel::Error;
    /// assert_eq!(Error::EndOfStream.errno(), Some(libc::EPIPE));
    /// assert_eq!(Error::IncompatibleLibrary { found: 2 << 16 }.errno(), None);
    /// ```
    pub fn errno(&self) -> Option<i32> {
        Some(match self {
            Error::EndOfStream | Error::ConsumerClosed => libc::EPIPE,
            Error::PeerDied => libc::EOWNERDEAD,
            Error::WouldBlock => libc::EAGAIN,
            Error::TimedOut => libc::ETIMEDOUT,
            Error::Interrupted => libc::EINTR,
            Error::MessageTooLarge { .. } | Error::BufferTooSmall { .. } => libc::EMSGSIZE,
            Error::Corrupt => libc::EBADMSG,
            Error::NotAChannel => libc::EPROTO,
            Error::UnsupportedLayout => libc::EPROTONOSUPPORT,
            Error::WrongKind => libc::EPROTOTYPE,
            Error::WrongRole => libc::EBADF,
            Error::Busy => libc::EBUSY,
            Error::TypeMismatch { .. } => libc::EMEDIUMTYPE,
            Error::TooManySubscribers => libc::EUSERS,
            Error::Overwritten => libc::ESTALE,
            Error::InvalidValue { .. } => libc::EBADMSG,
            Error::IncompatibleLibrary { .. } => return None,
            Error::Io(e) => return e.raw_os_error(),
        })
    }
}

/// A one-line description of the error.
///
/// ```
/// let e = shm_channel::Error::BufferTooSmall { needed: 100 };
/// assert_eq!(e.to_string(), "buffer too small: the next message is 100 bytes");
/// ```
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::EndOfStream => f.write_str("end of stream: the producer closed the channel"),
            Error::ConsumerClosed => f.write_str("the consumer closed the channel"),
            Error::PeerDied => f.write_str("the peer process died"),
            Error::WouldBlock => f.write_str("would block: the ring is full or empty"),
            Error::TimedOut => f.write_str("timed out"),
            Error::Interrupted => f.write_str("interrupted by a signal"),
            Error::MessageTooLarge { len, max } => {
                write!(
                    f,
                    "message of {len} bytes is larger than the channel's maximum of {max}"
                )
            }
            Error::BufferTooSmall { needed } => {
                write!(f, "buffer too small: the next message is {needed} bytes")
            }
            Error::Corrupt => f.write_str("corrupt segment"),
            Error::NotAChannel => f.write_str("not a shm_channel segment (bad magic)"),
            Error::UnsupportedLayout => f.write_str("unsupported segment layout major version"),
            Error::WrongKind => f.write_str("the segment is a channel of another kind"),
            Error::WrongRole => f.write_str("wrong role for this call"),
            Error::Busy => f.write_str(
                "busy: the role is held by a live process, a reservation is outstanding, \
                 or the channel is in use",
            ),
            Error::TypeMismatch { expected, found } => write!(
                f,
                "type mismatch: this side requires {}, the topic carries {}",
                tag_text(expected),
                tag_text(found)
            ),
            Error::TooManySubscribers => {
                f.write_str("every subscriber entry of the topic is held by a live subscriber")
            }
            Error::Overwritten => {
                f.write_str("the message was overwritten by the publisher while it was held")
            }
            Error::InvalidValue { type_tag, detail } => {
                write!(f, "invalid {type_tag:?} value: {detail}")
            }
            Error::IncompatibleLibrary { found } => write!(
                f,
                "the shm_channel library is version {}.{}.{}; these bindings need major {}",
                found >> 16,
                (found >> 8) & 0xff,
                found & 0xff,
                shm_channel_sys::SHM_CHANNEL_VERSION_MAJOR
            ),
            Error::Io(e) => e.fmt(f),
        }
    }
}

/// A type tag for a message: quoted, or "untyped (raw bytes)".
fn tag_text(tag: &str) -> String {
    if tag.is_empty() {
        "untyped (raw bytes)".to_owned()
    } else {
        format!("{tag:?}")
    }
}

/// The source of an [`Error::Io`] is its [`io::Error`]; other variants have none.
///
/// ```
/// use std::error::Error as _;
/// let e = shm_channel::Error::from(std::io::Error::from_raw_os_error(libc::ENOENT));
/// assert!(e.source().is_some());
/// assert!(shm_channel::Error::Corrupt.source().is_none());
/// ```
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Wraps an [`io::Error`] as [`Error::Io`].
///
/// ```
/// let e: shm_channel::Error = std::io::Error::other("boom").into();
/// assert!(matches!(e, shm_channel::Error::Io(_)));
/// ```
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// Converts into an [`io::Error`] whose kind follows the `errno` (for example
/// [`io::ErrorKind::WouldBlock`], [`io::ErrorKind::TimedOut`],
/// [`io::ErrorKind::BrokenPipe`]), keeping this error as the inner error.
///
/// ```
/// use shm_channel::Error;
/// let e: std::io::Error = Error::TimedOut.into();
/// assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
/// ```
impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            other => {
                let kind = match other.errno() {
                    Some(errno) => io::Error::from_raw_os_error(errno).kind(),
                    None => io::ErrorKind::Other,
                };
                io::Error::new(kind, other)
            }
        }
    }
}

/// The result of a channel operation.
///
/// ```
/// fn open(name: &str) -> shm_channel::Result<shm_channel::Consumer> {
///     shm_channel::Consumer::create(name)
/// }
/// # let name = format!("doc-result-{}", std::process::id());
/// # drop(open(&name).unwrap());
/// # shm_channel::force_unlink(&name).unwrap();
/// ```
pub type Result<T> = std::result::Result<T, Error>;

/// Turns a C return value into a result: the value itself when it is not negative.
#[inline]
pub(crate) fn check(rc: i32, op: Op) -> Result<i32> {
    if rc < 0 {
        Err(Error::from_code(rc, op))
    } else {
        Ok(rc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epipe_depends_on_the_side() {
        assert!(matches!(
            Error::from_code(-libc::EPIPE, Op::Read),
            Error::EndOfStream
        ));
        assert!(matches!(
            Error::from_code(-libc::EPIPE, Op::Write),
            Error::ConsumerClosed
        ));
        assert!(matches!(
            Error::from_code(-libc::EPIPE, Op::Other),
            Error::Io(_)
        ));
    }

    #[test]
    fn channel_codes_have_variants_and_round_trip() {
        let cases = [
            (libc::EOWNERDEAD, "PeerDied"),
            (libc::EAGAIN, "WouldBlock"),
            (libc::ETIMEDOUT, "TimedOut"),
            (libc::EINTR, "Interrupted"),
            (libc::EBADMSG, "Corrupt"),
            (libc::EPROTO, "NotAChannel"),
            (libc::EPROTONOSUPPORT, "UnsupportedLayout"),
            (libc::EPROTOTYPE, "WrongKind"),
            (libc::EBADF, "WrongRole"),
            (libc::EBUSY, "Busy"),
            (libc::EMEDIUMTYPE, "TypeMismatch"),
            (libc::EUSERS, "TooManySubscribers"),
            (libc::ESTALE, "Overwritten"),
        ];
        for (errno, variant) in cases {
            let e = Error::from_code(-errno, Op::Read);
            assert!(format!("{e:?}").starts_with(variant), "{errno} gave {e:?}");
            assert_eq!(e.errno(), Some(errno));
        }
    }

    #[test]
    fn system_errors_go_through_io_error() {
        for (errno, kind) in [
            (libc::ENOENT, io::ErrorKind::NotFound),
            (libc::EEXIST, io::ErrorKind::AlreadyExists),
            (libc::EACCES, io::ErrorKind::PermissionDenied),
            (libc::EINVAL, io::ErrorKind::InvalidInput),
        ] {
            let e = Error::from_code(-errno, Op::Other);
            match &e {
                Error::Io(io) => assert_eq!(io.kind(), kind),
                other => panic!("{errno}: {other:?}"),
            }
            assert_eq!(e.errno(), Some(errno));
            assert!(std::error::Error::source(&e).is_some());
        }
    }

    #[test]
    fn into_io_error_keeps_kind_and_message() {
        let e: io::Error = Error::WouldBlock.into();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let e: io::Error = Error::EndOfStream.into();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert!(e.to_string().contains("end of stream"));
        let e: io::Error = Error::BufferTooSmall { needed: 9 }.into();
        assert!(e.to_string().contains("9 bytes"));
        let inner = e.into_inner().unwrap().downcast::<Error>().unwrap();
        assert!(matches!(*inner, Error::BufferTooSmall { needed: 9 }));
    }

    #[test]
    fn display_texts_are_specific() {
        let e = Error::MessageTooLarge { len: 10, max: 4 };
        assert_eq!(
            e.to_string(),
            "message of 10 bytes is larger than the channel's maximum of 4"
        );
        let e = Error::IncompatibleLibrary { found: 0x020103 };
        assert!(e.to_string().contains("2.1.3"), "{e}");
    }

    #[test]
    fn check_passes_counts_through() {
        assert_eq!(check(7, Op::Other).unwrap(), 7);
        assert!(check(-libc::EBUSY, Op::Other).is_err());
    }
}
