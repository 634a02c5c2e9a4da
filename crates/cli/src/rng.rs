//! A small deterministic random generator (xorshift64*) for the demo and the benchmark
//! traffic: the same seed gives the same traffic.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// A card number with the given prefix and length and a valid Luhn digit.
pub fn luhn_pan(rng: &mut Rng, prefix: &str, len: usize) -> String {
    let mut body: String = prefix.to_owned();
    while body.len() < len - 1 {
        body.push(char::from(b'0' + rng.below(10) as u8));
    }
    let d = cardguard_cardsec::luhn::check_digit(&body).unwrap_or(0);
    body.push(char::from(b'0' + d));
    body
}
