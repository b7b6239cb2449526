//! Messages packed in one contiguous buffer, split without a copy: by an offsets array
//! (Arrow's binary layout: message `i` is `data[offsets[i]..offsets[i + 1]]`) or by newlines
//! (JSON lines). This lets a caller hand thousands of messages across the Python boundary
//! as one buffer instead of one object per message.

use crate::error::EngineError;

/// Messages cut out of one buffer, and their numbers when they are not contiguous.
pub struct Packed<'a> {
    pub messages: Vec<&'a [u8]>,
    /// One number (line number or offset) per message, when blank lines were left out;
    /// `None`: the messages are numbered `first`, `first + 1`, ...
    pub numbers: Option<Vec<i64>>,
}

/// True for a line that holds no message: empty, or only ASCII whitespace (a lone CR).
fn blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// The lines of `data` (split at `\n`; an unterminated last line counts). Blank lines are
/// not messages, but every line keeps its number (`first` for the first line), so dead
/// letters point at the right line of the file.
pub fn split_lines(data: &[u8], first: i64) -> Packed<'_> {
    let mut messages = Vec::with_capacity(data.len() / 128 + 1);
    let mut numbers: Option<Vec<i64>> = None;
    let mut start = 0;
    let mut line_no = first;
    let len = data.len();
    while start < len {
        let end = memchr_newline(&data[start..]).map_or(len, |i| start + i);
        let line = &data[start..end];
        if blank(line) {
            if numbers.is_none() {
                numbers = Some((first..line_no).collect());
            }
        } else {
            if let Some(n) = numbers.as_mut() {
                n.push(line_no);
            }
            messages.push(line);
        }
        line_no += 1;
        start = end + 1;
    }
    Packed { messages, numbers }
}

/// Position of the first `\n`. Lines are hundreds of bytes long, so this search is most of
/// the cost of cutting a buffer into lines: on x86-64, 64 bytes per step with SSE2 (always
/// present there), elsewhere eight bytes at a time.
#[inline]
fn memchr_newline(s: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut i = 0;
        while i + 64 <= s.len() {
            // SAFETY: SSE2 is part of the x86-64 baseline; the loads read s[i..i + 64],
            // in bounds by the loop condition (unaligned loads).
            let mask = unsafe { newline_mask_64(s.as_ptr().add(i)) };
            if mask != 0 {
                return Some(i + mask.trailing_zeros() as usize);
            }
            i += 64;
        }
        swar_newline(&s[i..]).map(|p| i + p)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        swar_newline(s)
    }
}

/// Bit `k` set when byte `k` of the 64 bytes at `p` is a newline.
///
/// # Safety
/// `p..p + 64` must be readable.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn newline_mask_64(p: *const u8) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    // SAFETY: the caller guarantees 64 readable bytes; SSE2 is always there on x86-64.
    unsafe {
        let nl = _mm_set1_epi8(b'\n' as i8);
        let m = |k: usize| -> u64 {
            let v = _mm_loadu_si128(p.add(16 * k) as *const __m128i);
            (_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) as u32 as u64) << (16 * k)
        };
        m(0) | m(1) | m(2) | m(3)
    }
}

/// Position of the first `\n`, eight bytes at a time.
#[inline]
fn swar_newline(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut i = 0;
    while i + 8 <= s.len() {
        let w = u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes")) ^ NL;
        let found = w.wrapping_sub(LO) & !w & HI;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i..].iter().position(|&b| b == b'\n').map(|p| i + p)
}

/// The messages of `data` delimited by `offsets` (`n + 1` positions for `n` messages, in
/// bytes, non-decreasing, within the buffer). Empty messages stay messages (they become
/// dead letters, like an empty Kafka value).
pub fn split_offsets<'a, O: Copy + TryInto<usize>>(
    data: &'a [u8],
    offsets: &[O],
) -> Result<Packed<'a>, EngineError> {
    let pos = |i: usize| -> Result<usize, EngineError> {
        offsets[i]
            .try_into()
            .map_err(|_| EngineError::input(format!("offsets[{i}] is negative")))
    };
    let mut messages = Vec::with_capacity(offsets.len().saturating_sub(1));
    if offsets.is_empty() {
        return Ok(Packed {
            messages,
            numbers: None,
        });
    }
    let mut start = pos(0)?;
    for i in 1..offsets.len() {
        let end = pos(i)?;
        if end < start {
            return Err(EngineError::input(format!(
                "offsets must not decrease: offsets[{i}] = {end} < offsets[{}] = {start}",
                i - 1
            )));
        }
        if end > data.len() {
            return Err(EngineError::input(format!(
                "offsets[{i}] = {end} is past the end of the buffer ({} bytes)",
                data.len()
            )));
        }
        messages.push(&data[start..end]);
        start = end;
    }
    Ok(Packed {
        messages,
        numbers: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_without_blanks_are_contiguous() {
        let p = split_lines(b"a\nbb\nccc\n", 7);
        assert_eq!(p.messages, vec![&b"a"[..], b"bb", b"ccc"]);
        assert!(p.numbers.is_none());
    }

    #[test]
    fn unterminated_last_line_counts() {
        let p = split_lines(b"a\nbb", 1);
        assert_eq!(p.messages, vec![&b"a"[..], b"bb"]);
    }

    #[test]
    fn blank_lines_keep_the_numbers_of_the_others() {
        let p = split_lines(b"a\n\n\r\n  \nb\r\n\nc", 10);
        assert_eq!(p.messages, vec![&b"a"[..], b"b\r", b"c"]);
        assert_eq!(p.numbers, Some(vec![10, 14, 16]));
    }

    #[test]
    fn newline_search_matches_a_plain_scan() {
        let text: Vec<u8> = (0..700u32)
            .map(|i| {
                if i % 37 == 0 || i % 11 == 3 {
                    b'\n'
                } else {
                    b'x'
                }
            })
            .collect();
        for start in 0..text.len() {
            let s = &text[start..];
            assert_eq!(memchr_newline(s), s.iter().position(|&b| b == b'\n'));
            assert_eq!(swar_newline(s), s.iter().position(|&b| b == b'\n'));
        }
        assert_eq!(memchr_newline(b""), None);
        // Sparse newlines, at and around the 16- and 64-byte steps of the SIMD search.
        let mut sparse = vec![b'x'; 1000];
        for p in [0, 15, 16, 63, 64, 127, 200, 511, 512, 999] {
            sparse[p] = b'\n';
        }
        for start in 0..sparse.len() {
            let s = &sparse[start..];
            assert_eq!(memchr_newline(s), s.iter().position(|&b| b == b'\n'));
        }
        assert_eq!(memchr_newline(&[b'x'; 300]), None);
    }

    #[test]
    fn offsets_cut_messages_without_copying() {
        let data = b"abcdef";
        let p = split_offsets(data, &[0i64, 2, 2, 6]).unwrap();
        assert_eq!(p.messages, vec![&b"ab"[..], b"", b"cdef"]);
        assert_eq!(p.messages[2].as_ptr(), data[2..].as_ptr());
        assert!(split_offsets(data, &[0i32]).unwrap().messages.is_empty());
        assert!(split_offsets(data, &[] as &[i64])
            .unwrap()
            .messages
            .is_empty());
    }

    #[test]
    fn bad_offsets_are_refused_by_position() {
        let data = b"abcdef";
        let e = |o: &[i64]| split_offsets(data, o).err().unwrap().to_string();
        let e = e(&[0, 4, 3]);
        assert!(e.contains("offsets[2] = 3 < offsets[1] = 4"), "{e}");
        let e = split_offsets(data, &[0i64, 7]).err().unwrap().to_string();
        assert!(e.contains("past the end"), "{e}");
        let e = split_offsets(data, &[-1i32, 2]).err().unwrap();
        assert!(matches!(e, EngineError::Input(_)));
        let e = e.to_string();
        assert!(e.contains("offsets[0] is negative"), "{e}");
    }
}
