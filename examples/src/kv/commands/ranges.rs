//! Parts of strings: GETRANGE (and its old name SUBSTR), SETRANGE, GETBIT, SETBIT, and LCS.

use beamline::resp::Value;
use bytes::Bytes;

use super::super::store::Data;
use super::reply::{Outcome, error, integer, is, syntax_error};
use super::strings::check_length;
use super::{Call, KEY, Spec, TWO_KEYS, plain};

pub(super) const SPECS: &[Spec] = &[
    plain("getrange", 4, KEY, getrange),
    plain("substr", 4, KEY, getrange),
    plain("setrange", 4, KEY, setrange),
    plain("getbit", 3, KEY, getbit),
    plain("setbit", 4, KEY, setbit),
    plain("lcs", -3, TWO_KEYS, lcs),
];

/// The highest bit offset: a string of at most 512 MiB.
const MAX_BIT_OFFSET: i64 = 4 * 1024 * 1024 * 1024 - 1;

/// GETRANGE key start end: negative indices count from the end; out of range is clamped.
fn getrange(c: &mut Call<'_, '_>) -> Outcome {
    let (start, end) = (c.int(2)?, c.int(3)?);
    let value = c.db.string(c.key(), c.clock)?.unwrap_or_default();
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(Value::Bulk(Bytes::new()));
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { (len + end).max(0) } else { end };
    let end = end.min(len - 1);
    if start > end || len == 0 {
        return Ok(Value::Bulk(Bytes::new()));
    }
    // 0 <= start <= end < len.
    Ok(Value::Bulk(value.slice(start as usize..=end as usize)))
}

/// SETRANGE key offset value: the string grown with zero bytes as needed.
fn setrange(c: &mut Call<'_, '_>) -> Outcome {
    let offset = c.int(2)?;
    let offset = usize::try_from(offset).map_err(|_| error("ERR offset is out of range"))?;
    let key = c.key();
    let value = c.args[3];
    let old = c.db.string(key, c.clock)?;
    let Some(old) = old else {
        if value.is_empty() {
            return Ok(integer(0));
        }
        let len = check_length(c, offset.checked_add(value.len()))?;
        let mut new = vec![0u8; len];
        new[offset..].copy_from_slice(value);
        c.db.put(key, Data::Str(Bytes::from(new)));
        return Ok(integer(len));
    };
    if value.is_empty() {
        return Ok(integer(old.len()));
    }
    let end = check_length(c, offset.checked_add(value.len()))?;
    let mut new = old.to_vec();
    if new.len() < end {
        new.resize(end, 0);
    }
    new[offset..end].copy_from_slice(value);
    let len = new.len();
    c.db.put(key, Data::Str(Bytes::from(new)));
    Ok(integer(len))
}

fn bit_offset(arg: &[u8]) -> Result<usize, Value> {
    super::super::store::parse_int(arg)
        .filter(|n| (0..=MAX_BIT_OFFSET).contains(n))
        .map(|n| n as usize)
        .ok_or_else(|| error("ERR bit offset is not an integer or out of range"))
}

fn getbit(c: &mut Call<'_, '_>) -> Outcome {
    let offset = bit_offset(c.args[2])?;
    let value = c.db.string(c.key(), c.clock)?.unwrap_or_default();
    let bit = value
        .get(offset / 8)
        .map_or(0, |byte| (byte >> (7 - offset % 8)) & 1);
    Ok(Value::Integer(i64::from(bit)))
}

fn setbit(c: &mut Call<'_, '_>) -> Outcome {
    let offset = bit_offset(c.args[2])?;
    let on = match c.args[3] {
        b"0" => false,
        b"1" => true,
        _ => return Err(error("ERR bit is not an integer or out of range")),
    };
    let key = c.key();
    let old = c.db.string(key, c.clock)?.unwrap_or_default();
    let byte = offset / 8;
    check_length(c, Some(byte + 1))?;
    let mut new = old.to_vec();
    if new.len() <= byte {
        new.resize(byte + 1, 0);
    }
    let mask = 1 << (7 - offset % 8);
    let was = new[byte] & mask != 0;
    if on {
        new[byte] |= mask;
    } else {
        new[byte] &= !mask;
    }
    c.db.put(key, Data::Str(Bytes::from(new)));
    Ok(Value::Integer(i64::from(was)))
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the longest common
/// subsequence, by Redis's own dynamic programming (its ranges come out in the same order).
fn lcs(c: &mut Call<'_, '_>) -> Outcome {
    let (ka, kb) = (c.args[1], c.args[2]);
    let not_strings = || error("ERR The specified keys must contain string values");
    let a = c.db.string(ka, c.clock).map_err(|_| not_strings())?;
    let b = c.db.string(kb, c.clock).map_err(|_| not_strings())?;
    let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
    let (mut len_only, mut idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut i = 3;
    while i < c.args.len() {
        let opt = c.args[i];
        if is(opt, "IDX") {
            idx = true;
        } else if is(opt, "LEN") {
            len_only = true;
        } else if is(opt, "WITHMATCHLEN") {
            with_len = true;
        } else if is(opt, "MINMATCHLEN") && i + 1 < c.args.len() {
            min_len = c.int(i + 1)?.max(0);
            i += 1;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    if idx && len_only {
        return Err(error(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    let cells = (a.len() as u64 + 1).saturating_mul(b.len() as u64 + 1);
    if cells.saturating_mul(4) > c.shared.max_string() as u64 {
        return Err(error(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let table = Table::build(&a, &b);
    let total = table.at(a.len(), b.len());
    if len_only {
        return Ok(integer(total as usize));
    }
    let (common, ranges) = table.walk(&a, &b, min_len as u64, with_len);
    if !idx {
        return Ok(Value::Bulk(Bytes::from(common)));
    }
    Ok(Value::Array(vec![
        Value::bulk("matches"),
        Value::Array(ranges),
        Value::bulk("len"),
        integer(total as usize),
    ]))
}

/// The LCS table: at `(i, j)`, the length of the LCS of `a[..i]` and `b[..j]`.
struct Table {
    cells: Vec<u32>,
    width: usize,
}

impl Table {
    fn build(a: &[u8], b: &[u8]) -> Self {
        let width = b.len() + 1;
        let mut cells = vec![0u32; (a.len() + 1) * width];
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                cells[i * width + j] = if a[i - 1] == b[j - 1] {
                    cells[(i - 1) * width + j - 1] + 1
                } else {
                    cells[(i - 1) * width + j].max(cells[i * width + j - 1])
                };
            }
        }
        Table { cells, width }
    }

    fn at(&self, i: usize, j: usize) -> u32 {
        self.cells[i * self.width + j]
    }

    /// Walks back from the end: the common subsequence, and the matching ranges (IDX's
    /// `[[a_start, a_end], [b_start, b_end], len?]`), as Redis emits them.
    fn walk(&self, a: &[u8], b: &[u8], min_len: u64, with_len: bool) -> (Vec<u8>, Vec<Value>) {
        let mut common = vec![0u8; self.at(a.len(), b.len()) as usize];
        let mut left = common.len();
        let mut ranges = Vec::new();
        let (mut i, mut j) = (a.len(), b.len());
        // The range being built: (a_start, a_end, b_start, b_end); `None` when none is.
        let mut range: Option<(usize, usize, usize, usize)> = None;
        while i > 0 && j > 0 {
            let mut emit = false;
            if a[i - 1] == b[j - 1] {
                left -= 1;
                common[left] = a[i - 1];
                match &mut range {
                    None => range = Some((i - 1, i - 1, j - 1, j - 1)),
                    Some((a_start, _, b_start, _)) if *a_start == i && *b_start == j => {
                        *a_start -= 1;
                        *b_start -= 1;
                    }
                    Some(_) => emit = true,
                }
                if range.is_some_and(|(a0, _, b0, _)| a0 == 0 || b0 == 0) {
                    emit = true;
                }
                i -= 1;
                j -= 1;
            } else {
                if self.at(i - 1, j) > self.at(i, j - 1) {
                    i -= 1;
                } else {
                    j -= 1;
                }
                emit = range.is_some();
            }
            if emit && let Some((a0, a1, b0, b1)) = range.take() {
                let len = (a1 - a0 + 1) as u64;
                if min_len == 0 || len >= min_len {
                    let pair = |x: usize, y: usize| Value::Array(vec![integer(x), integer(y)]);
                    let mut item = vec![pair(a0, a1), pair(b0, b1)];
                    if with_len {
                        item.push(integer(len as usize));
                    }
                    ranges.push(Value::Array(item));
                }
            }
        }
        (common, ranges)
    }
}
