//! The waiting room's order: who is admitted before whom, and the estimate of when.
//!
//! The line is one sorted set, lowest score admitted first. A shopper who joins before START
//! gets [`draw_score`]: a number below [`TICKET_BASE`] drawn from SHA-1 of the sale's seed and
//! the user, so the pre-queue is in a random order that nobody (the shop included) can change
//! once the seed's commitment is published, and that anyone can recompute once the seed is
//! revealed. A shopper who joins after START gets [`TICKET_BASE`] + the next ticket: first
//! come, first served, behind the whole pre-queue. No step at START reorders anything: the
//! order was fixed as each shopper joined, and START only lets the admissions begin.
//!
//! SHA-1 because the Lua twin has it (`redis.sha1hex`) and must compute the same order; the
//! seed is 32 to 48 hex digits, so seed and user never span more than two blocks and the
//! commitment (`sha1(seed)`) is one block, where no collision attack applies.

/// The first post-START ticket's score: 2^52. Every draw score is below it, and
/// `TICKET_BASE + ticket` stays exact in a double (the Lua twin, and Redis's scores) for
/// 2^52 tickets.
pub const TICKET_BASE: i64 = 1 << 52;

/// Hex digits of the SHA-1 that make a draw score: 13 digits = 52 bits, below [`TICKET_BASE`].
pub const DRAW_DIGITS: usize = 13;

/// Between the seed and the user in the text a draw score hashes.
pub const DRAW_SEPARATOR: &str = ":";

/// The pre-queue score of `user`: the first [`DRAW_DIGITS`] hex digits of
/// `sha1(seed ":" user)`, as an integer. Two users with one score (one chance in 2^52 per
/// pair) are ordered by name, as Redis orders equal scores.
pub fn draw_score(seed: &str, user: &str) -> i64 {
    let mut hash = sha1_smol::Sha1::new();
    hash.update(seed.as_bytes());
    hash.update(DRAW_SEPARATOR.as_bytes());
    hash.update(user.as_bytes());
    let digest = hash.digest().bytes();
    // 13 hex digits: the first 6 bytes and the high half of the 7th.
    let mut score: i64 = 0;
    for byte in &digest[..6] {
        score = (score << 8) | i64::from(*byte);
    }
    (score << 4) | i64::from(digest[6] >> 4)
}

/// The seed's published commitment: `sha1(seed)` in lower-case hex.
pub fn commitment(seed: &str) -> String {
    sha1_smol::Sha1::from(seed.as_bytes()).digest().to_string()
}

/// When a shopper `ahead` places from the front (1 = next) should be admitted at `rate`
/// admissions per second, counting from `from_ms`; 0 when the rate says nothing (no rate:
/// only the cap, which moves as admitted shoppers finish).
pub fn eta_ms(from_ms: i64, ahead: i64, rate: i64) -> i64 {
    if rate <= 0 {
        return 0;
    }
    from_ms + ahead * 1000 / rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draw_score_is_the_first_52_bits_of_the_sha1() {
        // sha1("00000000000000000000000000000000:alice"), computed apart from this code.
        let seed = "0".repeat(32);
        let hex = sha1_smol::Sha1::from(format!("{seed}:alice"))
            .digest()
            .to_string();
        let expected = i64::from_str_radix(&hex[..DRAW_DIGITS], 16).expect("hex");
        assert_eq!(draw_score(&seed, "alice"), expected);
        assert!((0..TICKET_BASE).contains(&draw_score(&seed, "bob")));
        assert_ne!(
            draw_score(&seed, "alice"),
            draw_score(&"1".repeat(32), "alice")
        );
        assert_eq!(
            commitment("abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d",
            "the FIPS 180 example"
        );
        assert_eq!(eta_ms(1_000, 10, 5), 3_000);
        assert_eq!(eta_ms(1_000, 10, 0), 0);
    }
}
