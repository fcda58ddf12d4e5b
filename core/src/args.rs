//! Reading a command's arguments, and the limits on each.
//!
//! Integers are strict: an optional `-` then 1 to 16 digits, nothing else (no `+`, spaces,
//! exponents or hex), so `"1e3"` and `" 7"` are errors in the module and the Lua twin alike.
//! Every bound keeps numbers within 2^53, where the Lua twin's doubles are exact.

use crate::error::{Error, ErrorCode, Result};

/// Largest quantity a single reserve, release or buy may move.
pub const MAX_QTY: i64 = 1_000_000;
/// Largest stock one SKU may be loaded with at once, and the most units one user (so one
/// cart) may hold in a sale: a reserve past it is refused (LIMIT).
pub const MAX_UNITS: i64 = 1_000_000_000;
/// Most units one SKU may be loaded with over a whole sale (its `loaded` counter counts every
/// unit ever put on sale, so it bounds every other stock counter): a FLASH.LOAD past it is
/// refused, so no sequence of commands carries a counter out of the range where the Lua
/// twin's doubles are exact.
pub const MAX_LOADED_UNITS: i64 = 1_000_000_000_000;
/// Largest SKU id (2^53 - 1).
pub const MAX_SKU: i64 = 9_007_199_254_740_991;
/// Longest hold a sale may give its carts: one day.
pub const MAX_HOLD_MS: i64 = 86_400_000;
/// The global cart timer when FLASH.SALE does not say.
pub const DEFAULT_HOLD_MS: i64 = 40_000;
/// How long a finished cart (settled, rejected, expired) is kept when FLASH.SALE does not
/// say: a day, long enough for any retried checkout or settle to get its idempotent reply.
pub const DEFAULT_RETAIN_MS: i64 = 86_400_000;
/// Longest retention a sale may ask for: thirty days (0, keep forever, is also allowed).
pub const MAX_RETAIN_MS: i64 = 2_592_000_000;
/// A sale window edge, in unix milliseconds (0 means unbounded).
pub const MAX_TIME_MS: i64 = MAX_SKU;
/// Most carts one FLASH.EXPIRE call releases, and its default.
pub const MAX_EXPIRE_COUNT: i64 = 10_000;
pub const DEFAULT_EXPIRE_COUNT: i64 = 1_000;
/// How long one FLASH.EXPIRE call may release holds before it stops and replies, in µs: the
/// command runs on Redis's one thread, so a backlog is worked off in short calls (the caller
/// loops while carts are released) instead of one that stalls every client.
pub const EXPIRE_BUDGET_US: i64 = 1_000;
/// Longest sale name, cart id, order id or user id.
pub const MAX_TOKEN_LEN: usize = 64;
/// Deadline lists a sale may have at once: one per hold (ms) that carts still held were
/// made with. FLASH.SALE refuses a new HOLD while this many older ones still have entries.
pub const MAX_LANES: usize = 8;

/// Most admissions per second a waiting room may let in (`FLASH.SALE … RATE`).
pub const MAX_QUEUE_RATE: i64 = 1_000_000;
/// How long an admission lasts unused when FLASH.SALE does not say (`ADMIT`): a minute to
/// make the first reserve.
pub const DEFAULT_ADMIT_MS: i64 = 60_000;
/// How long a waiting shopper may go without asking for their place before losing it, when
/// FLASH.SALE does not say (`IDLE`). The edge asks every few seconds while the page is open.
pub const DEFAULT_IDLE_MS: i64 = 30_000;
/// A waiting room's seed (`SEED`): 32 to 48 hex digits, so the seed and its separator fit
/// in one SHA-1 block, where no collision attack can find two seeds with one commitment.
pub const MIN_SEED_LEN: usize = 32;
pub const MAX_SEED_LEN: usize = 48;
/// A waiting room's rate bucket holds at most this long's admissions: after a quiet spell
/// (nobody waiting, or the cap full) the line moves at most one second's worth at once.
pub const QUEUE_CREDIT_WINDOW_MS: i64 = 1_000;
/// Most queue entries one FLASH.ADMIT call handles per kind of work, and its default.
pub const MAX_ADMIT_COUNT: i64 = 10_000;
pub const DEFAULT_ADMIT_COUNT: i64 = 1_000;

/// Names (sale, cart, order, user) are 1 to 64 of these bytes: safe inside key names, stream
/// fields, JSON and error messages without escaping.
pub fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b':' | b'@')
}

/// A cursor over one command's arguments (the command name excluded).
pub struct Args<'a> {
    command: &'static str,
    args: &'a [&'a [u8]],
    next: usize,
}

impl<'a> Args<'a> {
    pub fn new(command: &'static str, args: &'a [&'a [u8]]) -> Args<'a> {
        Args {
            command,
            args,
            next: 0,
        }
    }

    pub fn remaining(&self) -> usize {
        self.args.len() - self.next
    }

    fn next_raw(&mut self) -> Result<&'a [u8]> {
        let arg = self
            .args
            .get(self.next)
            .ok_or_else(|| Error::arity(self.command))?;
        self.next += 1;
        Ok(arg)
    }

    /// The next argument as it came (for a value with its own format, such as SEED).
    pub fn raw(&mut self) -> Result<&'a [u8]> {
        self.next_raw()
    }

    /// A name: sale, cart, order or user.
    pub fn token(&mut self, what: &str) -> Result<String> {
        parse_token(what, self.next_raw()?)
    }

    /// An integer within `min..=max`.
    pub fn int(&mut self, what: &str, min: i64, max: i64) -> Result<i64> {
        parse_int(what, self.next_raw()?, min, max)
    }

    /// An optional trailing integer (e.g. `[qty]`), with its default.
    pub fn optional_int(&mut self, what: &str, min: i64, max: i64, default: i64) -> Result<i64> {
        if self.remaining() == 0 {
            Ok(default)
        } else {
            self.int(what, min, max)
        }
    }

    pub fn sku(&mut self) -> Result<i64> {
        self.int("sku", 1, MAX_SKU)
    }

    pub fn qty(&mut self) -> Result<i64> {
        self.optional_int("qty", 1, MAX_QTY, 1)
    }

    /// Consumes the next argument if it is `word` (case-insensitive).
    pub fn accept(&mut self, word: &str) -> bool {
        let matches = self
            .args
            .get(self.next)
            .is_some_and(|arg| arg.eq_ignore_ascii_case(word.as_bytes()));
        if matches {
            self.next += 1;
        }
        matches
    }

    /// An option keyword, upper-cased.
    pub fn keyword(&mut self) -> Result<String> {
        Ok(String::from_utf8_lossy(self.next_raw()?).to_ascii_uppercase())
    }

    /// Every argument must have been read: leftovers are a syntax error, not ignored.
    pub fn finish(&self) -> Result<()> {
        match self.args.get(self.next) {
            None => Ok(()),
            Some(extra) => Err(Error::new(
                ErrorCode::Err,
                format!(
                    "syntax error near '{}'",
                    String::from_utf8_lossy(extra)
                        .chars()
                        .take(32)
                        .collect::<String>()
                ),
            )),
        }
    }
}

pub fn parse_token(what: &str, raw: &[u8]) -> Result<String> {
    if raw.is_empty() || raw.len() > MAX_TOKEN_LEN || !raw.iter().copied().all(is_token_byte) {
        return Err(Error::new(
            ErrorCode::Err,
            format!("{what} must be 1 to 64 characters from A-Z a-z 0-9 - _ . : @"),
        ));
    }
    // Every byte is ASCII, checked above, so this never fails (nor allocates twice).
    String::from_utf8(raw.to_vec()).map_err(|_| Error::new(ErrorCode::Err, "not ASCII"))
}

/// An integer Flash stored (strict decimal, as [`parse_int`] reads), or `None`.
pub fn stored_int(raw: &[u8]) -> Option<i64> {
    parse_int("", raw, i64::MIN, i64::MAX).ok()
}

pub fn parse_int(what: &str, raw: &[u8], min: i64, max: i64) -> Result<i64> {
    let out_of_range = || {
        Error::new(
            ErrorCode::Err,
            format!("{what} must be an integer from {min} to {max}"),
        )
    };
    let digits = raw.strip_prefix(b"-").unwrap_or(raw);
    if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(out_of_range());
    }
    let magnitude = digits
        .iter()
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    let value = if raw.len() > digits.len() {
        -magnitude
    } else {
        magnitude
    };
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(out_of_range())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict() {
        assert_eq!(parse_int("qty", b"12", 1, 100), Ok(12));
        assert_eq!(parse_int("n", b"-5", -10, 10), Ok(-5));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"1e3",
            b"0x10",
            b"1.0",
            b"12345678901234567",
        ] {
            assert_eq!(
                parse_int("qty", bad, 1, 100).map_err(|e| e.code),
                Err(ErrorCode::Err),
                "{bad:?}"
            );
        }
        assert!(parse_int("qty", b"0", 1, 100).is_err());
        assert!(parse_int("qty", b"101", 1, 100).is_err());
    }

    #[test]
    fn tokens_allow_uuids_and_refuse_braces() {
        assert!(parse_token("cart", b"3f2a9c1e-7b4d-4e0f-9a55-0c1d2e3f4a5b").is_ok());
        assert!(parse_token("user", b"alice@example.com").is_ok());
        for bad in [&b""[..], b"a{b}", b"a b", b"caf\xc3\xa9", &[b'a'; 65]] {
            assert!(parse_token("cart", bad).is_err());
        }
    }

    #[test]
    fn leftover_arguments_are_refused() {
        let raw: Vec<&[u8]> = vec![b"a", b"b"];
        let mut args = Args::new("FLASH.X", &raw);
        assert!(args.token("sale").is_ok());
        assert_eq!(args.finish().map_err(|e| e.code), Err(ErrorCode::Err));
    }
}
