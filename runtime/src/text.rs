//! Text output without `core::fmt`: the device program prints a few integers,
//! fixed-point microseconds and one error figure, and `core::fmt` (its
//! `Formatter`, padding and float printing) would be most of its code. The
//! number formats are kept out of line (`inline(never)`): a program calls them
//! from many places, and inlining each call would cost more code than time.

/// A sink of text bytes with the few number formats the program needs.
/// Implementors only provide [`TextOut::bytes`].
pub trait TextOut {
    /// Appends raw bytes.
    fn bytes(&mut self, b: &[u8]) -> &mut Self;

    /// Appends a string.
    fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// Appends `v` in decimal.
    #[inline(never)]
    fn num(&mut self, v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let start = decimal(v, &mut digits);
        self.bytes(&digits[start..])
    }

    /// Appends `thousandths / 1000` with exactly three decimals (`12.345`),
    /// e.g. nanoseconds printed as microseconds.
    #[inline(never)]
    fn fixed3(&mut self, thousandths: u64) -> &mut Self {
        let frac = thousandths % 1000;
        self.num(thousandths / 1000).bytes(&[
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ])
    }

    /// Appends a finite `v` in scientific notation with up to nine significant
    /// digits (enough to tell any two f32 apart) and no trailing zeros
    /// (`1.5e-5`, `0e0`): a valid JSON number.
    /// Not-finite values print as `null`, JSON's "no number".
    #[inline(never)]
    fn sci(&mut self, v: f64) -> &mut Self {
        if !v.is_finite() {
            return self.str("null");
        }
        if v < 0.0 {
            self.str("-");
        }
        let mut m = v.abs();
        if m == 0.0 {
            return self.str("0e0");
        }
        // Scale into [1, 10); each step's f64 rounding (1e-16 relative) is far
        // below the ninth digit, the last one printed.
        let mut exp: i32 = 0;
        while m >= 10.0 {
            m /= 10.0;
            exp += 1;
        }
        while m < 1.0 {
            m *= 10.0;
            exp -= 1;
        }
        let mut sig = (m * 1e8 + 0.5) as u64;
        if sig >= 1_000_000_000 {
            sig /= 10;
            exp += 1;
        }
        while sig >= 10 && sig.is_multiple_of(10) {
            sig /= 10;
        }
        let mut digits = [0u8; 20];
        let start = decimal(sig, &mut digits);
        self.bytes(&digits[start..start + 1]);
        if digits.len() - start > 1 {
            self.str(".").bytes(&digits[start + 1..]);
        }
        self.str("e");
        if exp < 0 {
            self.str("-");
        }
        self.num(u64::from(exp.unsigned_abs()))
    }
}

/// Writes `v`'s decimal digits at the end of `out`; returns where they start.
fn decimal(mut v: u64, out: &mut [u8; 20]) -> usize {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return i;
        }
    }
}

/// Parses a decimal `usize` (digits, optionally after one `+`, as
/// `str::parse::<usize>` accepts); `None` if empty, not a number or too large.
pub fn parse_usize(s: &[u8]) -> Option<usize> {
    let digits = s.strip_prefix(b"+").unwrap_or(s);
    if digits.is_empty() {
        return None;
    }
    let mut v: usize = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed buffer sink for the tests.
    struct Buf {
        bytes: [u8; 64],
        len: usize,
    }

    impl TextOut for Buf {
        fn bytes(&mut self, b: &[u8]) -> &mut Self {
            self.bytes[self.len..self.len + b.len()].copy_from_slice(b);
            self.len += b.len();
            self
        }
    }

    fn text(f: impl Fn(&mut Buf) -> &mut Buf) -> [u8; 64] {
        let mut b = Buf {
            bytes: [b' '; 64],
            len: 0,
        };
        let _ = f(&mut b);
        b.bytes
    }

    fn is(actual: [u8; 64], expected: &str) -> bool {
        actual[..expected.len()] == *expected.as_bytes()
            && actual[expected.len()..].iter().all(|c| *c == b' ')
    }

    #[test]
    fn integers_print_in_decimal() {
        assert!(is(text(|b| b.num(0)), "0"));
        assert!(is(text(|b| b.num(7).str(",").num(1234)), "7,1234"));
        assert!(is(text(|b| b.num(u64::MAX)), "18446744073709551615"));
    }

    #[test]
    fn nanoseconds_print_as_microseconds_with_three_decimals() {
        assert!(is(text(|b| b.fixed3(12_345)), "12.345"));
        assert!(is(text(|b| b.fixed3(7)), "0.007"));
        assert!(is(text(|b| b.fixed3(1_000_050)), "1000.050"));
    }

    #[test]
    fn scientific_numbers_keep_nine_significant_digits() {
        assert!(is(text(|b| b.sci(1e-4)), "1e-4"));
        assert!(is(text(|b| b.sci(1.5e-5)), "1.5e-5"));
        assert!(is(text(|b| b.sci(0.0)), "0e0"));
        assert!(is(text(|b| b.sci(123_456_789.0)), "1.23456789e8"));
        assert!(is(text(|b| b.sci(9_876_543_210.0)), "9.87654321e9"));
        assert!(is(text(|b| b.sci(9.999_999_999)), "1e1"));
        assert!(is(text(|b| b.sci(-2.5)), "-2.5e0"));
        assert!(is(
            text(|b| b.sci(f64::from(f32::MIN_POSITIVE))),
            "1.17549435e-38"
        ));
        assert!(is(text(|b| b.sci(f64::NAN)), "null"));
        assert!(is(text(|b| b.sci(f64::INFINITY)), "null"));
    }

    #[test]
    fn scientific_numbers_read_back_close_to_the_value() {
        for v in [
            3.0517578e-5f64,
            0.1,
            0.999_999_999_6,
            42.0,
            6.02e23,
            1e-45,
            1.4e-45,
        ] {
            let b = text(|b| b.sci(v));
            let end = b.iter().position(|c| *c == b' ').unwrap_or(64);
            let s = core::str::from_utf8(&b[..end]).unwrap();
            let back: f64 = s.parse().unwrap();
            assert!((back - v).abs() <= v * 1e-8, "{v} printed as {s}");
        }
    }

    #[test]
    fn every_f32_error_prints_distinct_from_its_neighbours() {
        // an error one ulp above the tolerance must not print as the tolerance
        let mut x = 1e-4f32;
        for _ in 0..200 {
            let b = text(|b| b.sci(f64::from(x)));
            let end = b.iter().position(|c| *c == b' ').unwrap_or(64);
            let s = core::str::from_utf8(&b[..end]).unwrap();
            assert_eq!(s.parse::<f32>().unwrap(), x, "{x:e} printed as {s}");
            x = f32::from_bits(x.to_bits() + 1);
        }
    }

    #[test]
    fn numbers_parse_like_usize_from_str() {
        assert_eq!(parse_usize(b"100"), Some(100));
        assert_eq!(parse_usize(b"+5"), Some(5));
        assert_eq!(parse_usize(b"0"), Some(0));
        assert_eq!(parse_usize(b""), None);
        assert_eq!(parse_usize(b"+"), None);
        assert_eq!(parse_usize(b"-1"), None);
        assert_eq!(parse_usize(b"1x"), None);
        assert_eq!(parse_usize(b"99999999999999999999999"), None);
    }
}
