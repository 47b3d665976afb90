//! Deploy requests between replicas (with `[cluster]`): the webhook, received by any replica, claims its delivery
//! id and leaves a request in etcd; the leader runs each request once. This file holds the records, the one
//! transaction that submits a request, and the pure choice of what the leader does with the requests it sees.
//!
//! ```text
//! state/deploy/deliveries/{delivery}   who received it and when; on a lease of its own (DELIVERY_TTL)
//! state/deploy/requests/{delivery}     a DeployRequest; `taken` once a leader runs it; deleted when done
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Trigger;
use crate::cluster::{Cluster, ClusterError, Guard, Life, StateMap, Write};

/// The range the leader watches.
pub const REQUESTS: &str = "deploy/requests/";
/// How long a delivery id is remembered (CI redeliveries come within hours).
pub const DELIVERY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A deploy a webhook asked for, waiting for the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRequest {
    /// The webhook delivery id.
    pub delivery: String,
    /// The commit to deploy.
    pub commit: String,
    /// Its branch.
    pub branch: String,
    /// The replica that received the webhook.
    pub received_by: String,
    /// When, ms since the epoch.
    pub at: i64,
    /// Set by the leader that runs it.
    pub taken: Option<Taken>,
}

/// Which leader runs a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    /// Its member name.
    pub by: String,
    /// Its leadership term (the leader key's create revision).
    pub term: i64,
    /// The release id, once the lock is taken.
    pub deploy: Option<i64>,
}

/// The request key of a delivery id: the id itself when it is a safe key, else a hash of it.
pub fn key_of(delivery: &str) -> String {
    let safe = !delivery.is_empty()
        && delivery.len() <= 128
        && delivery
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if safe {
        delivery.to_owned()
    } else {
        hex::encode(&Sha256::digest(delivery.as_bytes())[..16])
    }
}

/// `deploy/requests/{key}` of a delivery.
pub fn request_key(delivery: &str) -> String {
    format!("{REQUESTS}{}", key_of(delivery))
}

/// What submitting a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// The request waits for the leader.
    Queued,
    /// Another replica (or this one) received this delivery already: nothing was started.
    Duplicate,
}

/// Claims the delivery id and leaves the request, in one transaction: nothing is half-written.
pub async fn submit(
    cluster: &Cluster,
    trigger: &Trigger,
    at: i64,
) -> Result<Submitted, ClusterError> {
    let key = key_of(&trigger.delivery);
    let delivery = format!("deploy/deliveries/{key}");
    let request = DeployRequest {
        delivery: trigger.delivery.clone(),
        commit: trigger.commit.clone(),
        branch: trigger.branch.clone(),
        received_by: cluster.name().to_owned(),
        at,
        taken: None,
    };
    let ttl = i64::try_from(DELIVERY_TTL.as_secs()).unwrap_or(i64::MAX);
    let seen = serde_json::json!({ "by": cluster.name(), "at": at });
    let writes = [
        Write::put(&delivery, &seen, Life::Seconds(ttl))?,
        Write::put(&request_key(&trigger.delivery), &request, Life::Kept)?,
    ];
    let guards = [Guard::Absent(delivery.clone())];
    Ok(match cluster.commit(None, &guards, &writes).await? {
        true => Submitted::Queued,
        false => Submitted::Duplicate,
    })
}

/// What the leader does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Todo {
    /// Take it and run it (key relative to `state/`).
    Run(String, DeployRequest),
    /// Taken in an earlier term, whose leader is gone: a deploy it began is not resumed (drop the request); one
    /// it never began (no release names the delivery) is run after all.
    Orphaned(String, DeployRequest),
}

/// The leader's work in term `term`, from the watched requests: first what earlier terms took (orphaned), then
/// untaken requests oldest first. Requests taken in this term are in progress; unreadable ones are skipped.
pub fn plan_requests(requests: &StateMap, term: i64) -> Vec<Todo> {
    let mut parsed: Vec<(String, DeployRequest)> = requests
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), serde_json::from_slice(v).ok()?)))
        .collect();
    parsed.sort_by(|a, b| (a.1.at, &a.0).cmp(&(b.1.at, &b.0)));
    let mut drops = Vec::new();
    let mut runs = Vec::new();
    for (key, request) in parsed {
        match &request.taken {
            None => runs.push(Todo::Run(key, request)),
            Some(t) if t.term != term => drops.push(Todo::Orphaned(key, request)),
            Some(_) => {}
        }
    }
    drops.extend(runs);
    drops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(delivery: &str, at: i64, taken: Option<i64>) -> (String, Vec<u8>) {
        let r = DeployRequest {
            delivery: delivery.into(),
            commit: "abc".into(),
            branch: "main".into(),
            received_by: "tend-b".into(),
            at,
            taken: taken.map(|term| Taken {
                by: "tend-a".into(),
                term,
                deploy: Some(4),
            }),
        };
        (request_key(delivery), serde_json::to_vec(&r).unwrap())
    }

    fn kinds(todo: &[Todo]) -> Vec<(char, String)> {
        todo.iter()
            .map(|t| match t {
                Todo::Run(_, r) => ('r', r.delivery.clone()),
                Todo::Orphaned(_, r) => ('d', r.delivery.clone()),
            })
            .collect()
    }

    #[test]
    fn untaken_requests_run_oldest_first() {
        let map: StateMap = [request("b", 20, None), request("a", 30, None)].into();
        assert_eq!(
            kinds(&plan_requests(&map, 7)),
            [('r', "b".into()), ('r', "a".into())]
        );
    }

    #[test]
    fn a_request_taken_in_an_earlier_term_is_orphaned_and_comes_first() {
        let map: StateMap = [request("old", 1, Some(5)), request("new", 2, None)].into();
        assert_eq!(
            kinds(&plan_requests(&map, 7)),
            [('d', "old".into()), ('r', "new".into())]
        );
    }

    #[test]
    fn a_request_taken_in_this_term_is_in_progress() {
        let map: StateMap = [request("mine", 1, Some(7))].into();
        assert!(plan_requests(&map, 7).is_empty());
    }

    #[test]
    fn unreadable_requests_are_skipped() {
        let map: StateMap = [("deploy/requests/x".to_string(), b"{".to_vec())].into();
        assert!(plan_requests(&map, 1).is_empty());
    }

    #[test]
    fn delivery_ids_become_safe_keys() {
        assert_eq!(
            key_of("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            "72d3162e-cc78-11e3-81ab-4c9367dc0958"
        );
        let hashed = key_of("a/../b");
        assert_eq!(hashed.len(), 32);
        assert!(hashed.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(key_of(""), "");
    }
}
