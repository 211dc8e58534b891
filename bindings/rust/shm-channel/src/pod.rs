//! Plain-old-data values on a topic: the [`Pod`] marker trait, its wire type tags, and the
//! sealed [`Message`] trait that lets one [`Publisher`](crate::Publisher) /
//! [`Subscriber`](crate::Subscriber) carry raw bytes (`[u8]`) or a typed value.

use std::mem::{size_of, MaybeUninit};

use crate::error::{Error, Result};

/// A fixed-size value that travels on a topic as its own bytes.
///
/// `TYPE_TAG` names the wire type (spec/topics.md): a topic created for the type carries the
/// tag, and a side that opens it with another type gets [`Error::TypeMismatch`] naming both.
/// The crate implements it for `bool` (`"bool"`), `i64` (`"i64"`) and `f64` (`"f64"`): the
/// same wire types as Python's `bool`, `int` and `float`. A `#[repr(C)]` struct declares
/// the tag of its layout as a Python `struct` format with explicit padding, so a ctypes
/// structure, a struct format and the Rust type with that layout are one wire type:
///
/// ```
/// use shm_channel::{Pod, Publisher, Subscriber};
///
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct Reading {
///     x: f64,
///     y: f64,
///     z: f64,
/// }
/// // SAFETY: repr(C), three f64 and no padding; every bit pattern is a valid Reading.
/// unsafe impl Pod for Reading {
///     const TYPE_TAG: &'static str = "struct:<3d";
/// }
///
/// # let name = &format!("doc-pod-{}", std::process::id());
/// let mut tx = Publisher::<Reading>::create(name)?;
/// let mut rx = Subscriber::<Reading>::open(name)?;
/// tx.publish(&Reading { x: 1.0, y: 2.0, z: -1.0 })?;
/// assert_eq!(rx.next()?.value, Reading { x: 1.0, y: 2.0, z: -1.0 });
/// # drop(tx); drop(rx); shm_channel::force_unlink(name).ok();
/// # Ok::<(), shm_channel::Error>(())
/// ```
///
/// # Safety
///
/// Publishing sends the value's `size_of::<Self>()` bytes as they are in memory, and
/// reading turns bytes from another process (which may be any bytes at all: a peer in
/// another language, a corrupt segment) back into a value. That is sound only when:
///
/// - the type has **no padding** and no other uninitialised bytes (reading them to publish
///   would read uninitialised memory): use `#[repr(C)]` or `#[repr(transparent)]` and make
///   padding an explicit field;
/// - it holds **no pointers, references or handles** (they mean nothing in another
///   process), nor anything with a `Drop` (it is `Copy`);
/// - **every byte pattern for which [`Pod::is_valid`] returns true is a valid value**
///   (the default `is_valid` accepts every pattern, so it is right for integers, floats
///   and arrays and structs of them; a type with invalid patterns, like `bool`, MUST
///   override it);
/// - its in-memory layout is the wire type its tag names: little-endian (the library runs
///   on little-endian Linux), the fields in the order and at the offsets the tag says.
pub unsafe trait Pod: Copy + 'static {
    /// The wire type tag (1 to 120 printable ASCII bytes), e.g. `"f64"`, `"struct:<3d"`,
    /// `"ndarray:|u1:4x8x3"`.
    const TYPE_TAG: &'static str;

    /// Whether `bytes` (exactly `size_of::<Self>()` of them, as received) are a valid value.
    /// The default accepts all, which is right only for types every bit pattern of which is
    /// a value.
    ///
    /// ```
    /// use shm_channel::Pod;
    /// assert!(bool::is_valid(&[1]));
    /// assert!(!bool::is_valid(&[2]));
    /// assert!(f64::is_valid(&f64::NAN.to_le_bytes()));
    /// ```
    fn is_valid(bytes: &[u8]) -> bool {
        let _ = bytes;
        true
    }
}

/// A [`Pod`] type every bit pattern of which is a value, so it can be read **in place**
/// through a zero-copy view ([`View`](crate::View) dereferences to it) even while the
/// publisher may be overwriting it: a torn value is still a value (and the view's release
/// reports [`Error::Overwritten`]). `bool` is `Pod` but not `AnyBitPattern`.
///
/// # Safety
///
/// As [`Pod`], and `is_valid` returns true for every input; the alignment is at most 8 (a
/// payload is 8-byte aligned in the segment).
pub unsafe trait AnyBitPattern: Pod {}

// SAFETY: one byte, no padding; 0 and 1 are the only valid patterns and is_valid accepts
// exactly those.
unsafe impl Pod for bool {
    const TYPE_TAG: &'static str = "bool";
    fn is_valid(bytes: &[u8]) -> bool {
        matches!(bytes, [0] | [1])
    }
}

// SAFETY: 8 bytes, no padding, every pattern is an i64; little-endian two's complement.
unsafe impl Pod for i64 {
    const TYPE_TAG: &'static str = "i64";
}
// SAFETY: every pattern is an i64, alignment 8.
unsafe impl AnyBitPattern for i64 {}

// SAFETY: 8 bytes, no padding, every pattern is an f64 (NaNs included); IEEE 754
// binary64, little-endian.
unsafe impl Pod for f64 {
    const TYPE_TAG: &'static str = "f64";
}
// SAFETY: every pattern is an f64, alignment 8.
unsafe impl AnyBitPattern for f64 {}

mod private {
    pub trait Sealed {}
}

/// What a topic carries: raw bytes (`[u8]`, the default), text (`str`, tag `"str"`) or a
/// [`Pod`] type. Sealed: it is implemented for `[u8]`, `str` and every `Pod` type, and for
/// nothing else.
pub trait Message: private::Sealed {
    /// The type tag a side of this message type requires ("" for raw bytes: any topic).
    #[doc(hidden)]
    const TAG: &'static str;
    /// Whether a message must be exactly one value of a fixed size (a `Pod` type).
    #[doc(hidden)]
    const TYPED: bool;
    /// What a read hands out: `Vec<u8>` for bytes, the value for a `Pod` type.
    type Owned;
    /// The bytes to publish.
    #[doc(hidden)]
    fn bytes_of(&self) -> &[u8];
    /// A received message's bytes as an owned value.
    #[doc(hidden)]
    fn decode(bytes: &[u8]) -> Result<Self::Owned>;
    /// Payload size to create a topic with when none is given (None: the library's default).
    #[doc(hidden)]
    fn default_max_payload() -> Option<usize>;
}

impl private::Sealed for [u8] {}

impl Message for [u8] {
    const TAG: &'static str = "";
    const TYPED: bool = false;
    type Owned = Vec<u8>;
    fn bytes_of(&self) -> &[u8] {
        self
    }
    fn decode(bytes: &[u8]) -> Result<Vec<u8>> {
        Ok(bytes.to_vec())
    }
    fn default_max_payload() -> Option<usize> {
        None
    }
}

impl private::Sealed for str {}

/// Text: the wire type `str` (UTF-8, 0 to `max_payload` bytes). A reader reports bytes that
/// are not UTF-8 as [`Error::InvalidValue`].
///
/// ```
/// use shm_channel::{Publisher, Subscriber};
/// # let name = &format!("doc-str-{}", std::process::id());
/// let mut tx = Publisher::<str>::create(name)?;
/// let mut rx = Subscriber::<str>::open(name)?;
/// tx.publish("21.5 °C")?;
/// assert_eq!(rx.next()?.value, "21.5 °C");
/// assert_eq!(rx.type_tag(), "str");
/// # Ok::<(), shm_channel::Error>(())
/// ```
impl Message for str {
    const TAG: &'static str = "str";
    const TYPED: bool = false;
    type Owned = String;
    fn bytes_of(&self) -> &[u8] {
        self.as_bytes()
    }
    fn decode(bytes: &[u8]) -> Result<String> {
        String::from_utf8(bytes.to_vec()).map_err(|e| Error::InvalidValue {
            type_tag: "str",
            detail: format!("not UTF-8: {}", e.utf8_error()),
        })
    }
    fn default_max_payload() -> Option<usize> {
        None
    }
}

impl<T: Pod> private::Sealed for T {}

impl<T: Pod> Message for T {
    const TAG: &'static str = T::TYPE_TAG;
    const TYPED: bool = true;
    type Owned = T;
    fn bytes_of(&self) -> &[u8] {
        // SAFETY: Pod promises no padding or other uninitialised bytes, so all
        // size_of::<T>() bytes of the value are initialised; the slice borrows `self`.
        unsafe { std::slice::from_raw_parts((self as *const T).cast::<u8>(), size_of::<T>()) }
    }
    fn decode(bytes: &[u8]) -> Result<T> {
        check_value::<T>(bytes)?;
        let mut v = MaybeUninit::<T>::uninit();
        // SAFETY: `bytes` has exactly size_of::<T>() bytes (checked) and they are a valid T
        // (is_valid, as the Pod contract requires); the copy fills every byte of `v`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len());
            Ok(v.assume_init())
        }
    }
    fn default_max_payload() -> Option<usize> {
        Some(size_of::<T>().max(1))
    }
}

/// Ok if `bytes` are a valid `T`: the right length and a valid pattern.
pub(crate) fn check_value<T: Pod>(bytes: &[u8]) -> Result<()> {
    if bytes.len() != size_of::<T>() {
        return Err(Error::InvalidValue {
            type_tag: T::TYPE_TAG,
            detail: format!("{} bytes, expected {}", bytes.len(), size_of::<T>()),
        });
    }
    if !T::is_valid(bytes) {
        return Err(Error::InvalidValue {
            type_tag: T::TYPE_TAG,
            detail: format!("the bytes {bytes:02x?} are not a valid value"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_of_the_builtin_types() {
        assert_eq!(true.bytes_of(), [1]);
        assert_eq!(false.bytes_of(), [0]);
        assert_eq!((-(1i64 << 40)).bytes_of(), (-(1i64 << 40)).to_le_bytes());
        assert_eq!(0.5f64.bytes_of(), 0.5f64.to_le_bytes());
        assert_eq!(
            <f64 as Message>::decode(&2.5f64.to_le_bytes()).unwrap(),
            2.5
        );
        assert!(<bool as Message>::decode(&[1]).unwrap());
    }

    #[test]
    fn invalid_values_are_refused() {
        let e = <bool as Message>::decode(&[2]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidValue {
                    type_tag: "bool",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("\"bool\""), "{e}");
        let e = <i64 as Message>::decode(&[0; 7]).unwrap_err();
        assert!(e.to_string().contains("7 bytes, expected 8"), "{e}");
    }
}
