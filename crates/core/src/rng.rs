//! cardguard's one deterministic random generator, for simulation, training, benchmarks and
//! the demo (never for secrets: those come from the operating system): splitmix64, seeded
//! from a list of numbers so that every (seed, card, day) gets its own stream; uniform,
//! bounded, normal and Poisson draws.

pub struct Rng(u64);

impl Rng {
    /// A generator whose internal state is `state` (the stream a seed names directly).
    pub fn from_state(state: u64) -> Rng {
        Rng(state)
    }

    pub fn new(parts: &[u64]) -> Rng {
        let mut h = 0x243f_6a88_85a3_08d3u64;
        for p in parts {
            h = (h ^ p).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        Rng(h | 1)
    }
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    /// One of `xs` (which must not be empty).
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-12);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    pub fn poisson(&mut self, mean: f64) -> u32 {
        let l = (-mean).exp();
        let (mut k, mut p) = (0u32, 1.0);
        loop {
            p *= self.unit();
            if p <= l || k > 60 {
                return k;
            }
            k += 1;
        }
    }
}
