//! Redis's glob (`stringmatchlen`), for KEYS, SCAN MATCH, PSUBSCRIBE and CONFIG GET: `*`,
//! `?`, `[abc]`, `[^abc]`, `[a-z]` and `\` to take the next byte literally.
//!
//! Each pattern element but `*` matches exactly one byte, so the match backtracks only to
//! the last `*` seen: O(pattern × text), never exponential (Redis's "long nested loops"
//! regression: `a*a*a*...b` against a long run of `a`).

/// Whether `text` matches `pattern` (`nocase`: ASCII letters in any case, as CONFIG GET).
pub(crate) fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: (pattern position after it, text position).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if pattern.get(p) == Some(&b'*') {
            // Consecutive stars are one.
            while pattern.get(p) == Some(&b'*') {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
            star = Some((p, t));
            continue;
        }
        match one(pattern, p, text[t], nocase) {
            Some((true, next)) => {
                p = next;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&b| b == b'*')
}

/// Whether the pattern element at `p` (not a `*`) matches `byte`, and where the next element
/// starts; `None` at the pattern's end.
fn one(pattern: &[u8], p: usize, byte: u8, nocase: bool) -> Option<(bool, usize)> {
    let eq = |a: u8, b: u8| a == b || (nocase && a.eq_ignore_ascii_case(&b));
    match *pattern.get(p)? {
        b'?' => Some((true, p + 1)),
        b'\\' if p + 1 < pattern.len() => Some((eq(pattern[p + 1], byte), p + 2)),
        b'[' => Some(class(pattern, p + 1, byte, nocase)),
        literal => Some((eq(literal, byte), p + 1)),
    }
}

/// A `[...]` class starting at `p` (after the `[`): whether it matches `byte`, and where the
/// pattern goes on. An unclosed class ends with the pattern, as in Redis.
fn class(pattern: &[u8], mut p: usize, byte: u8, nocase: bool) -> (bool, usize) {
    let fold = |b: u8| if nocase { b.to_ascii_lowercase() } else { b };
    let byte = fold(byte);
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut matched = false;
    loop {
        match pattern.get(p) {
            None => break,
            Some(b']') => {
                p += 1;
                break;
            }
            Some(b'\\') if p + 1 < pattern.len() => {
                matched |= fold(pattern[p + 1]) == byte;
                p += 2;
            }
            Some(&low) if pattern.get(p + 1) == Some(&b'-') && p + 2 < pattern.len() => {
                let high = pattern[p + 2];
                let (low, high) = (fold(low), fold(high));
                let (low, high) = if low <= high {
                    (low, high)
                } else {
                    (high, low)
                };
                matched |= (low..=high).contains(&byte);
                p += 3;
            }
            Some(&b) => {
                matched |= fold(b) == byte;
                p += 1;
            }
        }
    }
    (matched != negate, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_redis() {
        for (pattern, text, want) in [
            ("*", "save", true),
            ("sa*", "save", true),
            ("s?ve", "save", true),
            ("*ve", "save", true),
            ("*a*e", "save", true),
            ("*x*", "save", false),
            ("sav", "save", false),
            ("save?", "save", false),
            ("", "save", false),
            ("**", "", true),
            ("h[ae]llo", "hello", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hallo", true),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("[\\]]", "]", true),
            ("foo*", "foo_a", true),
            ("a[bc", "ab", true),
        ] {
            assert_eq!(
                matches(pattern.as_bytes(), text.as_bytes(), false),
                want,
                "{pattern} {text}"
            );
        }
        assert!(matches(b"SAVE", b"save", true));
        assert!(matches(b"[S]ave", b"save", true));
        assert!(!matches(b"SAVE", b"save", false));
    }

    #[test]
    fn nested_stars_do_not_take_exponential_time() {
        let text = [b'a'; 40];
        let pattern = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        assert!(!matches(pattern, &text, false));
    }
}
