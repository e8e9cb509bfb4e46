//! Server choice, with per-executor state only: weighted round-robin (smooth: a 3:1
//! weighting gives A A B A rather than A A A B), and HAProxy's server map for
//! `static-rr` and map-based hashing (`balance uri`), laid out exactly as HAProxy lays
//! it out so that the same key picks the same server in both. The other algorithms and
//! persistence come with the server-selection work (issue #4).

use percore_config::{HashFunction, HashType, UriHash};

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

/// HAProxy's server map: each usable server appears as many times as its weight
/// divided by the weights' greatest common divisor, interleaved the way HAProxy's
/// `recalc_server_map` interleaves them. A hash picks `slots[hash % len]`; `static-rr`
/// walks the slots in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMap {
    slots: Vec<usize>,
}

impl ServerMap {
    /// The map for servers with these weights (0: not used).
    pub fn new(weights: &[u32]) -> Self {
        let gcd = weights
            .iter()
            .copied()
            .filter(|&w| w > 0)
            .reduce(|a, b| {
                let (mut a, mut b) = (a, b);
                while b != 0 {
                    (a, b) = (b, a % b);
                }
                a
            })
            .unwrap_or(1);
        let eweights: Vec<i64> = weights
            .iter()
            .map(|&w| i64::from(w.div_ceil(gcd)))
            .collect();
        let tot: i64 = eweights.iter().sum();
        let mut scores = vec![0i64; weights.len()];
        let mut slots = Vec::with_capacity(tot as usize);
        for _ in 0..tot {
            let mut best: Option<usize> = None;
            let mut max = 0;
            for (i, &w) in eweights.iter().enumerate() {
                if w == 0 {
                    continue;
                }
                if tot == 1 {
                    best = Some(i);
                    break;
                }
                scores[i] += w;
                let v = (scores[i] + tot) / tot;
                if best.is_none() || v > max {
                    max = v;
                    best = Some(i);
                }
            }
            if let Some(b) = best {
                scores[b] -= tot;
                slots.push(b);
            }
        }
        Self { slots }
    }

    /// The server a hash maps to.
    pub fn get(&self, hash: u32) -> Option<usize> {
        (!self.slots.is_empty()).then(|| self.slots[hash as usize % self.slots.len()])
    }

    /// The server at position `*cursor` for `static-rr`, advancing the cursor.
    pub fn next(&self, cursor: &mut usize) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        if *cursor >= self.slots.len() {
            *cursor = 0;
        }
        let s = self.slots[*cursor];
        *cursor += 1;
        Some(s)
    }
}

/// `leastconn`: the usable server with the fewest requests in flight for its weight;
/// the scan starts at `start`, so that ties rotate.
pub fn least_conn(weights: &[u32], load: impl Fn(usize) -> u32, start: usize) -> Option<usize> {
    let n = weights.len();
    (0..n)
        .map(|k| (start + k) % n)
        .filter(|&i| weights[i] > 0)
        .min_by_key(|&i| (u64::from(load(i)) + 1) * 65536 / u64::from(weights[i]))
}

/// `first`: the first usable server, in declaration order, below its `maxconn`; the
/// least loaded one when all are full.
pub fn first(
    weights: &[u32],
    maxconn: impl Fn(usize) -> Option<u32>,
    load: impl Fn(usize) -> u32,
) -> Option<usize> {
    (0..weights.len())
        .filter(|&i| weights[i] > 0)
        .find(|&i| maxconn(i).is_none_or(|m| load(i) < m))
        .or_else(|| least_conn(weights, load, 0))
}

/// `random(N)`: `draws` servers drawn with probability proportional to their weight
/// (through the server map); the least loaded wins.
pub fn random(
    map: &ServerMap,
    draws: u32,
    rng: &mut u64,
    load: impl Fn(usize) -> u32,
) -> Option<usize> {
    (0..draws.max(1))
        .filter_map(|_| map.get((xorshift(rng) >> 32) as u32))
        .min_by_key(|&i| load(i))
}

/// One step of a xorshift64 generator: advances `state` and returns it.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The part of a request target `balance uri` hashes, with its options applied.
pub fn uri_key<'t>(target: &'t [u8], o: &UriHash) -> &'t [u8] {
    let mut t = target;
    if o.path_only {
        if let Some(scheme_end) = t.windows(3).position(|w| w == b"://") {
            let after = &t[scheme_end + 3..];
            t = after
                .iter()
                .position(|&c| c == b'/')
                .map_or(&after[after.len()..], |p| &after[p..]);
        }
    }
    if let Some(len) = o.len {
        t = &t[..t.len().min(len as usize)];
    }
    let mut slashes = 0u32;
    let end = t
        .iter()
        .position(|&c| {
            if c == b'/' {
                slashes += 1;
                o.depth.is_some_and(|d| slashes == d + 1)
            } else {
                c == b'?' && !o.whole
            }
        })
        .unwrap_or(t.len());
    &t[..end]
}

/// `balance source`: the address's 32-bit big-endian words XORed together, as HAProxy
/// hashes it (then `avalanche` if asked).
pub fn source_hash(ip: std::net::IpAddr, h: HashType) -> u32 {
    let raw = match ip {
        std::net::IpAddr::V4(v4) => u32::from(v4),
        std::net::IpAddr::V6(v6) => v6.octets().chunks(4).fold(0, |acc, w| {
            acc ^ u32::from_be_bytes([w[0], w[1], w[2], w[3]])
        }),
    };
    with_modifier(raw, h)
}

/// `balance url_param NAME`: the value of the first `NAME=` parameter of the query.
pub fn url_param<'t>(target: &'t [u8], name: &str) -> Option<&'t [u8]> {
    let query = &target[target.iter().position(|&c| c == b'?')? + 1..];
    crate::http::message::query_param(query, Some(name), b"&")
}

/// `balance hdr(NAME)`: the first value of the first `NAME` header of a head, empty
/// values counting as absent.
pub fn header_value<'h>(head: &'h [u8], name: &str) -> Option<&'h [u8]> {
    use crate::http::message::{header_lines, trim};
    header_lines(head)
        .filter(|h| head[h.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
        .find_map(|h| {
            let v = trim(head[h.value].split(|&c| c == b',').next()?);
            (!v.is_empty()).then_some(v)
        })
}

/// Hashes `key` with `hash-type`'s function and modifier, as HAProxy does.
pub fn hash(key: &[u8], h: HashType) -> u32 {
    let raw = match h.function {
        HashFunction::Sdbm => sdbm(key),
        HashFunction::Djb2 => djb2(key),
        HashFunction::Wt6 => wt6(key),
        HashFunction::Crc32 => crc32fast::hash(key),
        HashFunction::None => leading_number(key),
    };
    with_modifier(raw, h)
}

/// Willy Tarreau's WT6 string hash: two words rotated by amounts that depend on the
/// input.
pub fn wt6(key: &[u8]) -> u32 {
    let (mut h0, mut h1) = (0xa53c_965a_u32, 0x5ca6_953a_u32);
    let (mut step0, mut step1) = (6u32, 18u32);
    for &c in key {
        let t = u32::from(c);
        h0 = !(h0 ^ t);
        h1 = !(h1.wrapping_add(t));
        let rotated = h1.rotate_left(step0);
        h1 = h0.rotate_left(step1);
        h0 = rotated;
        let t = ((h0 >> 16) ^ h1) & 0xffff;
        step0 = t & 0x1f;
        step1 = t >> 11;
    }
    h0 ^ h1
}

/// `hash-type ... none`: the key read as a signed decimal number (its leading digits,
/// saturating at the 64-bit limits) and truncated to 32 bits, as HAProxy 2.9 does.
fn leading_number(key: &[u8]) -> u32 {
    let (negative, digits) = match key.first() {
        Some(b'-') => (true, &key[1..]),
        Some(b'+') => (false, &key[1..]),
        _ => (false, key),
    };
    let magnitude = digits
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .try_fold(0u64, |n, &c| {
            n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        })
        .unwrap_or(u64::MAX);
    let value = if negative {
        0i64.checked_sub_unsigned(magnitude).unwrap_or(i64::MIN)
    } else {
        i64::try_from(magnitude).unwrap_or(i64::MAX)
    };
    value as u32
}

/// The SDBM string hash.
pub fn sdbm(key: &[u8]) -> u32 {
    key.iter().fold(0u32, |hash, &c| {
        u32::from(c)
            .wrapping_add(hash << 6)
            .wrapping_add(hash << 16)
            .wrapping_sub(hash)
    })
}

/// Bernstein's DJB2 string hash.
pub fn djb2(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |hash, &c| {
        (hash << 5).wrapping_add(hash).wrapping_add(u32::from(c))
    })
}

/// Applies `hash-type`'s `avalanche` modifier when it is set.
fn with_modifier(raw: u32, h: HashType) -> u32 {
    if h.avalanche {
        full_hash(raw)
    } else {
        raw
    }
}

/// Bob Jenkins' full-avalanche integer hash followed by HAProxy's multiplication by a
/// prime near ¾ of 2³² (which spreads points around the consistent-hashing ring): the
/// `avalanche` modifier, and the positions of servers on the ring.
pub fn full_hash(mut a: u32) -> u32 {
    a = a.wrapping_add(0x7ed5_5d16).wrapping_add(a << 12);
    a = (a ^ 0xc761_c23c) ^ (a >> 19);
    a = a.wrapping_add(0x1656_67b1).wrapping_add(a << 5);
    a = a.wrapping_add(0xd3a2_646c) ^ (a << 9);
    a = a.wrapping_add(0xfd70_46c5).wrapping_add(a << 3);
    a = (a ^ 0xb55a_4f09) ^ (a >> 16);
    a.wrapping_mul(3_221_225_473)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_map_like_haproxy() {
        assert_eq!(ServerMap::new(&[1, 1]).slots, [0, 1]);
        assert_eq!(ServerMap::new(&[10, 10, 10]).slots, [0, 1, 2]);
        assert_eq!(ServerMap::new(&[3, 1]).slots, [0, 0, 0, 1]);
        assert_eq!(ServerMap::new(&[0, 2]).slots, [1]);
        assert_eq!(ServerMap::new(&[0, 0]).get(7), None);
        let mut cursor = 0;
        let m = ServerMap::new(&[2, 1]);
        let seq: Vec<_> = (0..6).map(|_| m.next(&mut cursor).unwrap()).collect();
        assert_eq!(seq, [0, 0, 1, 0, 0, 1]);
    }

    #[test]
    fn uri_keys() {
        let o = UriHash::default();
        assert_eq!(uri_key(b"/a/b?x=1", &o), b"/a/b");
        assert_eq!(
            uri_key(b"/a/b?x=1", &UriHash { whole: true, ..o }),
            b"/a/b?x=1"
        );
        assert_eq!(
            uri_key(
                b"/a/b/c",
                &UriHash {
                    depth: Some(2),
                    ..o
                }
            ),
            b"/a/b"
        );
        assert_eq!(uri_key(b"/abcdef", &UriHash { len: Some(3), ..o }), b"/ab");
        assert_eq!(
            uri_key(
                b"http://h:1/p?q",
                &UriHash {
                    path_only: true,
                    ..o
                }
            ),
            b"/p"
        );
    }

    #[test]
    fn load_aware() {
        let loads = [3u32, 0, 0];
        let load = |i: usize| loads[i];
        assert_eq!(least_conn(&[1, 1, 1], load, 0), Some(1));
        assert_eq!(least_conn(&[1, 1, 1], load, 2), Some(2));
        assert_eq!(least_conn(&[1, 0, 1], load, 1), Some(2));
        assert_eq!(first(&[1, 1, 1], |_| Some(3), load), Some(1));
        assert_eq!(first(&[1, 1, 1], |_| None, load), Some(0));
        let map = ServerMap::new(&[1, 3]);
        let mut rng = 0x1234_5678_9abc_def0;
        let picks: Vec<usize> = (0..4000)
            .filter_map(|_| random(&map, 1, &mut rng, |_| 0))
            .collect();
        let ones = picks.iter().filter(|&&p| p == 1).count();
        assert!(
            (2800..3200).contains(&ones),
            "{ones} of 4000 for weight 3 of 4"
        );
    }

    #[test]
    fn keys() {
        assert_eq!(url_param(b"/p?a=1&id=42&b", "id"), Some(&b"42"[..]));
        assert_eq!(url_param(b"/p?xid=1", "id"), None);
        assert_eq!(url_param(b"/p", "id"), None);
        let head = b"GET / HTTP/1.1\r\nHost: a.example, b\r\nX-Empty: \r\n\r\n";
        assert_eq!(header_value(head, "host"), Some(&b"a.example"[..]));
        assert_eq!(header_value(head, "x-empty"), None);
        let h = HashType::default();
        assert_eq!(source_hash("10.0.0.1".parse().unwrap(), h), 0x0a00_0001);
        assert_eq!(source_hash("::1".parse().unwrap(), h), 1);
    }

    #[test]
    fn hashes() {
        let sdbm = HashType::default();
        assert_eq!(hash(b"", sdbm), 0);
        assert_eq!(hash(b"a", sdbm), 97);
        let djb2 = HashType {
            function: HashFunction::Djb2,
            ..sdbm
        };
        assert_eq!(hash(b"a", djb2), 5381 * 33 + 97);
        assert_ne!(
            hash(
                b"a",
                HashType {
                    avalanche: true,
                    ..sdbm
                }
            ),
            97
        );
    }

    #[test]
    fn more_hash_functions() {
        assert_ne!(wt6(b"a"), wt6(b"b"));
        let none = HashType {
            function: HashFunction::None,
            ..HashType::default()
        };
        assert_eq!(hash(b"42abc", none), 42);
        assert_eq!(hash(b"-1", none), u32::MAX);
        assert_eq!(hash(b"4294967297", none), 1);
        assert_eq!(hash(b"99999999999999999999999", none), u32::MAX);
        assert_eq!(hash(b"x", none), 0);
    }

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
