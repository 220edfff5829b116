//! INCRBYFLOAT and HINCRBYFLOAT arithmetic, printed the way Redis prints it.
//!
//! Redis adds in `long double` and prints the sum with `%.17Lf`, trailing zeros and a lone
//! point removed, `-0` as `0`, and stores that text. Rust has no `long double`; adding in
//! `f64` would print binary noise Redis's wider type hides (`0.1 + 0.2` would read
//! `0.30000000000000004`, Redis reads `0.3`). So the sum is exact decimal arithmetic on a
//! 128-bit integer and a scale, rounded to 17 decimals (half to even) and printed as Redis
//! prints: every sum of numbers a user types reads as Redis shows it. Numbers beyond 38
//! significant digits, or with exponents beyond that range, fall back to `f64`.

use bytes::Bytes;

/// The most decimals Redis prints (`%.17Lf`).
const DECIMALS: u32 = 17;

/// Why an increment failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FloatError {
    /// A text is not a number as Redis reads one.
    NotAFloat,
    /// The sum is infinite or not a number.
    NanOrInfinity,
}

/// A number as read: exact (`mantissa / 10^scale`) when it fits, else an `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    Exact { mantissa: i128, scale: u32 },
    Float(f64),
}

/// `current + increment`, as Redis stores it (`current` of `None` is 0).
///
/// # Errors
/// [`FloatError::NotAFloat`] if either text is not a number; [`FloatError::NanOrInfinity`]
/// if the sum is not finite.
pub(crate) fn add(current: Option<&[u8]>, increment: &[u8]) -> Result<Bytes, FloatError> {
    let a = match current {
        Some(text) => parse(text).ok_or(FloatError::NotAFloat)?,
        None => Number::Exact {
            mantissa: 0,
            scale: 0,
        },
    };
    let b = parse(increment).ok_or(FloatError::NotAFloat)?;
    if let (
        Number::Exact {
            mantissa: ma,
            scale: sa,
        },
        Number::Exact {
            mantissa: mb,
            scale: sb,
        },
    ) = (a, b)
    {
        let scale = sa.max(sb);
        let widen = |m: i128, s: u32| m.checked_mul(10i128.checked_pow(scale - s)?);
        if let Some(sum) = widen(ma, sa)
            .zip(widen(mb, sb))
            .and_then(|(x, y)| x.checked_add(y))
        {
            return Ok(Bytes::from(format_exact(sum, scale)));
        }
    }
    let sum = to_f64(a) + to_f64(b);
    if !sum.is_finite() {
        return Err(FloatError::NanOrInfinity);
    }
    Ok(Bytes::from(trim(format!("{sum:.17}"))))
}

/// Whether `text` is a number as Redis reads one (`string2ld`): what [`add`] takes.
pub(crate) fn is_number(text: &[u8]) -> bool {
    parse(text).is_some()
}

/// Whether `text` reads as an infinity (`inf`, `-Infinity`, `1e400`): HINCRBYFLOAT refuses
/// such an increment before adding, as Redis does.
pub(crate) fn is_infinite(text: &[u8]) -> bool {
    matches!(parse(text), Some(Number::Float(f)) if f.is_infinite())
}

fn to_f64(n: Number) -> f64 {
    match n {
        Number::Float(f) => f,
        Number::Exact { mantissa, scale } => mantissa as f64 / 10f64.powi(scale as i32),
    }
}

/// Reads a number as `strtold` does for Redis: an optional sign, digits with at most one
/// point, an optional exponent, or `inf`/`infinity`; nothing before or after it; not NaN.
fn parse(text: &[u8]) -> Option<Number> {
    if text.is_empty() || text.len() >= 5 * 1024 {
        return None;
    }
    exact(text).or_else(|| {
        let s = std::str::from_utf8(text).ok()?;
        // Rust's parser takes what strtold takes, but for leading blanks (Redis refuses them
        // too) and hexadecimal (left out).
        let f: f64 = s.parse().ok()?;
        (!f.is_nan()).then_some(Number::Float(f))
    })
}

/// The exact reading of a plain decimal (`-12.5e3`); `None` for anything else, or one
/// beyond 38 significant digits.
fn exact(text: &[u8]) -> Option<Number> {
    let (negative, rest) = match text.first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (number, exponent) = match rest.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => {
            let exp = std::str::from_utf8(&rest[at + 1..]).ok()?;
            if exp.is_empty() || exp.starts_with(['+', '-']) && exp.len() == 1 {
                return None;
            }
            (&rest[..at], exp.parse::<i32>().ok()?)
        }
        None => (rest, 0),
    };
    let (whole, fraction) = match number.iter().position(|&b| b == b'.') {
        Some(at) => (&number[..at], &number[at + 1..]),
        None => (number, &number[..0]),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut mantissa: i128 = 0;
    for &d in whole.iter().chain(fraction) {
        if !d.is_ascii_digit() {
            return None;
        }
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(d - b'0'))?;
    }
    let mut scale = i64::try_from(fraction.len()).ok()? - i64::from(exponent);
    if scale < 0 {
        mantissa = mantissa.checked_mul(10i128.checked_pow(u32::try_from(-scale).ok()?)?)?;
        scale = 0;
    }
    let scale = u32::try_from(scale).ok().filter(|&s| s <= 38)?;
    Some(Number::Exact {
        mantissa: if negative { -mantissa } else { mantissa },
        scale,
    })
}

/// `mantissa / 10^scale` rounded to [`DECIMALS`] decimals (half to even), as Redis prints.
fn format_exact(mut mantissa: i128, mut scale: u32) -> String {
    if scale > DECIMALS {
        let divisor = 10i128.pow(scale - DECIMALS);
        let (q, r) = (mantissa / divisor, mantissa % divisor);
        let twice = r.abs() * 2;
        let up = twice > divisor || (twice == divisor && q % 2 != 0);
        mantissa = if up { q + mantissa.signum() } else { q };
        scale = DECIMALS;
    }
    let negative = mantissa < 0;
    let digits = mantissa.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    let sign = if negative { "-" } else { "" };
    trim(format!("{sign}{whole}.{fraction}"))
}

/// Redis's `LD_STR_HUMAN` clean-up: no trailing zeros after the point, no lone point, and
/// `-0` is `0`.
fn trim(mut text: String) -> String {
    if text.contains('.') {
        let kept = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(kept);
    }
    if text == "-0" || text.is_empty() {
        text = "0".to_owned();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: Option<&str>, b: &str) -> Result<String, FloatError> {
        add(a.map(str::as_bytes), b.as_bytes()).map(|out| String::from_utf8(out.to_vec()).unwrap())
    }

    #[test]
    fn sums_read_as_redis_prints_them() {
        for (a, b, want) in [
            (None, "1", "1"),
            (Some("1"), "0.25", "1.25"),
            (Some("1.5"), "1.5", "3"),
            (Some("17179869184"), "1.5", "17179869185.5"),
            (Some("17179869184"), "17179869184", "34359738368"),
            (Some("0.1"), "0.2", "0.3"),
            (Some("1"), "-1.1", "-0.1"),
            (Some("10.5"), "-10.5", "0"),
            (Some("5.0e3"), "2.0e2", "5200"),
            (Some("-.5"), "+.25", "-0.25"),
            (Some("3"), "1e-20", "3"),
            (Some("0.024390243902439025"), "-0.024390243902439025", "0"),
            (Some("0.000000000000000015"), "0", "0.00000000000000002"),
            (Some("0"), "0.000005", "0.000005"),
        ] {
            assert_eq!(sum(a, b).as_deref(), Ok(want), "{a:?} + {b}");
        }
    }

    #[test]
    fn refuses_what_redis_refuses() {
        for bad in [
            " 11", "11 ", " 11 ", "1\u{0}2", "", "abc", "1.2.3", "e5", "1e", "nan",
        ] {
            assert_eq!(sum(Some(bad), "1"), Err(FloatError::NotAFloat), "{bad:?}");
            assert_eq!(sum(Some("1"), bad), Err(FloatError::NotAFloat), "{bad:?}");
        }
        assert_eq!(sum(Some("0"), "+inf"), Err(FloatError::NanOrInfinity));
        assert_eq!(sum(Some("1e308"), "1e308"), Err(FloatError::NanOrInfinity));
        assert!(is_number(b"-inf") && is_number(b"3.5") && !is_number(b"x"));
        assert!(is_infinite(b"+inf") && is_infinite(b"-1e400") && !is_infinite(b"1e300"));
    }

    #[test]
    fn beyond_exact_range_falls_back_to_f64() {
        // 51 digits do not fit the exact path; the f64 sum prints its own binary value, as
        // Redis prints its long double's (neither is 10^50 exactly).
        let big = format!("1{}", "0".repeat(50));
        let out = sum(Some(&big), "1").unwrap();
        assert_eq!(out.parse::<f64>().unwrap(), 1e50);
        assert!(out.len() == 51 && !out.contains('.'), "{out}");
    }
}
