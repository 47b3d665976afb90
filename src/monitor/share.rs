//! Monitoring across replicas, the cluster edge of the monitor: which replica checks which target
//! (rendezvous hashing of the target's name over the live members), the tracker state the checking replica
//! shares in etcd (written on changes only, so a new owner continues an open outage), and the confirmation
//! protocol (the owner asks other replicas to check a target at once before it calls it down or up again).
//!
//! Confirmation goes through etcd, not a peer call: the owner puts a request under `monitor/ask/{nonce}`
//! naming the replicas it asks (bound to its lease), each of them checks the target from where it stands and
//! puts its answer under `monitor/ans/{nonce}/{member}`; the owner waits for the answers (until the check's
//! timeout and two seconds more), then deletes them. Without etcd, every replica checks every target on its
//! own (nothing watched by nobody) and decides alone.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::tracker::TrackerState;
use crate::cluster::rendezvous::ranked;
use crate::cluster::{Cluster, ClusterError, Health, Life, Member, StateMap, Write};

/// Shared states written in one etcd transaction at most (etcd's default limit is 128 operations).
const BATCH: usize = 100;
/// How long the writer gathers changes before a transaction.
const GATHER: Duration = Duration::from_millis(200);

/// A target as the cluster shares it: its tracker state and where it was last seen from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedTarget {
    /// The target's name.
    pub name: String,
    /// The owner's tracker state.
    pub tracker: TrackerState,
    /// The replica that checked it.
    pub checked_by: String,
    /// That replica's zone, if it has one.
    pub zone: Option<String>,
    /// The reason of the last check that changed something.
    pub reason: String,
    /// When it was written (RFC 3339 in JSON).
    #[serde(with = "crate::core::time::serde_rfc3339")]
    pub at: SystemTime,
    /// The replicas (with their zones) that saw the current state: "down from tend-a and tend-c".
    pub seen_from: Vec<String>,
}

/// A request to check a target now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ask {
    /// The target's name.
    pub target: String,
    /// The asking replica.
    pub by: String,
    /// The replicas asked.
    pub to: Vec<String>,
}

/// One replica's answer: what it saw when it checked the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The answering replica.
    pub member: String,
    /// Its zone.
    pub zone: Option<String>,
    /// Whether the target answered as expected.
    pub up: bool,
    /// Why ("HTTP 200", "connect: connection refused").
    pub reason: String,
}

impl Answer {
    /// `tend-b` or `tend-b (eu-west-1b)`.
    pub fn place(&self) -> String {
        place(&self.member, self.zone.as_deref())
    }
}

/// `name` or `name (zone)`.
pub fn place(member: &str, zone: Option<&str>) -> String {
    match zone {
        Some(z) => format!("{member} ({z})"),
        None => member.to_string(),
    }
}

/// The etcd-safe key of a target's name.
fn target_key(name: &str) -> String {
    hex::encode(&Sha256::digest(name.as_bytes())[..12])
}

/// A replica's part in monitoring across the cluster.
pub struct Sharing {
    cluster: Cluster,
    me: String,
    zone: Option<String>,
    share: bool,
    confirm: Option<usize>,
    members: watch::Receiver<Vec<Member>>,
    targets: watch::Receiver<StateMap>,
    asks: watch::Receiver<StateMap>,
    answers: watch::Receiver<StateMap>,
    nonce: AtomicU64,
    writes: mpsc::UnboundedSender<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Sharing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharing")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Sharing {
    /// Starts watching the shared targets, the requests and the answers (until `stop`). `share = false`: every
    /// replica checks every target (more vantage points, alerts deduplicated by their claims). `confirm`: how
    /// many replicas must see a change (None: 2 when two or more are alive, else 1).
    pub fn start(
        cluster: Cluster,
        zone: Option<String>,
        share: bool,
        confirm: Option<usize>,
        stop: CancellationToken,
    ) -> Result<Sharing, ClusterError> {
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(cluster.clone(), queue, stop.clone()));
        Ok(Sharing {
            writes,
            me: cluster.name().to_string(),
            members: cluster.members(),
            targets: cluster.watch_state("monitor/t/", stop.clone())?,
            asks: cluster.watch_state("monitor/ask/", stop.clone())?,
            answers: cluster.watch_state("monitor/ans/", stop)?,
            cluster,
            zone,
            share,
            confirm,
            nonce: AtomicU64::new(fastrand::u64(..)),
        })
    }

    /// This replica's name.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// This replica's zone.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    fn live(&self) -> Vec<String> {
        self.members
            .borrow()
            .iter()
            .map(|m| m.name.clone())
            .collect()
    }

    /// Whether this replica checks `target` now: when sharing is off, when etcd is unreachable (nothing goes
    /// unchecked while the members cannot be known), or when it is the target's rendezvous owner.
    pub fn owns(&self, target: &str) -> bool {
        if !self.share || !self.cluster.health().is_ok() {
            return true;
        }
        let live = self.live();
        if !live.contains(&self.me) {
            return true; // not registered yet (joining): check rather than leave a gap
        }
        crate::cluster::rendezvous::owner(target, &live) == Some(self.me.as_str())
    }

    /// How many replicas must see a change, this one included.
    pub fn needed(&self) -> usize {
        let alive = self.live().len();
        self.confirm
            .unwrap_or(if alive >= 2 { 2 } else { 1 })
            .min(alive.max(1))
    }

    /// The shared state of `target`, as last written by whoever checked it.
    pub fn load(&self, target: &str) -> Option<SharedTarget> {
        let map = self.targets.borrow();
        let raw = map.get(&format!("monitor/t/{}", target_key(target)))?;
        serde_json::from_slice(raw).ok()
    }

    /// The shared targets whose state changed since the last call with `seen` (which remembers a hash of each
    /// one's bytes): the view reads only what changed, not every target each time one does.
    pub fn changed(&self, seen: &mut std::collections::HashMap<String, u64>) -> Vec<SharedTarget> {
        use std::hash::{Hash, Hasher};
        let map = self.targets.borrow();
        let mut out = Vec::new();
        for (key, raw) in map.iter() {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            raw.hash(&mut h);
            let hash = h.finish();
            if seen.insert(key.clone(), hash) != Some(hash) {
                out.extend(serde_json::from_slice::<SharedTarget>(raw).ok());
            }
        }
        out
    }

    /// A receiver that changes whenever the shared targets do.
    pub fn changes(&self) -> watch::Receiver<StateMap> {
        self.targets.clone()
    }

    /// Queues a target's shared state for writing (on a change of state, not on every check); changes are
    /// written in batches, one etcd transaction for up to a hundred, so a start or a storm costs few requests.
    pub fn save(&self, shared: &SharedTarget) {
        let key = format!("monitor/t/{}", target_key(&shared.name));
        match serde_json::to_vec(shared) {
            Ok(value) => _ = self.writes.send((key, value)),
            Err(error) => {
                tracing::warn!(target_name = %shared.name, %error, "Cannot encode a monitor state")
            }
        }
    }

    /// Waits (at most `max`) until this replica sees itself among the members, so that it starts with its own
    /// share of the targets rather than all of them.
    pub async fn settle(&self, max: Duration) {
        let me = self.me.clone();
        let mut members = self.members.clone();
        let _ =
            tokio::time::timeout(max, members.wait_for(|m| m.iter().any(|m| m.name == me))).await;
    }

    /// Asks `needed() - 1` other replicas (the next in the target's rendezvous order) to check `target` now,
    /// and returns their answers (fewer when some do not answer within `wait`).
    pub async fn confirm(&self, target: &str, wait: Duration) -> Vec<Answer> {
        let want = self.needed().saturating_sub(1);
        if want == 0 || !self.cluster.health().is_ok() {
            return Vec::new();
        }
        let live = self.live();
        let to: Vec<String> = ranked(target, &live)
            .into_iter()
            .filter(|m| *m != self.me)
            .take(want)
            .map(str::to_string)
            .collect();
        if to.is_empty() {
            return Vec::new();
        }
        let nonce = format!(
            "{}-{:x}",
            self.me,
            self.nonce.fetch_add(1, Ordering::Relaxed)
        );
        let ask = Ask {
            target: target.to_string(),
            by: self.me.clone(),
            to: to.clone(),
        };
        if let Err(error) = self
            .cluster
            .put_leased(&format!("monitor/ask/{nonce}"), &ask)
            .await
        {
            tracing::debug!(target_name = %target, error = %crate::core::chain(&error),
                "Cannot ask other replicas to confirm; deciding alone");
            return Vec::new();
        }
        let prefix = format!("monitor/ans/{nonce}/");
        let mut answers = self.answers.clone();
        let collected = tokio::time::timeout(
            wait,
            answers.wait_for(|m| {
                m.range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .count()
                    >= to.len()
            }),
        )
        .await;
        drop(collected);
        let got: Vec<Answer> = self
            .answers
            .borrow()
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(_, v)| serde_json::from_slice(v).ok())
            .collect();
        let mut stale = vec![format!("monitor/ask/{nonce}")];
        stale.extend(to.iter().map(|m| format!("{prefix}{m}")));
        for key in stale {
            let _ = self.cluster.delete(&key).await;
        }
        got
    }

    /// The requests addressed to this replica that it has not answered yet (`answered` remembers them).
    pub fn requests(&self, answered: &mut BTreeSet<String>) -> Vec<(String, Ask)> {
        let map = self.asks.borrow();
        let live: BTreeSet<&String> = map.keys().collect();
        answered.retain(|k| live.contains(k));
        map.iter()
            .filter(|(k, _)| !answered.contains(*k))
            .filter_map(|(k, v)| Some((k.clone(), serde_json::from_slice::<Ask>(v).ok()?)))
            .filter(|(_, a)| a.by != self.me && a.to.contains(&self.me))
            .collect()
    }

    /// A receiver that changes whenever requests come or go.
    pub fn request_changes(&self) -> watch::Receiver<StateMap> {
        self.asks.clone()
    }

    /// Answers request `key` (`monitor/ask/{nonce}`) with what this replica saw.
    pub async fn answer(&self, key: &str, up: bool, reason: &str) {
        let Some(nonce) = key.strip_prefix("monitor/ask/") else {
            return;
        };
        let answer = Answer {
            member: self.me.clone(),
            zone: self.zone.clone(),
            up,
            reason: reason.to_string(),
        };
        if let Err(error) = self
            .cluster
            .put_leased(&format!("monitor/ans/{nonce}/{}", self.me), &answer)
            .await
        {
            tracing::debug!(error = %crate::core::chain(&error), "Cannot answer a confirmation request");
        }
    }

    /// Whether etcd answers (else every replica works alone).
    pub fn connected(&self) -> bool {
        matches!(self.cluster.health(), Health::Ok)
    }
}

/// Writes the queued states in batches until `stop`; a later state of a target replaces an earlier one still
/// queued. A failed write is logged: the target's next change writes it again.
async fn write_batches(
    cluster: Cluster,
    mut queue: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            next = queue.recv() => match next { Some(w) => w, None => return },
        };
        tokio::time::sleep(GATHER).await;
        let mut pending = std::collections::BTreeMap::from([first]);
        while let Ok((key, value)) = queue.try_recv() {
            pending.insert(key, value);
        }
        let writes: Vec<Write> = pending
            .into_iter()
            .map(|(key, value)| Write::Put {
                key,
                value,
                life: Life::Kept,
            })
            .collect();
        for chunk in writes.chunks(BATCH) {
            if let Err(error) = cluster.commit(None, &[], chunk).await {
                tracing::debug!(states = chunk.len(), error = %crate::core::chain(&error),
                    "Cannot share monitor states; each target's next change writes it again");
            }
        }
    }
}

/// What the owner's check and the answers mean together: `Ok(places)` where the change was seen from when they
/// agree (or nobody answered: then the owner decides alone); `Err(the answers that disagree)` otherwise.
pub fn agreement(
    owner: &str,
    zone: Option<&str>,
    up: bool,
    answers: &[Answer],
) -> Result<Vec<String>, Vec<Answer>> {
    let (agree, disagree): (Vec<&Answer>, Vec<&Answer>) = answers.iter().partition(|a| a.up == up);
    if !disagree.is_empty() {
        return Err(disagree.into_iter().cloned().collect());
    }
    let mut places = vec![place(owner, zone)];
    places.extend(agree.iter().map(|a| a.place()));
    Ok(places)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(member: &str, up: bool) -> Answer {
        Answer {
            member: member.into(),
            zone: None,
            up,
            reason: if up { "HTTP 200" } else { "HTTP 503" }.into(),
        }
    }

    #[test]
    fn agreement_needs_every_answer_to_agree() {
        assert_eq!(
            agreement("a", Some("z1"), false, &[answer("c", false)]),
            Ok(vec!["a (z1)".to_string(), "c".to_string()])
        );
        assert_eq!(agreement("a", None, false, &[]), Ok(vec!["a".to_string()]));
        let e = agreement("a", None, false, &[answer("b", true), answer("c", false)]).unwrap_err();
        assert_eq!(e, vec![answer("b", true)]);
    }

    #[test]
    fn target_keys_are_safe() {
        let k = target_key("My site / with spaces");
        assert_eq!(k.len(), 24);
        assert!(k.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
