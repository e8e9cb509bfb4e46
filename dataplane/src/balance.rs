//! Server choice: weighted round-robin, one cursor per executor (no shared state). Uses
//! the smooth weighted algorithm, so a 3:1 weighting gives A A B A rather than A A A B.
//! The other algorithms and persistence come with the server-selection work (issue #4).

/// One executor's round-robin state for one backend.
#[derive(Debug, Clone)]
pub struct RoundRobin {
    current: Vec<i64>,
}

impl RoundRobin {
    /// A cursor for a backend with `n` servers.
    pub fn new(n: usize) -> Self {
        Self {
            current: vec![0; n],
        }
    }

    /// Picks the next server among those with a non-zero weight, skipping `exclude`
    /// (a server that just failed, when redispatching). `None` when nothing is eligible.
    pub fn pick(&mut self, weights: &[u32], exclude: Option<usize>) -> Option<usize> {
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, &w) in weights.iter().enumerate() {
            if w == 0 || Some(i) == exclude {
                continue;
            }
            self.current[i] += i64::from(w);
            total += i64::from(w);
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.current[b] -= total;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternates_and_weights() {
        let mut rr = RoundRobin::new(2);
        let seq: Vec<_> = (0..4).map(|_| rr.pick(&[1, 1], None).unwrap()).collect();
        assert_eq!(seq, [0, 1, 0, 1]);
        let mut rr = RoundRobin::new(2);
        let picks: Vec<_> = (0..400).map(|_| rr.pick(&[3, 1], None).unwrap()).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 300);
        let mut rr = RoundRobin::new(3);
        assert!((0..10).all(|_| rr.pick(&[1, 0, 1], Some(0)) == Some(2)));
        assert_eq!(RoundRobin::new(1).pick(&[0], None), None);
    }
}
