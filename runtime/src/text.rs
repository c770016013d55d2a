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

    /// Appends a finite `v` in scientific notation with the fewest
    /// significant digits that read back as `v` (as Rust's `{:e}` prints an
    /// f32: `1e-4`, `1.0000005e-2`, `0e0`): a valid JSON number.
    /// Not-finite values print as `null`, JSON's "no number".
    #[inline(never)]
    fn sci(&mut self, v: f32) -> &mut Self {
        if !v.is_finite() {
            return self.str("null");
        }
        if v < 0.0 {
            self.str("-");
        }
        let x = f64::from(v.abs());
        if x == 0.0 {
            return self.str("0e0");
        }
        // x = m * 10^exp with m in [1, 10): estimate exp, then check it with
        // one scaling (one f64 rounding, exact for an f32 times a small power)
        let mut exp: i32 = 0;
        let mut m = x;
        while m >= 10.0 {
            m /= 10.0;
            exp += 1;
        }
        while m < 1.0 {
            m *= 10.0;
            exp -= 1;
        }
        if times_pow10(x, -exp) >= 10.0 {
            exp += 1;
        } else if times_pow10(x, -exp) < 1.0 {
            exp -= 1;
        }
        // 9 significant digits always read back as the same f32
        let (mut sig, mut sig_exp) = (0u64, exp);
        for digits in 1..=9 {
            let mut s = (times_pow10(x, digits - 1 - exp) + 0.5) as u64;
            let mut e = exp;
            if s as f64 >= POW10[digits as usize] {
                s /= 10;
                e += 1;
            }
            (sig, sig_exp) = (s, e);
            if times_pow10(s as f64, e - (digits - 1)) as f32 == v.abs() {
                break;
            }
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
        if sig_exp < 0 {
            self.str("-");
        }
        self.num(u64::from(sig_exp.unsigned_abs()))
    }
}

/// 10^0 ..= 10^22: the powers of ten an f64 holds exactly (a table is less
/// code than the loops computing them).
const POW10: [f64; 23] = {
    let mut t = [1.0; 23];
    let mut i = 1;
    while i < 23 {
        t[i] = t[i - 1] * 10.0;
        i += 1;
    }
    t
};

/// `x * 10^k`, rounded once when 10^|k| is exact (|k| <= 22), which
/// covers every f32 printed to 9 digits but the tiniest.
#[inline(never)]
fn times_pow10(mut x: f64, k: i32) -> f64 {
    let mut left = k.unsigned_abs() as usize;
    while left > 0 {
        let step = left.min(22);
        x = if k >= 0 {
            x * POW10[step]
        } else {
            x / POW10[step]
        };
        left -= step;
    }
    x
}

/// Writes `v`'s decimal digits at the end of `out`; returns where they start.
#[inline(never)]
fn decimal(mut v: u64, out: &mut [u8; 20]) -> usize {
    let mut i = out.len();
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        i -= 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    i
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
    extern crate std;

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
    fn scientific_numbers_print_as_rust_prints_f32() {
        assert!(is(text(|b| b.sci(1e-4)), "1e-4"));
        assert!(is(text(|b| b.sci(1.5e-5)), "1.5e-5"));
        assert!(is(text(|b| b.sci(0.0)), "0e0"));
        assert!(is(text(|b| b.sci(123_456_790.0)), "1.2345679e8"));
        assert!(is(text(|b| b.sci(-2.5)), "-2.5e0"));
        assert!(is(text(|b| b.sci(f32::MIN_POSITIVE)), "1.1754944e-38"));
        assert!(is(text(|b| b.sci(f32::from_bits(1))), "1e-45"));
        assert!(is(text(|b| b.sci(f32::MAX)), "3.4028235e38"));
        assert!(is(text(|b| b.sci(f32::NAN)), "null"));
        assert!(is(text(|b| b.sci(f32::INFINITY)), "null"));
    }

    /// What `sci` printed for `v`, and its length.
    fn printed(v: f32) -> ([u8; 64], usize) {
        let b = text(|b| b.sci(v));
        let end = b.iter().position(|c| *c == b' ').unwrap_or(64);
        (b, end)
    }

    #[test]
    fn scientific_numbers_read_back_as_the_same_f32() {
        // an error one ulp above the tolerance must not print as the tolerance
        let mut x = 1e-4f32;
        let mut state = 0x9e37_79b9u32;
        for i in 0..if cfg!(miri) { 300 } else { 20_000 } {
            let (b, end) = printed(x);
            let s = core::str::from_utf8(&b[..end]).unwrap();
            assert_eq!(s.parse::<f32>().unwrap(), x, "{x:e} printed as {s}");
            assert_eq!(s, std::format!("{x:e}"), "shortest digits");
            x = if i < 200 {
                f32::from_bits(x.to_bits() + 1)
            } else {
                // xorshift over all finite positive f32
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                f32::from_bits(state % 0x7f80_0000)
            };
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
