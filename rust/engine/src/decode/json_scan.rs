//! JSON scanning primitives shared by the JSON decoders: a cursor over one message's bytes
//! that reads object keys, strings (borrowed unless they hold escapes) and numbers, and skips
//! values a decoder does not need.
//!
//! It accepts exactly RFC 8259 JSON, as strictly as `serde_json::from_slice::<Value>`: every
//! string (also in skipped values) must be valid UTF-8 without raw control characters and
//! with paired surrogate escapes, numbers must fit an f64, nothing but whitespace may follow
//! the message. One deliberate difference: at most [`MAX_DEPTH`] arrays/objects may be
//! nested (the message's own object counts as one), where serde_json allows 127.
//!
//! No recursion (skipping keeps a bit stack in a `u128`), and no allocation unless a string
//! that the decoder keeps holds escapes.

use super::decimal::{digit_run, exact_decimal, EXACT_DIGITS};
use std::borrow::Cow;
use std::fmt;

/// Deepest nesting of arrays and objects accepted, the message's own object included.
pub const MAX_DEPTH: usize = 128;

/// Why a message is not (acceptable) JSON, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset into the message.
    pub at: usize,
    pub what: &'static str,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.at, self.what)
    }
}

impl From<SyntaxError> for String {
    fn from(e: SyntaxError) -> String {
        e.to_string()
    }
}

/// A string as it stands in the message: valid UTF-8, escapes not yet decoded. Copying it
/// is free; [`JsonStr::value`] decodes it (allocating only when it holds escapes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonStr<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// The string's value: borrowed from the message unless it holds escapes.
    #[inline]
    pub fn value(self) -> Cow<'a, str> {
        if self.escaped {
            Cow::Owned(unescape(self.raw))
        } else {
            Cow::Borrowed(self.raw)
        }
    }

    /// The text between the quotes, escapes as written.
    pub fn raw(self) -> &'a str {
        self.raw
    }
}

/// A JSON number as it stands in the message (already checked against the JSON grammar and
/// the f64 range), with its value when the scanner could compute it exactly on the way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JsonNum<'a> {
    text: &'a str,
    /// `exact_decimal` of the digits, for numbers without exponent of at most 15 digits.
    exact: Option<f64>,
}

impl<'a> JsonNum<'a> {
    /// The number's text, as written.
    pub fn text(self) -> &'a str {
        self.text
    }

    /// Its value: what `str::parse::<f64>` gives for the text.
    #[inline]
    pub fn value(self) -> Option<f64> {
        self.exact.or_else(|| self.text.parse::<f64>().ok())
    }
}

/// One JSON value as a decoder sees it: strings and numbers are kept (numbers as their
/// source text and, when exact, their value), containers and literals are skipped and only their kind is remembered.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Tok<'a> {
    Str(JsonStr<'a>),
    Num(JsonNum<'a>),
    #[default]
    Null,
    Bool,
    Object,
    Array,
}

impl<'a> Tok<'a> {
    /// A label's text: a string's value, a number's JSON text, "" for anything else.
    #[inline]
    pub fn text(self) -> Cow<'a, str> {
        match self {
            Tok::Str(s) => s.value(),
            Tok::Num(n) => Cow::Borrowed(n.text),
            _ => Cow::Borrowed(""),
        }
    }

    /// The kind, for error messages: "a string", "null", ...
    pub fn kind(&self) -> &'static str {
        match self {
            Tok::Str(_) => "a string",
            Tok::Num(_) => "a number",
            Tok::Null => "null",
            Tok::Bool => "a boolean",
            Tok::Object => "an object",
            Tok::Array => "an array",
        }
    }
}

/// Index in `chunk` of the first byte that ends the fast path inside a string (`"`, `\`,
/// a control character or a non-ASCII byte), or 16 when there is none.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn first_special16(chunk: &[u8; 16]) -> usize {
    use std::arch::x86_64::*;
    // SSE2 is part of x86_64. SAFETY: `chunk` is 16 readable bytes and `_mm_loadu_si128`
    // has no alignment requirement.
    let mask = unsafe {
        let x = _mm_loadu_si128(chunk.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
        let below_0x20 = _mm_cmpeq_epi8(_mm_max_epu8(x, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f));
        // The high bit of each byte: set for matches, and for non-ASCII bytes in `x` itself.
        _mm_movemask_epi8(_mm_or_si128(
            _mm_or_si128(quote, backslash),
            _mm_or_si128(below_0x20, x),
        ))
    };
    (mask as u32 | 1 << 16).trailing_zeros() as usize
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn first_special16(chunk: &[u8; 16]) -> usize {
    first_special16_swar(chunk)
}

/// Portable version of `first_special16` (SWAR on two 64-bit words).
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
#[inline(always)]
fn first_special16_swar(chunk: &[u8; 16]) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // High bit of each special byte; the lowest one marked is always a true hit.
    let specials = |w: u64| {
        let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
        zero(w ^ (LO * b'"' as u64))
            | zero(w ^ (LO * b'\\' as u64))
            | (w.wrapping_sub(LO * 0x20) & !w & HI)
            | (w & HI)
    };
    let (lo, hi) = chunk.split_at(8);
    let m = specials(u64::from_le_bytes(lo.try_into().unwrap_or_default()));
    if m != 0 {
        return (m.trailing_zeros() / 8) as usize;
    }
    let m = specials(u64::from_le_bytes(hi.try_into().unwrap_or_default()));
    8 + (m.trailing_zeros() / 8).min(8) as usize
}

#[inline]
fn hex_val(c: u8) -> Option<u16> {
    match c {
        b'0'..=b'9' => Some((c - b'0') as u16),
        b'a'..=b'f' => Some((c - b'a' + 10) as u16),
        b'A'..=b'F' => Some((c - b'A' + 10) as u16),
        _ => None,
    }
}

/// Where a scanned string's contents lie, and what decoding them needs.
struct RawString {
    start: usize,
    end: usize,
    escaped: bool,
    ascii: bool,
}

/// Cursor over one JSON message.
pub struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(bytes: &'a [u8]) -> Scanner<'a> {
        Scanner { b: bytes, pos: 0 }
    }

    /// Byte offset of the cursor.
    /// Moves the cursor to `pos` when the caller has validated the input up to there by
    /// other means (a label set byte-identical to one read before).
    pub fn seek(&mut self, pos: usize) {
        self.pos = pos.min(self.b.len());
    }

    /// Moves the cursor back to `pos`, a position this scanner was at before.
    pub fn rewind(&mut self, pos: usize) {
        debug_assert!(pos <= self.pos);
        self.pos = pos;
    }

    /// The input between two cursor positions.
    pub fn slice(&self, from: usize, to: usize) -> &'a [u8] {
        &self.b[from..to]
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    fn err(&self, what: &'static str) -> SyntaxError {
        SyntaxError { at: self.pos, what }
    }

    #[inline]
    fn eof_or(&self, what: &'static str) -> SyntaxError {
        if self.pos >= self.b.len() {
            self.err("unexpected end of input")
        } else {
            self.err(what)
        }
    }

    #[inline]
    pub fn skip_ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace, without consuming it.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.b.get(self.pos).copied()
    }

    /// Opens a message that must be a JSON object: an `Err` (the dead-letter reason) names
    /// what it is instead.
    pub fn open_message(&mut self) -> Result<(), String> {
        if self.peek() != Some(b'{') {
            let kind = self.token(0)?.kind();
            self.finish()?;
            return Err(format!("message is {kind}, expected a JSON object"));
        }
        Ok(self.open_object()?)
    }

    /// Consumes the `{` of an object.
    #[inline]
    pub fn open_object(&mut self) -> Result<(), SyntaxError> {
        if self.peek() != Some(b'{') {
            return Err(self.eof_or("expected '{'"));
        }
        self.pos += 1;
        Ok(())
    }

    /// The next key of the object being read (cursor then at its value), or `None` after its
    /// closing brace. `first` must be true right after [`Scanner::open_object`].
    #[inline]
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<Cow<'a, str>>, SyntaxError> {
        let c = self.peek();
        if *first {
            *first = false;
            if c == Some(b'}') {
                self.pos += 1;
                return Ok(None);
            }
        } else {
            match c {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(None);
                }
                _ => return Err(self.eof_or("expected ',' or '}'")),
            }
        }
        if self.b.get(self.pos) != Some(&b'"') {
            return Err(self.eof_or("expected a string key"));
        }
        let key = self.json_str()?.value();
        if self.peek() != Some(b':') {
            return Err(self.eof_or("expected ':'"));
        }
        self.pos += 1;
        Ok(Some(key))
    }

    /// After the message's value: only whitespace may follow.
    pub fn finish(&mut self) -> Result<(), SyntaxError> {
        self.skip_ws();
        if self.pos != self.b.len() {
            return Err(self.err("trailing characters after the JSON value"));
        }
        Ok(())
    }

    /// Validates the string at the cursor (which is at its opening quote) and moves past it.
    /// Returns the raw contents' range, whether it holds escapes and whether it is all ASCII.
    #[inline(always)]
    fn scan_string(&mut self) -> Result<RawString, SyntaxError> {
        let b = self.b;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        let mut non_ascii = false;
        loop {
            while let Some(chunk) = b.get(i..).and_then(<[u8]>::first_chunk::<16>) {
                let k = first_special16(chunk);
                i += k;
                if k < 16 {
                    break;
                }
            }
            let Some(&c) = b.get(i) else {
                self.pos = i;
                return Err(self.err("unexpected end of input in a string"));
            };
            match c {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    i = self.check_escape(i)?;
                }
                0..=0x1f => {
                    self.pos = i;
                    return Err(self.err("control character in a string (must be escaped)"));
                }
                0x80.. => {
                    non_ascii = true;
                    i += 1;
                }
                _ => i += 1,
            }
        }
        if non_ascii {
            // Escapes are ASCII, so checking the raw bytes checks every character.
            if let Err(e) = std::str::from_utf8(&b[start..i]) {
                self.pos = start + e.valid_up_to();
                return Err(self.err("invalid UTF-8 in a string"));
            }
        }
        self.pos = i + 1;
        Ok(RawString {
            start,
            end: i,
            escaped,
            ascii: !non_ascii,
        })
    }

    /// Checks the escape at `b[i] == '\\'`; returns the index after it.
    fn check_escape(&mut self, i: usize) -> Result<usize, SyntaxError> {
        let b = self.b;
        match b.get(i + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
            Some(b'u') => {
                let n = self.hex4(i + 2)?;
                if (0xDC00..=0xDFFF).contains(&n) {
                    self.pos = i;
                    return Err(self.err("lone surrogate in a \\u escape"));
                }
                if !(0xD800..=0xDBFF).contains(&n) {
                    return Ok(i + 6);
                }
                if b.get(i + 6) != Some(&b'\\') || b.get(i + 7) != Some(&b'u') {
                    self.pos = i;
                    return Err(self.err("lone surrogate in a \\u escape"));
                }
                let n2 = self.hex4(i + 8)?;
                if !(0xDC00..=0xDFFF).contains(&n2) {
                    self.pos = i;
                    return Err(self.err("lone surrogate in a \\u escape"));
                }
                Ok(i + 12)
            }
            Some(_) => {
                self.pos = i;
                Err(self.err("invalid escape in a string"))
            }
            None => {
                self.pos = i + 1;
                Err(self.err("unexpected end of input in a string"))
            }
        }
    }

    fn hex4(&mut self, at: usize) -> Result<u16, SyntaxError> {
        let mut n = 0u16;
        for k in 0..4 {
            let Some(&c) = self.b.get(at + k) else {
                self.pos = self.b.len();
                return Err(self.err("unexpected end of input in a string"));
            };
            let Some(v) = hex_val(c) else {
                self.pos = at + k;
                return Err(self.err("invalid \\u escape in a string"));
            };
            n = n << 4 | v;
        }
        Ok(n)
    }

    /// Reads the string at the cursor (which is at its opening quote).
    #[inline(always)]
    pub fn json_str(&mut self) -> Result<JsonStr<'a>, SyntaxError> {
        let RawString {
            start,
            end,
            escaped,
            ascii,
        } = self.scan_string()?;
        let raw = &self.b[start..end];
        let raw = if ascii {
            // SAFETY: scan_string saw every byte of `raw` and found none >= 0x80, and an
            // all-ASCII byte string is valid UTF-8.
            unsafe { std::str::from_utf8_unchecked(raw) }
        } else {
            // scan_string validated it already; this check is the one that counts.
            std::str::from_utf8(raw).map_err(|_| SyntaxError {
                at: start,
                what: "invalid UTF-8 in a string",
            })?
        };
        Ok(JsonStr { raw, escaped })
    }

    /// Reads the string at the cursor (at its opening quote): borrowed unless it has escapes.
    pub fn string(&mut self) -> Result<Cow<'a, str>, SyntaxError> {
        Ok(self.json_str()?.value())
    }

    /// Validates and skips the number at the cursor; returns it (its text, and its value
    /// when that is exact from the digits alone, computed on the way).
    pub fn number(&mut self) -> Result<JsonNum<'a>, SyntaxError> {
        let b = self.b;
        let start = self.pos;
        let mut i = start;
        // The digits as an integer, for `exact`.
        let mut m: u64 = 0;
        let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        let int_start = i;
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digit_run(b, i, &mut m),
            _ => {
                self.pos = i;
                return Err(self.eof_or("invalid number"));
            }
        }
        let int_digits = i - int_start;
        let mut frac_digits = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digit(i) {
                self.pos = i;
                return Err(self.eof_or("invalid number"));
            }
            let frac_start = i;
            i = digit_run(b, i, &mut m);
            frac_digits = i - frac_start;
        }
        let mut check_range = false;
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digit(i) {
                self.pos = i;
                return Err(self.eof_or("invalid number"));
            }
            while digit(i) {
                i += 1;
            }
            check_range = true;
        }
        // Only an exponent or more than 308 digits can overflow an f64.
        check_range |= i - start > 300;
        // SAFETY: every byte in start..i matched one of `-+.eE0-9` above: ASCII, so UTF-8.
        let text = unsafe { std::str::from_utf8_unchecked(&b[start..i]) };
        if check_range && !text.parse::<f64>().is_ok_and(f64::is_finite) {
            return Err(self.err("number out of range"));
        }
        self.pos = i;
        let exact = (!check_range && int_digits + frac_digits <= EXACT_DIGITS)
            .then(|| exact_decimal(m, frac_digits, negative));
        Ok(JsonNum { text, exact })
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), SyntaxError> {
        for (k, &c) in word.iter().enumerate() {
            if self.b.get(self.pos + k) != Some(&c) {
                self.pos += k;
                return Err(self.eof_or("invalid literal"));
            }
        }
        self.pos += word.len();
        Ok(())
    }

    /// Reads any value at the cursor: strings and numbers are returned, containers and
    /// literals skipped. `depth` is how many containers enclose the value.
    #[inline]
    pub fn token(&mut self, depth: usize) -> Result<Tok<'a>, SyntaxError> {
        match self.peek() {
            Some(b'"') => Ok(Tok::Str(self.json_str()?)),
            Some(b'-' | b'0'..=b'9') => Ok(Tok::Num(self.number()?)),
            Some(b'n') => self.literal(b"null").map(|_| Tok::Null),
            Some(b't') => self.literal(b"true").map(|_| Tok::Bool),
            Some(b'f') => self.literal(b"false").map(|_| Tok::Bool),
            Some(b'{') => self.skip_value(depth).map(|_| Tok::Object),
            Some(b'[') => self.skip_value(depth).map(|_| Tok::Array),
            _ => Err(self.eof_or("expected a value")),
        }
    }

    /// Skips the object key and colon after `{` or `,` inside an object being skipped.
    fn skip_key(&mut self) -> Result<(), SyntaxError> {
        if self.peek() != Some(b'"') {
            return Err(self.eof_or("expected a string key"));
        }
        self.scan_string()?;
        if self.peek() != Some(b':') {
            return Err(self.eof_or("expected ':'"));
        }
        self.pos += 1;
        Ok(())
    }

    /// Validates and skips any value at the cursor, without recursion. `depth` is how many
    /// containers enclose the value.
    pub fn skip_value(&mut self, depth: usize) -> Result<(), SyntaxError> {
        // Bit k of `objects` says whether open container k (0 = outermost) is an object.
        let mut objects: u128 = 0;
        let mut open = 0usize;
        'value: loop {
            match self.peek() {
                Some(b'"') => {
                    self.scan_string()?;
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                Some(b'n') => self.literal(b"null")?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(c @ (b'{' | b'[')) => {
                    if depth + open + 1 > MAX_DEPTH {
                        return Err(self.err("nested deeper than 128 arrays/objects"));
                    }
                    self.pos += 1;
                    let is_object = c == b'{';
                    let close = if is_object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                    } else {
                        if is_object {
                            objects |= 1 << open;
                            self.skip_key()?;
                        } else {
                            objects &= !(1 << open);
                        }
                        open += 1;
                        continue 'value;
                    }
                }
                _ => return Err(self.eof_or("expected a value")),
            }
            // A value is complete: close containers until one expects another element.
            while open > 0 {
                let is_object = objects >> (open - 1) & 1 == 1;
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if is_object {
                            self.skip_key()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if is_object => self.pos += 1,
                    Some(b']') if !is_object => self.pos += 1,
                    _ if is_object => return Err(self.eof_or("expected ',' or '}'")),
                    _ => return Err(self.eof_or("expected ',' or ']'")),
                }
                open -= 1;
            }
            return Ok(());
        }
    }
}

/// Decodes the escapes of a string that `scan_string` validated. Malformed escapes cannot
/// occur there; were one to, it would become U+FFFD rather than a panic.
#[cold]
fn unescape(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let (mut run, mut i) = (0, 0);
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        // Slicing is safe: `run` and `i` sit at or right after ASCII bytes.
        out.push_str(&raw[run..i]);
        let (c, used) = escape_at(b, i);
        out.push(c);
        i += used;
        run = i;
    }
    out.push_str(&raw[run..]);
    out
}

/// The character of the escape at `b[i] == '\\'` and its length in bytes.
fn escape_at(b: &[u8], i: usize) -> (char, usize) {
    const BAD: (char, usize) = (char::REPLACEMENT_CHARACTER, 1);
    let hex = |at: usize| -> Option<u32> {
        let mut n = 0;
        for k in 0..4 {
            n = n << 4 | hex_val(*b.get(at + k)?)? as u32;
        }
        Some(n)
    };
    match b.get(i + 1) {
        Some(b'"') => ('"', 2),
        Some(b'\\') => ('\\', 2),
        Some(b'/') => ('/', 2),
        Some(b'b') => ('\u{8}', 2),
        Some(b'f') => ('\u{c}', 2),
        Some(b'n') => ('\n', 2),
        Some(b'r') => ('\r', 2),
        Some(b't') => ('\t', 2),
        Some(b'u') => match hex(i + 2) {
            Some(hi @ 0xD800..=0xDBFF) => match (b.get(i + 6..i + 8), hex(i + 8)) {
                (Some(b"\\u"), Some(lo @ 0xDC00..=0xDFFF)) => {
                    let c = char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
                    (c.unwrap_or(char::REPLACEMENT_CHARACTER), 12)
                }
                _ => (char::REPLACEMENT_CHARACTER, 6),
            },
            Some(n) => (char::from_u32(n).unwrap_or(char::REPLACEMENT_CHARACTER), 6),
            None => BAD,
        },
        _ => BAD,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(s: &str) -> Result<usize, SyntaxError> {
        let mut sc = Scanner::new(s.as_bytes());
        sc.skip_value(0)?;
        sc.finish()?;
        Ok(sc.pos())
    }

    fn string(s: &[u8]) -> Result<Cow<'_, str>, SyntaxError> {
        let mut sc = Scanner::new(s);
        let v = sc.string()?;
        sc.finish()?;
        Ok(v)
    }

    #[test]
    fn simd_and_portable_special_byte_search_agree() {
        let mut rng = crate::decode::test_support::Rng(9);
        let interesting = [b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xff, b'0'];
        for _ in 0..100_000 {
            let mut chunk = [b'x'; 16];
            for c in chunk.iter_mut() {
                if rng.chance(10) {
                    *c = rng.pick(&interesting);
                } else if rng.chance(5) {
                    *c = rng.next() as u8;
                }
            }
            let want = chunk
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c))
                .unwrap_or(16);
            assert_eq!(first_special16(&chunk), want, "{chunk:?}");
            assert_eq!(first_special16_swar(&chunk), want, "{chunk:?}");
        }
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        assert!(matches!(
            string(br#""plain text, longer than eight""#),
            Ok(Cow::Borrowed("plain text, longer than eight"))
        ));
        assert!(matches!(
            string("\"gr\u{fc}n \u{1F600}\"".as_bytes()),
            Ok(Cow::Borrowed(_))
        ));
        let s = string(br#""a\"b\\c\/d\be\ff\ng\rh\ti\u0041\u00fc\u20ac\ud83d\ude00""#).unwrap();
        assert_eq!(
            s,
            "a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti\u{41}\u{fc}\u{20ac}\u{1F600}"
        );
        assert!(matches!(s, Cow::Owned(_)));
    }

    #[test]
    fn bad_strings_are_errors_with_positions() {
        let cases: &[(&[u8], &str, usize)] = &[
            (b"\"abc", "end of input", 4),
            (b"\"ab\x01c\"", "control character", 3),
            (b"\"abcdefghij\xffk\"", "invalid UTF-8", 11),
            (b"\"\xc3\"", "invalid UTF-8", 1),
            (br#""\x""#, "invalid escape", 1),
            (br#""\u12g4""#, "invalid \\u escape", 5),
            (br#""\ud800""#, "lone surrogate", 1),
            (br#""\ud800\u0041""#, "lone surrogate", 1),
            (br#""\udc00""#, "lone surrogate", 1),
            (br#""\u00"#, "end of input", 5),
            (b"\"\\", "end of input", 2),
        ];
        for &(s, want, at) in cases {
            let e = string(s).unwrap_err();
            assert!(
                e.what.contains(want),
                "{:?}: {e}",
                String::from_utf8_lossy(s)
            );
            assert_eq!(e.at, at, "{:?}: {e}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn numbers_follow_the_json_grammar() {
        for ok in [
            "0",
            "-0",
            "12",
            "-12.5",
            "1e5",
            "1E+5",
            "2.5e-3",
            "9223372036854775794",
            "1e308",
        ] {
            let mut sc = Scanner::new(ok.as_bytes());
            let n = sc.number().unwrap();
            assert_eq!(n.text(), ok);
            assert_eq!(
                n.value().map(f64::to_bits),
                ok.parse::<f64>().ok().map(f64::to_bits)
            );
        }
        for bad in ["-", "01", "1.", ".5", "1e", "1e+", "+1", "1e400", "-1e309"] {
            assert!(skip(bad).is_err(), "{bad}");
        }
        assert!(skip(&"9".repeat(400))
            .unwrap_err()
            .what
            .contains("out of range"));
    }

    /// The value computed while scanning equals the standard parser's, bit for bit, for
    /// numbers with and without fraction or exponent, around the 15-digit limit, signed.
    #[test]
    fn number_values_equal_the_standard_parser() {
        let mut next = crate::test_rng::xorshift(0x2545_F491_4F6C_DD1D);
        let mut texts: Vec<String> = ["0", "-0", "0.0", "-0.0", "0.000", "1", "-1.5"]
            .map(String::from)
            .to_vec();
        for _ in 0..30_000 {
            let int_len = (next() % 17 + 1) as usize;
            let frac_len = (next() % 17) as usize;
            let digit = |r: u64| char::from(b'0' + (r % 10) as u8);
            let mut t = String::new();
            if next() % 2 == 0 {
                t.push('-');
            }
            t.push(char::from(b'1' + (next() % 9) as u8));
            t.extend((1..int_len).map(|_| digit(next())));
            if frac_len > 0 {
                t.push('.');
                t.extend((0..frac_len).map(|_| digit(next())));
            }
            if next() % 8 == 0 {
                t.push_str(&format!("e{}", next() % 40));
            }
            texts.push(t);
        }
        for t in &texts {
            let n = Scanner::new(t.as_bytes()).number().unwrap();
            assert_eq!(n.text(), t);
            let want = t.parse::<f64>().ok().map(f64::to_bits);
            assert_eq!(n.value().map(f64::to_bits), want, "{t}");
        }
    }

    #[test]
    fn skips_nested_values() {
        let v = r#" {"a": [1, -2.5e3, "x\"]", {"b": {}}, [], [[true]], null, false], "c": {"d": "e"}} "#;
        assert_eq!(skip(v).unwrap(), v.len());
        for bad in [
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "[1 2]",
            "[",
            "{\"a\":",
            "[}",
            "{]",
            "tru",
            "nul",
            "[\"a\"",
            "{\"a\":1}}",
            "",
        ] {
            assert!(skip(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nesting_is_limited_without_recursion() {
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(skip(&nest(MAX_DEPTH)).is_ok());
        let e = skip(&nest(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(
            (e.at, e.what),
            (MAX_DEPTH, "nested deeper than 128 arrays/objects")
        );
        let objs = |n: usize| format!("{}1{}", "{\"k\":".repeat(n), "}".repeat(n));
        assert!(skip(&objs(MAX_DEPTH)).is_ok());
        assert!(skip(&objs(MAX_DEPTH + 1)).is_err());
        // Mixed containers, closed in the right order only.
        assert!(skip("[{\"a\":[{}]}]").is_ok());
        assert!(skip("[{\"a\":[{}}]]").is_err());
        // Huge unclosed input fails fast.
        assert!(skip(&"[".repeat(1_000_000)).is_err());
    }

    #[test]
    fn tokens_report_kinds() {
        let mut sc = Scanner::new(br#"{"a":"s","b":1.5,"c":null,"d":true,"e":{"x":[1]},"f":[]}"#);
        sc.open_object().unwrap();
        let mut first = true;
        let mut kinds = Vec::new();
        while let Some(k) = sc.next_key(&mut first).unwrap() {
            let t = sc.token(1).unwrap();
            kinds.push(format!("{k}={}", t.kind()));
        }
        sc.finish().unwrap();
        assert_eq!(
            kinds,
            [
                "a=a string",
                "b=a number",
                "c=null",
                "d=a boolean",
                "e=an object",
                "f=an array"
            ]
        );
    }

    /// A random JSON value, valid unless `rng` picks one of the broken leaves.
    fn random_json(rng: &mut crate::decode::test_support::Rng, depth: usize) -> String {
        let leaves = [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "12",
            "-3.5",
            "1e5",
            "2.5E-3",
            "1e400",
            "01",
            "1.",
            "-",
            "\"\"",
            "\"abc\"",
            "\"a\\\"b\"",
            "\"\\u00e9\\ud83d\\ude00\"",
            "\"\\ud800\"",
            "\"\\udc00x\"",
            "\"\\x\"",
            "\"gr\u{fc}n\"",
            "\"tab\there\"",
            "\"\\/\\b\\f\\n\\r\\t\"",
        ];
        let ws =
            |rng: &mut crate::decode::test_support::Rng| rng.pick(&["", "", " ", "\n\t", "\r\n "]);
        match rng.below(if depth > 6 { 2 } else { 4 }) {
            0 | 1 => rng.pick(&leaves).to_string(),
            2 => {
                let n = rng.below(4);
                let items: Vec<String> = (0..n)
                    .map(|_| format!("{}{}{}", ws(rng), random_json(rng, depth + 1), ws(rng)))
                    .collect();
                format!("[{}]", items.join(","))
            }
            _ => {
                let n = rng.below(4);
                let items: Vec<String> = (0..n)
                    .map(|_| {
                        let k = rng.pick(&["\"k\"", "\"\\u006b\"", "\"\"", "\"k\"", "k"]);
                        format!("{}{k}{}:{}", ws(rng), ws(rng), random_json(rng, depth + 1))
                    })
                    .collect();
                format!("{{{}}}", items.join(","))
            }
        }
    }

    #[test]
    fn accepts_what_serde_json_value_accepts() {
        let mut rng = crate::decode::test_support::Rng(5);
        let (mut ok, mut bad) = (0, 0);
        for i in 0..30_000 {
            let text = random_json(&mut rng, 0);
            let bytes = if i % 2 == 0 {
                text.into_bytes()
            } else {
                rng.mutate(text.as_bytes(), b"{}[]\":,\\ 0e.-u\xff\xc3\x01")
            };
            let mut sc = Scanner::new(&bytes);
            let mine = sc.skip_value(0).and_then(|_| sc.finish());
            let serde = serde_json::from_slice::<serde_json::Value>(&bytes);
            assert_eq!(
                mine.is_ok(),
                serde.is_ok(),
                "{:?}: {mine:?} vs {serde:?}",
                String::from_utf8_lossy(&bytes)
            );
            if mine.is_ok() {
                ok += 1;
            } else {
                bad += 1;
            }
        }
        assert!(ok > 5_000 && bad > 5_000, "{ok} valid, {bad} invalid");
    }
}
