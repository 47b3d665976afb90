//! Rendezvous (highest random weight) hashing: which live members own a key. Every replica computes the same
//! answer from the same member list, with no coordination; when a member joins or leaves, only the keys it
//! gains or owned move. Pure.

/// A 64-bit mix of `member` and `key` (FNV-1a over both, then splitmix64's finaliser for spread).
fn weight(member: &str, key: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in member.bytes().chain([0xff]).chain(key.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The members ranked for `key`, best first: the owner, then who takes over or confirms.
pub fn ranked<'a, S: AsRef<str>>(key: &str, members: &'a [S]) -> Vec<&'a str> {
    let mut ranked: Vec<(u64, &str)> = members
        .iter()
        .map(|m| (weight(m.as_ref(), key), m.as_ref()))
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    ranked.into_iter().map(|(_, m)| m).collect()
}

/// The member that owns `key`; None without members.
pub fn owner<'a, S: AsRef<str>>(key: &str, members: &'a [S]) -> Option<&'a str> {
    members
        .iter()
        .map(|m| (weight(m.as_ref(), key), m.as_ref()))
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(a.1)))
        .map(|(_, m)| m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        (0..3000).map(|i| format!("site-{i}")).collect()
    }

    #[test]
    fn shares_are_even_and_owner_is_the_first_ranked() {
        let members = ["tend-a", "tend-b", "tend-c"];
        let mut count = [0usize; 3];
        for k in keys() {
            let o = owner(&k, &members).unwrap();
            assert_eq!(ranked(&k, &members)[0], o);
            count[members.iter().position(|m| *m == o).unwrap()] += 1;
        }
        for c in count {
            assert!((850..=1150).contains(&c), "{count:?}");
        }
        assert_eq!(owner::<&str>("x", &[]), None);
    }

    #[test]
    fn a_member_leaving_moves_only_its_own_keys() {
        let three = ["tend-a", "tend-b", "tend-c"];
        let two = ["tend-a", "tend-c"];
        for k in keys() {
            let before = owner(&k, &three).unwrap();
            let after = owner(&k, &two).unwrap();
            if before != "tend-b" {
                assert_eq!(before, after, "{k} moved though its owner stayed");
            }
        }
    }
}
