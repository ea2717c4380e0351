//! A reader of JSON text that validates as it goes and borrows what it reads, for the
//! page columns (the crate root): serde_json's `RawValue` checks a value by walking it
//! through its generic deserializer, several times the work of this loop over the bytes,
//! and a bucket a push reads holds about a hundred kilobytes of such values.
//!
//! It accepts what serde_json accepts for the same target (the same grammar, whitespace
//! anywhere between tokens, escapes checked, a string with escapes unescaped by
//! serde_json itself); the codec's proptests hold the two readers to the same answers,
//! damaged text included. (One difference: serde's derive reads a struct from an array of
//! its fields too; `Columns::read` takes only the object pages are written as.) Every
//! error is the one answer a damaged page gets.

use std::borrow::Cow;

/// The text could not be read as the JSON asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Damaged;

type Read<T> = Result<T, Damaged>;

/// A position in JSON text.
pub struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Self {
        Reader { text, at: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte after whitespace, not consumed.
    pub fn peek(&mut self) -> Read<u8> {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes().get(self.at) {
            self.at += 1;
        }
        self.bytes().get(self.at).copied().ok_or(Damaged)
    }

    /// Consumes `byte` (after whitespace), or fails.
    pub fn eat(&mut self, byte: u8) -> Read<()> {
        if self.peek()? != byte {
            return Err(Damaged);
        }
        self.at += 1;
        Ok(())
    }

    /// Nothing but whitespace is left.
    pub fn end(&mut self) -> Read<()> {
        match self.peek() {
            Err(Damaged) => Ok(()),
            Ok(_) => Err(Damaged),
        }
    }

    /// A JSON array, each element read by `item`.
    pub fn array<T>(&mut self, item: impl FnMut(&mut Self) -> Read<T>) -> Read<Vec<T>> {
        self.array_of(0, item)
    }

    /// [`Reader::array`], with room for `expected` elements made at once.
    pub fn array_of<T>(&mut self, expected: usize, mut item: impl FnMut(&mut Self) -> Read<T>) -> Read<Vec<T>> {
        self.eat(b'[')?;
        let mut out = Vec::with_capacity(expected);
        if self.peek()? == b']' {
            self.at += 1;
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Ok(out);
                }
                _ => return Err(Damaged),
            }
        }
    }

    /// A JSON array of exactly two elements, as serde reads a pair.
    pub fn pair<A, B>(
        &mut self,
        a: impl FnOnce(&mut Self) -> Read<A>,
        b: impl FnOnce(&mut Self) -> Read<B>,
    ) -> Read<(A, B)> {
        self.eat(b'[')?;
        let first = a(self)?;
        self.eat(b',')?;
        let second = b(self)?;
        self.eat(b']')?;
        Ok((first, second))
    }

    /// `null`, or what `some` reads.
    pub fn nullable<T>(&mut self, some: impl FnOnce(&mut Self) -> Read<T>) -> Read<Option<T>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Ok(None);
        }
        some(self).map(Some)
    }

    /// A JSON object's members: `member` is called with each key and reads its value.
    pub fn object(&mut self, mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Read<()>) -> Read<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Damaged),
            }
        }
    }

    /// A JSON string's value: borrowed when it has no escape, else unescaped by serde_json
    /// (which refuses a lone surrogate, as it does for any `String`).
    pub fn string(&mut self) -> Read<Cow<'a, str>> {
        if self.peek()? != b'"' {
            return Err(Damaged);
        }
        let start = self.at;
        let b = self.bytes();
        let j = plain_run(b, start + 1);
        match *b.get(j).ok_or(Damaged)? {
            b'"' => {
                self.at = j + 1;
                return self.text.get(start + 1..j).map(Cow::Borrowed).ok_or(Damaged);
            }
            b'\\' => {}
            _ => return Err(Damaged),
        }
        self.skip_string()?;
        let json = self.text.get(start..self.at).ok_or(Damaged)?;
        serde_json::from_str::<String>(json).map(Cow::Owned).map_err(|_| Damaged)
    }

    /// An integer that fits an `i64`, written as JSON writes integers (no fraction or
    /// exponent, no leading zero): what serde_json reads into an `i64` (`-0` is not one:
    /// serde_json reads it as the float −0.0).
    pub fn int(&mut self) -> Read<i64> {
        let negative = self.peek()? == b'-';
        if negative {
            self.at += 1;
        }
        let b = self.bytes();
        let start = self.at;
        let mut v: i64 = 0;
        while let Some(&d @ b'0'..=b'9') = b.get(self.at) {
            let d = i64::from(d - b'0');
            v = v
                .checked_mul(10)
                .and_then(|v| if negative { v.checked_sub(d) } else { v.checked_add(d) })
                .ok_or(Damaged)?;
            self.at += 1;
        }
        let digits = self.at - start;
        let zero = b.get(start) == Some(&b'0');
        if digits == 0 || (zero && (digits > 1 || negative)) || matches!(b.get(self.at), Some(b'.' | b'e' | b'E')) {
            return Err(Damaged);
        }
        Ok(v)
    }

    /// Any JSON value, checked and passed over: its text.
    pub fn raw(&mut self) -> Read<&'a str> {
        self.peek()?;
        let start = self.at;
        self.skip_value()?;
        self.text.get(start..self.at).ok_or(Damaged)
    }

    fn literal(&mut self, word: &[u8]) -> Read<()> {
        if !self.bytes().get(self.at..).is_some_and(|rest| rest.starts_with(word)) {
            return Err(Damaged);
        }
        self.at += word.len();
        Ok(())
    }

    /// Past a string at `self.at`, its escapes checked (a `\u` escape's four hex digits,
    /// whatever code point they name, as serde_json passes over one).
    fn skip_string(&mut self) -> Read<()> {
        let b = self.bytes();
        let mut j = self.at + 1;
        loop {
            j = plain_run(b, j);
            match *b.get(j).ok_or(Damaged)? {
                b'"' => {
                    self.at = j + 1;
                    return Ok(());
                }
                b'\\' => match *b.get(j + 1).ok_or(Damaged)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => j += 2,
                    b'u' => {
                        let hex = b.get(j + 2..j + 6).ok_or(Damaged)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err(Damaged);
                        }
                        j += 6;
                    }
                    _ => return Err(Damaged),
                },
                _ => return Err(Damaged),
            }
        }
    }

    /// Past a number at `self.at`: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn skip_number(&mut self) -> Read<()> {
        let b = self.bytes();
        let digits = |at: &mut usize| {
            let from = *at;
            while b.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at - from
        };
        let mut j = self.at;
        if b.get(j) == Some(&b'-') {
            j += 1;
        }
        let first = j;
        match digits(&mut j) {
            0 => return Err(Damaged),
            n if n > 1 && b[first] == b'0' => return Err(Damaged),
            _ => {}
        }
        if b.get(j) == Some(&b'.') {
            j += 1;
            if digits(&mut j) == 0 {
                return Err(Damaged);
            }
        }
        if let Some(b'e' | b'E') = b.get(j) {
            j += 1;
            if let Some(b'+' | b'-') = b.get(j) {
                j += 1;
            }
            if digits(&mut j) == 0 {
                return Err(Damaged);
            }
        }
        self.at = j;
        Ok(())
    }

    /// Past one whole value after whitespace. A loop with a stack of the open containers,
    /// not recursion: no nesting of a damaged page can overflow the stack.
    fn skip_value(&mut self) -> Read<()> {
        let mut open: Vec<u8> = Vec::new();
        loop {
            // A value starts here.
            match self.peek()? {
                c @ (b'{' | b'[') => {
                    self.at += 1;
                    let close = if c == b'{' { b'}' } else { b']' };
                    if self.peek()? != close {
                        open.push(close);
                        if close == b'}' {
                            self.member_key()?;
                        }
                        continue;
                    }
                    self.at += 1;
                }
                b'"' => self.skip_string()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
                _ => return Err(Damaged),
            }
            // A value ended: close what it ends, or go on to the next element.
            loop {
                let Some(&close) = open.last() else { return Ok(()) };
                let c = self.peek()?;
                self.at += 1;
                if c == close {
                    open.pop();
                } else if c == b',' {
                    if close == b'}' {
                        self.member_key()?;
                    }
                    break;
                } else {
                    return Err(Damaged);
                }
            }
        }
    }

    /// A member's key and its colon, inside an object being passed over.
    fn member_key(&mut self) -> Read<()> {
        if self.peek()? != b'"' {
            return Err(Damaged);
        }
        self.skip_string()?;
        self.eat(b':')
    }
}

/// The first index from `j` of a byte that ends a string's plain run (`"`, `\\` or a
/// control character), or `b.len()`: eight bytes at a time (the usual SWAR tests for a
/// zero byte and for a byte below 0x20), since most of a page's text is string contents.
pub(crate) fn plain_run(b: &[u8], mut j: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    while let Some(chunk) = b.get(j..j + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        let quote = zero(x ^ (ONES * u64::from(b'"')));
        let backslash = zero(x ^ (ONES * u64::from(b'\\')));
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        if quote | backslash | control != 0 {
            break;
        }
        j += 8;
    }
    while let Some(&c) = b.get(j) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        j += 1;
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Read<&str> {
        let mut r = Reader::new(json);
        let v = r.raw()?;
        r.end()?;
        Ok(v)
    }

    #[test]
    fn values_are_checked_as_serde_json_checks_them() {
        for json in [
            r#"{"a":[1,-0.5e+3,{"b":"\u00e9\"\n"}],"c":null,"d":true,"e":false}"#,
            " [ 1 , [ ] , { } ] ",
            r#""\ud800""#,
            "0",
            "-0",
            "[[[[[]]]]]",
        ] {
            assert!(serde_json::from_str::<&serde_json::value::RawValue>(json).is_ok(), "{json}");
            assert_eq!(raw(json), Ok(json.trim()), "{json}");
        }
        for json in [
            "",
            "01",
            "1.",
            "-",
            "1e",
            ".5",
            "+1",
            "[1,]",
            "{\"a\"}",
            "{\"a\":1,}",
            "{1:2}",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"a\u{1}\"",
            "tru",
            "nul",
            "[1 2]",
            "[",
            "{\"a\":1",
            "\"abc",
            "1 2",
            "[]]",
        ] {
            assert!(serde_json::from_str::<&serde_json::value::RawValue>(json).is_err(), "serde: {json}");
            assert_eq!(raw(json), Err(Damaged), "{json}");
        }
    }

    #[test]
    fn integers_are_those_an_i64_reads() {
        let int = |json: &str| {
            let mut r = Reader::new(json);
            let v = r.int()?;
            r.end().map(|()| v)
        };
        for (json, v) in [("0", 0), ("42", 42), ("-9223372036854775808", i64::MIN), ("9223372036854775807", i64::MAX)] {
            assert_eq!(int(json), Ok(v), "{json}");
            assert_eq!(serde_json::from_str::<i64>(json).ok(), Some(v), "{json}");
        }
        for json in ["-0", "9223372036854775808", "-9223372036854775809", "1.0", "1e2", "01", "-", "", "\"1\"", "null"]
        {
            assert_eq!(int(json), Err(Damaged), "{json}");
            assert!(serde_json::from_str::<i64>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let string = |json: &'static str| Reader::new(json).string();
        assert!(matches!(string(r#""plain""#), Ok(Cow::Borrowed("plain"))));
        assert_eq!(string(r#""a\"b\u00e9""#), Ok(Cow::Owned("a\"bé".to_string())));
        assert_eq!(string(r#""\ud800""#), Err(Damaged), "a lone surrogate is no String");
        assert_eq!(string("\"a\u{1}\""), Err(Damaged));
        assert_eq!(string("\"abc"), Err(Damaged));
    }

    #[test]
    fn a_plain_run_ends_where_the_first_quote_backslash_or_control_byte_is() {
        let text: Vec<u8> =
            (0..400u32).map(|i| [b'a', 0xc3, 0xa9, b'"', b'\\', 0x1f, 0x20, 0x7f][(i * 7 % 61 % 8) as usize]).collect();
        for from in 0..text.len() {
            let naive = (from..text.len()).find(|&j| matches!(text[j], b'"' | b'\\' | 0..=0x1f)).unwrap_or(text.len());
            assert_eq!(plain_run(&text, from), naive, "from {from}");
        }
        let long = [b"x".repeat(37), b"\"".to_vec(), b"y".repeat(9)].concat();
        assert_eq!(plain_run(&long, 0), 37);
        assert_eq!(plain_run(&long, 38), long.len());
    }

    #[test]
    fn deep_nesting_is_no_stack_overflow() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert_eq!(raw(&deep).map(str::len), Ok(200_000));
        assert_eq!(raw(&"[".repeat(100_000)), Err(Damaged));
    }
}
