//! `hash-type consistent`: HAProxy's hash ring, point for point. Each usable server
//! owns one point per sixteenth of its effective weight (`weight × 16` when warm),
//! placed by its numeric id, so a key lands on the same server in percore and in
//! HAProxy, and only the keys of a server that comes or goes move. With `hash-balance-factor`, a server already carrying more
//! than its share of the backend's load passes the key on to the next point
//! ("consistent hashing with bounded loads").

use crate::balance::full_hash;

/// The id stride between two servers' point numbers (256 weights × 16).
const ID_STRIDE: u32 = 256 * crate::health::WARM;

/// A ring for the usable servers of one backend, as of one state epoch.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    /// (position, server index), sorted by position.
    points: Vec<(u32, usize)>,
    /// Per server index: its effective weight and the sum of the effective weights of
    /// the ring's servers declared before it (for the bounded-load share).
    shares: Vec<(u32, u32)>,
    /// Sum of the effective weights on the ring.
    total: u32,
}

impl Ring {
    /// The ring of servers `(numeric id, effective weight in sixteenths)`, in
    /// declaration order: a server has one point per sixteenth (16 per unit of
    /// configured weight when warm); weight 0 keeps it off the ring.
    pub fn new(servers: &[(u32, u32)]) -> Self {
        let mut points = Vec::new();
        let mut shares = Vec::with_capacity(servers.len());
        let mut total = 0u32;
        for (index, &(id, eweight)) in servers.iter().enumerate() {
            shares.push((eweight, total));
            total += eweight;
            points.extend((0..eweight).map(|n| {
                let position = full_hash(id.wrapping_mul(ID_STRIDE).wrapping_add(n));
                (position, index)
            }));
        }
        points.sort_unstable();
        Self {
            points,
            shares,
            total,
        }
    }

    /// The server for `hash`: the owner of the closest point (the one before on a tie),
    /// then, while that server is `avoid` or, with a balance factor, over its share of
    /// `served` requests in flight on the backend, the owners of the following points.
    /// `load` gives a server's requests in flight. `None` when the ring is empty.
    pub fn get(
        &self,
        hash: u32,
        avoid: Option<usize>,
        balance_factor: u32,
        load: impl Fn(usize) -> u32,
    ) -> Option<usize> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let after = self.points.partition_point(|&(p, _)| p < hash) % len;
        let before = (after + len - 1) % len;
        let mut at = if hash.wrapping_sub(self.points[before].0)
            <= self.points[after].0.wrapping_sub(hash)
        {
            before
        } else {
            after
        };
        let served: u32 = if balance_factor > 0 {
            (0..self.shares.len()).map(&load).sum()
        } else {
            0
        };
        let over =
            |s: usize| balance_factor > 0 && !self.within_share(s, served, balance_factor, &load);
        let mut wrapped = false;
        while Some(self.points[at].1) == avoid || over(self.points[at].1) {
            at += 1;
            if at == len {
                at = 0;
                if wrapped {
                    break;
                }
                wrapped = true;
            }
        }
        Some(self.points[at].1)
    }

    /// Whether server `s` may take one more request: the backend's requests in flight
    /// (with this one) times the factor, shared out by effective weight (the remainder
    /// by cumulative weight, so the shares add up), and at least one.
    fn within_share(
        &self,
        s: usize,
        served: u32,
        factor: u32,
        load: impl Fn(usize) -> u32,
    ) -> bool {
        let (weight, before) = self.shares[s];
        let total = u64::from(self.total.max(1));
        let slots_total = (u64::from(served) + 1) * u64::from(factor);
        let slots_total = slots_total.div_ceil(100);
        let (per_weight, remainder) = (slots_total / total, slots_total % total);
        let weight64 = u64::from(weight);
        let before64 = u64::from(before);
        let slots = weight64 * per_weight + (before64 + weight64) * remainder / total
            - before64 * remainder / total;
        u64::from(load(s)) < slots.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_follow_weights_and_ids() {
        let ring = Ring::new(&[(1, 16), (2, 48), (3, 0)]);
        assert_eq!(ring.points.len(), 64);
        assert_eq!(ring.points.iter().filter(|p| p.1 == 1).count(), 48);
        assert!(ring.points.windows(2).all(|w| w[0].0 < w[1].0));
        let lands = |r: &Ring, h| r.get(h, None, 0, |_| 0).unwrap();
        // Removing a server moves only the keys it had.
        let without = Ring::new(&[(1, 16), (2, 0), (3, 0)]);
        for h in (0..u32::MAX).step_by(7_654_321) {
            if lands(&ring, h) == 0 {
                assert_eq!(lands(&without, h), 0);
            }
        }
        assert_eq!(Ring::new(&[(1, 0)]).get(5, None, 0, |_| 0), None);
    }

    #[test]
    fn avoid_and_bounded_load() {
        let ring = Ring::new(&[(1, 16), (2, 16)]);
        for h in (0..u32::MAX).step_by(98_765_431) {
            let first = ring.get(h, None, 0, |_| 0).unwrap();
            assert_ne!(ring.get(h, Some(first), 0, |_| 0), Some(first));
            // With 10 requests on `first` and none on the other, a factor of 125
            // sends the key elsewhere.
            let load = |s: usize| if s == first { 10 } else { 0 };
            assert_ne!(ring.get(h, None, 125, load), Some(first));
            assert_eq!(ring.get(h, None, 0, load), Some(first));
        }
        // Everyone over their share: the loop stops and still answers.
        assert!(ring.get(7, None, 125, |_| 100).is_some());
    }
}
