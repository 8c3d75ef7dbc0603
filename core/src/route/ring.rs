//! Consistent hashing for `consistentHash` (Ketama-style): each endpoint
//! owns many points on a 64-bit ring, placed by hashing its address, and a
//! key goes to the first point at or after its own hash. A removed endpoint
//! takes only its own points away, so only the keys it held move (about
//! 1/N of them); every other key stays where it was.

use super::UpstreamAddr;

/// Points per endpoint, whatever their number, so that an endpoint keeps
/// its points when others come or go. With them, each of N endpoints holds
/// within about 20% of 1/N of the keys (Envoy's ring: 1024 points at least).
const POINTS: usize = 256;

#[derive(Debug)]
pub struct Ring {
    /// (point, endpoint index), sorted by point.
    points: Vec<(u64, usize)>,
}

impl Ring {
    pub fn new(endpoints: &[UpstreamAddr]) -> Ring {
        let per = POINTS;
        let mut points = Vec::with_capacity(endpoints.len() * per);
        for (idx, ep) in endpoints.iter().enumerate() {
            // Placed by address, not by position: the same endpoint lands
            // on the same points whatever else the list holds.
            let name = ep.to_string();
            for i in 0..per {
                points.push((hash(format!("{name}#{i}").as_bytes()), idx));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The endpoint index for `key`.
    pub fn pick(&self, key: &[u8]) -> usize {
        self.pick_where(key, |_| true)
    }

    /// The endpoint for `key` among those `usable` accepts: the next
    /// point on from the key's own that belongs to one (so a key whose
    /// endpoint is out moves, and comes back when it is in again).
    pub fn pick_where(&self, key: &[u8], usable: impl Fn(usize) -> bool) -> usize {
        let h = hash(key);
        let at = self.points.partition_point(|(p, _)| *p < h);
        let (after, before) = self.points.split_at(at);
        before
            .iter()
            .chain(after)
            .map(|(_, idx)| *idx)
            .find(|idx| usable(*idx))
            .or(self.points.get(at).or(self.points.first()).map(|(_, i)| *i))
            .unwrap_or(0)
    }
}

/// FNV-1a, then a 64-bit finalizer (splitmix64) so that inputs differing
/// in one character land far apart. Stable across runs and processes, so
/// every replica sends a key to the same endpoint.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(ports: &[u16]) -> Vec<UpstreamAddr> {
        ports
            .iter()
            .map(|p| UpstreamAddr {
                host: "10.0.0.1".into(),
                port: *p,
            })
            .collect()
    }

    #[test]
    fn a_key_always_goes_to_one_endpoint_and_keys_spread() {
        let eps = endpoints(&[1, 2, 3, 4]);
        let ring = Ring::new(&eps);
        let mut load = [0usize; 4];
        for k in 0..1000 {
            let key = format!("user-{k}");
            let first = ring.pick(key.as_bytes());
            for _ in 0..3 {
                assert_eq!(ring.pick(key.as_bytes()), first);
            }
            assert_eq!(
                Ring::new(&eps).pick(key.as_bytes()),
                first,
                "stable across rings"
            );
            load[first] += 1;
        }
        for l in load {
            assert!((150..=350).contains(&l), "uneven: {load:?}");
        }
    }

    #[test]
    fn removing_an_endpoint_moves_only_its_own_keys() {
        let all = endpoints(&[1, 2, 3, 4]);
        let before = Ring::new(&all);
        let rest: Vec<_> = all.iter().filter(|e| e.port != 3).cloned().collect();
        let after = Ring::new(&rest);
        let mut moved = 0;
        for k in 0..1000 {
            let key = format!("user-{k}");
            let was = &all[before.pick(key.as_bytes())];
            let now = &rest[after.pick(key.as_bytes())];
            if was != now {
                assert_eq!(was.port, 3, "{key} moved off a surviving endpoint");
                moved += 1;
            }
        }
        // About a quarter of the keys lived on the removed endpoint.
        assert!((150..=350).contains(&moved), "moved {moved}");
    }
}
