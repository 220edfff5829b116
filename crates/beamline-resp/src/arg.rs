//! What a [`Command`](super::Command) argument can be: [`ToArg`].

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

/// A value that can be a command argument ([`Command::arg`](super::Command::arg)): strings
/// and byte strings as they are, numbers in decimal, as Redis reads them.
///
/// Implemented for `str`, `String`, `[u8]`, `[u8; N]`, `Vec<u8>`, [`Bytes`], [`BytesMut`],
/// every integer type, `f32` and `f64`, and references, `Box`es, `Rc`s, `Arc`s and `Cow`s
/// of those. Implement it on your own key type to pass it as it is. Integers up to 64 bits
/// are formatted on the stack, so `.arg(42)` allocates nothing but the command's own
/// buffer.
///
/// # Examples
/// ```
/// use beamline_resp::{Command, ToArg};
///
/// struct UserKey(u64);
///
/// impl ToArg for UserKey {
///     fn with_arg<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
///         f(format!("user:{}", self.0).as_bytes())
///     }
/// }
///
/// let cmd = Command::new("EXPIRE").arg(UserKey(7)).arg(60);
/// let args: Vec<&[u8]> = cmd.args().collect();
/// assert_eq!(args, [b"EXPIRE".as_slice(), b"user:7", b"60"]);
/// ```
pub trait ToArg {
    /// Calls `f` with the argument's bytes and returns what it returns.
    fn with_arg<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R;
}

macro_rules! bytes_like {
    ($($t:ty),*) => {$(
        impl ToArg for $t {
            fn with_arg<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
                f(AsRef::<[u8]>::as_ref(self))
            }
        }
    )*};
}

bytes_like!(str, String, [u8], Vec<u8>, Bytes, BytesMut);

impl<const N: usize> ToArg for [u8; N] {
    fn with_arg<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self)
    }
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl ToArg for $t {
            #[allow(clippy::unnecessary_cast)]
            fn with_arg<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
                // Every integer type up to 64 bits (usize and isize included) fits in i128,
                // and its magnitude in u64.
                let n = *self as i128;
                let mut buf = [0u8; DECIMAL_LEN];
                f(decimal(n < 0, n.unsigned_abs() as u64, &mut buf))
            }
        }
    )*};
}

integer!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

macro_rules! display {
    ($($t:ty),*) => {$(
        /// In decimal: 128-bit integers through `Display`; Rust's shortest round-trip form
        /// for floats (`1.5`, `inf`, `-inf`), which Redis's float arguments (`ZADD`,
        /// `INCRBYFLOAT`) parse.
        impl ToArg for $t {
            fn with_arg<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
                f(self.to_string().as_bytes())
            }
        }
    )*};
}

display!(i128, u128, f32, f64);

macro_rules! forward {
    ($($wrapper:ident),*) => {$(
        impl<T: ToArg + ?Sized> ToArg for $wrapper<T> {
            fn with_arg<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
                (**self).with_arg(f)
            }
        }
    )*};
}

forward!(Box, Rc, Arc);

impl<T: ToArg + ?Sized> ToArg for &T {
    fn with_arg<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        (**self).with_arg(f)
    }
}

impl<T: ToArg + ToOwned + ?Sized> ToArg for Cow<'_, T> {
    fn with_arg<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        (**self).with_arg(f)
    }
}

/// The longest decimal an `i64` or a `u64` takes: 20 digits, or a `-` and 19.
pub(super) const DECIMAL_LEN: usize = 20;

/// `magnitude` in decimal, with a `-` in front when `negative`, at the end of `buf`.
pub(super) fn decimal(negative: bool, mut magnitude: u64, buf: &mut [u8; DECIMAL_LEN]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if negative {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(arg: impl ToArg) -> String {
        arg.with_arg(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    #[test]
    fn integers_are_decimal() {
        assert_eq!(text(0_u8), "0");
        assert_eq!(text(-7_i8), "-7");
        assert_eq!(text(i64::MIN), i64::MIN.to_string());
        assert_eq!(text(i64::MAX), i64::MAX.to_string());
        assert_eq!(text(u64::MAX), u64::MAX.to_string());
        assert_eq!(text(usize::MAX), usize::MAX.to_string());
        assert_eq!(text(isize::MIN), isize::MIN.to_string());
        assert_eq!(text(i128::MIN), i128::MIN.to_string());
        assert_eq!(text(u128::MAX), u128::MAX.to_string());
        let n = 42_u32;
        let by_ref: &&u32 = &&n;
        assert_eq!(text(by_ref), "42");
    }

    #[test]
    fn floats_are_their_shortest_decimal_form() {
        assert_eq!(text(1.5_f64), "1.5");
        assert_eq!(text(f64::INFINITY), "inf");
        assert_eq!(text(-0.25_f32), "-0.25");
    }

    #[test]
    fn strings_and_bytes_are_as_they_are() {
        let blob = [0_u8, 255, b'\r'];
        assert_eq!(text("k"), "k");
        assert_eq!(text(String::from("k")), "k");
        assert_eq!(Bytes::copy_from_slice(&blob).with_arg(<[u8]>::to_vec), blob);
        assert_eq!(blob.with_arg(<[u8]>::to_vec), blob);
        assert_eq!(blob[..].with_arg(<[u8]>::to_vec), blob);
        assert_eq!(text(Arc::<str>::from("a")), "a");
        assert_eq!(text(Cow::Borrowed("c")), "c");
        assert_eq!(text(Box::<[u8]>::from(&b"b"[..])), "b");
    }
}
