//! Claims: the records under `{prefix}/claims/` that make every alert go out once across replicas, and the
//! pure decision of what an existing record means for a replica that wants to claim the same key.
//!
//! A claim is a put-if-absent bound to the claimer's member lease, so when the claimer dies its claim
//! vanishes with the lease and another replica takes over. Once delivered, the claim is replaced by a
//! "done" record on a lease of its own, which outlives the member and keeps the key from being sent again.

use serde::{Deserialize, Serialize};

/// What [`crate::cluster::Cluster::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This replica holds the claim now: deliver, then `mark_done` (or `release` on failure).
    Won,
    /// Another live replica holds it (its name).
    HeldBy(String),
    /// It was already delivered.
    Done {
        /// The replica that delivered it.
        by: String,
    },
}

/// The JSON stored under a claim key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ClaimRecord {
    /// Being delivered by `by`; bound to its member lease.
    Held {
        /// The claimer's member name.
        by: String,
    },
    /// Delivered by `by` at `at` (milliseconds since the epoch); bound to a lease of its own.
    Done {
        /// The deliverer's member name.
        by: String,
        /// When it was marked done, ms since the Unix epoch.
        at: u64,
    },
}

/// A claim key's record as read back from etcd, with the lease it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// The record.
    pub record: ClaimRecord,
    /// The lease the key is bound to (0: none).
    pub lease: i64,
    /// Its mod revision, for a compare-and-swap.
    pub mod_revision: i64,
}

/// What to do about an existing claim record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Report this to the caller.
    Answer(Claim),
    /// Our own claim, but bound to an earlier lease of ours (before a lease was lost and renewed): move it
    /// onto the current lease, if it is still at `mod_revision`, so it dies with the lease we keep alive.
    Rebind {
        /// The revision the swap must find.
        mod_revision: i64,
    },
}

/// Decides what an existing record means for member `me` holding lease `my_lease`.
pub fn decide(existing: &Existing, me: &str, my_lease: i64) -> Decision {
    match &existing.record {
        ClaimRecord::Done { by, .. } => Decision::Answer(Claim::Done { by: by.clone() }),
        ClaimRecord::Held { by } if by == me && existing.lease == my_lease => {
            Decision::Answer(Claim::Won)
        }
        ClaimRecord::Held { by } if by == me => Decision::Rebind {
            mod_revision: existing.mod_revision,
        },
        ClaimRecord::Held { by } => Decision::Answer(Claim::HeldBy(by.clone())),
    }
}

/// Seconds of lease for a "done" record kept `keep_for`: rounded up, at least 1.
pub fn done_ttl(keep_for: std::time::Duration) -> i64 {
    let secs = keep_for.as_secs() + u64::from(keep_for.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn held(by: &str, lease: i64) -> Existing {
        Existing {
            record: ClaimRecord::Held { by: by.into() },
            lease,
            mod_revision: 9,
        }
    }

    #[test]
    fn someone_elses_claim_is_held_by_them() {
        assert_eq!(
            decide(&held("b", 7), "a", 5),
            Decision::Answer(Claim::HeldBy("b".into()))
        );
    }

    #[test]
    fn claiming_twice_is_winning_twice() {
        assert_eq!(decide(&held("a", 5), "a", 5), Decision::Answer(Claim::Won));
    }

    #[test]
    fn own_claim_on_an_old_lease_is_moved_to_the_new_one() {
        assert_eq!(
            decide(&held("a", 4), "a", 5),
            Decision::Rebind { mod_revision: 9 }
        );
    }

    #[test]
    fn done_is_done_for_everyone() {
        let done = Existing {
            record: ClaimRecord::Done {
                by: "b".into(),
                at: 1,
            },
            lease: 3,
            mod_revision: 2,
        };
        let want = Decision::Answer(Claim::Done { by: "b".into() });
        assert_eq!(decide(&done, "a", 5), want);
        assert_eq!(decide(&done, "b", 3), want);
    }

    #[test]
    fn records_are_tagged_json() {
        let json = serde_json::to_string(&ClaimRecord::Held { by: "a".into() }).unwrap();
        assert_eq!(json, r#"{"state":"held","by":"a"}"#);
        let back: ClaimRecord =
            serde_json::from_str(r#"{"state":"done","by":"b","at":5}"#).unwrap();
        assert_eq!(
            back,
            ClaimRecord::Done {
                by: "b".into(),
                at: 5
            }
        );
    }

    #[test]
    fn done_ttl_rounds_up() {
        assert_eq!(done_ttl(Duration::ZERO), 1);
        assert_eq!(done_ttl(Duration::from_millis(1500)), 2);
        assert_eq!(done_ttl(Duration::from_secs(3600)), 3600);
    }
}
