//! Extra scaling signals (`[[scale.signal]]`): a Prometheus query over HTTP (latency, queue depth, requests
//! per instance...) with its own `high` and `low`, next to the per-instance load the policy reads.
//!
//! Each signal is a fleet-wide number assumed to fall in proportion as instances are added (latency under
//! load, queue depth per worker). Rules, pure in [`vote`] and [`combine`]: a signal above `high` asks for
//! enough instances to bring it to `high` (at least one); removing one is allowed only when the signal's
//! predicted value after removal, value·n/(n−1), stays under `low`. Add if any signal (or the load) says add,
//! taking the largest proposal; remove only if the load policy says remove and every signal allows it; a
//! signal without data blocks removals and never adds.

use crate::scale::policy::Decision;

pub use super::config::SignalConfig;

/// What one signal says this cycle.
#[derive(Debug, Clone, PartialEq)]
pub enum Vote {
    /// Add this many instances.
    Add(u32),
    /// Removing one instance keeps the signal under `low`.
    AllowRemove,
    /// Hold: removing one would push it to or over `low`.
    Block,
    /// No value: never add on it, never remove.
    NoData(String),
}

/// Why a signal has no value this cycle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// The `prometheus` setting is not a URL.
    #[error("bad prometheus URL: {0}")]
    Url(String),
    /// No answer in time.
    #[error("no answer within {}", crate::core::duration::exact(*.0))]
    Timeout(std::time::Duration),
    /// The request failed.
    #[error("query failed: {0}")]
    Request(String),
    /// Prometheus answered with an error status.
    #[error("Prometheus answered HTTP {0}")]
    Status(u16),
    /// The answer is not a number Prometheus-style.
    #[error("{0}")]
    Answer(String),
}

/// A signal's vote for `value` on a fleet of `n` instances. Pure.
pub fn vote(value: Result<f64, SignalError>, n: usize, high: f64, low: f64) -> Vote {
    let v = match value {
        Ok(v) if v.is_finite() => v,
        Ok(v) => return Vote::NoData(format!("value {v}")),
        Err(e) => return Vote::NoData(e.to_string()),
    };
    if v > high {
        let n = n.max(1) as f64;
        let need = (n * v / high).ceil() - n;
        return Vote::Add(need.max(1.0) as u32);
    }
    if n >= 2 && v * n as f64 / (n as f64 - 1.0) < low {
        Vote::AllowRemove
    } else {
        Vote::Block
    }
}

/// Combines the load policy's decision with the signals' votes. `booting` instances in the fleet mean an
/// earlier add is still on its way: signals then add nothing more (never two actions for one shortfall).
pub fn combine(
    load: Decision,
    votes: &[(String, f64, Vote)],
    n: usize,
    max: u32,
    max_step: u32,
    booting: usize,
) -> Decision {
    let adds = votes.iter().filter_map(|(name, v, vote)| match vote {
        Vote::Add(k) => Some((*k, name, *v)),
        _ => None,
    });
    let best = adds.max_by_key(|(k, _, _)| *k);
    let room = (max as usize).saturating_sub(n) as u32;
    match (load, best) {
        (Decision::Add { count, reason }, Some((k, name, v))) if k > count && booting == 0 => {
            let count = k.min(max_step).min(room).max(count);
            Decision::Add {
                count,
                reason: format!(
                    "signal {name} at {v:.3} above its high: {count} more (load: {reason})"
                ),
            }
        }
        (Decision::Add { count, reason }, _) => Decision::Add { count, reason },
        (other, Some((k, name, v))) if booting == 0 && room > 0 => Decision::Add {
            count: k.min(max_step).min(room),
            reason: format!(
                "signal {name} at {v:.3} above its high: {} more (load: {})",
                k.min(max_step).min(room),
                other.reason()
            ),
        },
        (Decision::Remove { id, reason }, None) => {
            let blocked: Vec<String> = votes
                .iter()
                .filter_map(|(name, v, vote)| match vote {
                    Vote::AllowRemove => None,
                    Vote::NoData(e) => Some(format!("{name} has no data ({e})")),
                    _ => Some(format!(
                        "{name} at {v:.3} would reach its low after removal"
                    )),
                })
                .collect();
            if blocked.is_empty() {
                Decision::Remove { id, reason }
            } else {
                Decision::Hold {
                    reason: format!("{reason}; but {}", blocked.join(", ")),
                }
            }
        }
        (other, _) => other,
    }
}

/// Reads the `[[scale.signal]]`s (concurrently) and combines their votes with the load's decision.
pub async fn adjust(
    http: &reqwest::Client,
    config: &super::ScaleConfig,
    decision: Decision,
    n: usize,
    booting: usize,
) -> Decision {
    if config.signal.is_empty() {
        return decision;
    }
    let mut reads = tokio::task::JoinSet::new();
    for (i, s) in config.signal.iter().enumerate() {
        let (client, s) = (http.clone(), s.clone());
        reads.spawn(async move { (i, read(&client, &s).await) });
    }
    let mut values: Vec<Result<f64, SignalError>> =
        vec![Err(SignalError::Answer("not read".into())); config.signal.len()];
    while let Some(done) = reads.join_next().await {
        if let Ok((i, v)) = done {
            values[i] = v;
        }
    }
    let mut votes = Vec::new();
    for (s, value) in config.signal.iter().zip(values) {
        if let Err(error) = &value {
            tracing::warn!(alert = false, signal = %s.name, %error, "Scaling signal has no value");
        }
        let shown = value.clone().unwrap_or(f64::NAN);
        votes.push((s.name.clone(), shown, vote(value, n, s.high, s.low)));
    }
    let p = &config.policy;
    combine(decision, &votes, n, p.max, p.max_step, booting)
}

/// Reads one number from Prometheus's HTTP API.
pub async fn read(client: &reqwest::Client, s: &SignalConfig) -> Result<f64, SignalError> {
    let base = format!("{}/api/v1/query", s.prometheus.trim_end_matches('/'));
    let mut url = reqwest::Url::parse(&base).map_err(|e| SignalError::Url(e.to_string()))?;
    url.query_pairs_mut().append_pair("query", &s.query);
    let request = client.get(url).send();
    let response = tokio::time::timeout(s.timeout, request)
        .await
        .map_err(|_| SignalError::Timeout(s.timeout))?
        .map_err(|e| SignalError::Request(e.without_url().to_string()))?;
    if !response.status().is_success() {
        return Err(SignalError::Status(response.status().as_u16()));
    }
    let body: serde_json::Value = tokio::time::timeout(s.timeout, response.json())
        .await
        .map_err(|_| SignalError::Timeout(s.timeout))?
        .map_err(|e| SignalError::Answer(format!("not JSON: {e}")))?;
    parse(&body)
}

/// The number in a Prometheus `/api/v1/query` answer (scalar, or the first sample of a vector).
pub fn parse(body: &serde_json::Value) -> Result<f64, SignalError> {
    let answer = |text: String| SignalError::Answer(text);
    if body["status"] != "success" {
        return Err(answer(format!(
            "query error: {}",
            body["error"].as_str().unwrap_or("unknown")
        )));
    }
    let data = &body["data"];
    let value = match data["resultType"].as_str() {
        Some("scalar") => &data["result"][1],
        Some("vector") => &data["result"][0]["value"][1],
        other => return Err(answer(format!("unsupported result type {other:?}"))),
    };
    value
        .as_str()
        .ok_or_else(|| answer("empty result".to_string()))?
        .parse::<f64>()
        .map_err(|e| answer(format!("not a number: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(count: u32) -> Decision {
        Decision::Add {
            count,
            reason: "load".into(),
        }
    }
    fn remove() -> Decision {
        Decision::Remove {
            id: "i-1".into(),
            reason: "load low".into(),
        }
    }
    fn hold() -> Decision {
        Decision::Hold {
            reason: "ok".into(),
        }
    }

    #[test]
    fn votes() {
        assert_eq!(vote(Ok(300.0), 4, 200.0, 100.0), Vote::Add(2)); // 4·300/200 = 6
        assert_eq!(vote(Ok(201.0), 4, 200.0, 100.0), Vote::Add(1));
        assert_eq!(vote(Ok(60.0), 4, 200.0, 100.0), Vote::AllowRemove); // 80 after removal
        assert_eq!(vote(Ok(80.0), 4, 200.0, 100.0), Vote::Block); // 106.7 after removal
        assert_eq!(vote(Ok(10.0), 1, 200.0, 100.0), Vote::Block); // one instance: nothing to remove
        assert!(matches!(
            vote(Err(SignalError::Answer("down".into())), 4, 200.0, 100.0),
            Vote::NoData(_)
        ));
        assert!(matches!(
            vote(Ok(f64::NAN), 4, 200.0, 100.0),
            Vote::NoData(_)
        ));
    }

    #[test]
    fn any_add_wins_with_the_largest_proposal() {
        let votes = [
            ("lat".into(), 300.0, Vote::Add(3)),
            ("q".into(), 9.0, Vote::Add(1)),
        ];
        assert!(matches!(
            combine(hold(), &votes, 4, 20, 10, 0),
            Decision::Add { count: 3, .. }
        ));
        assert!(matches!(
            combine(add(5), &votes, 4, 20, 10, 0),
            Decision::Add { count: 5, .. }
        ));
        assert!(matches!(
            combine(remove(), &votes, 4, 20, 10, 0),
            Decision::Add { count: 3, .. }
        ));
        // Capped by max_step and max.
        assert!(matches!(
            combine(hold(), &votes, 4, 5, 10, 0),
            Decision::Add { count: 1, .. }
        ));
        assert!(matches!(
            combine(hold(), &votes, 4, 20, 2, 0),
            Decision::Add { count: 2, .. }
        ));
        assert!(matches!(
            combine(hold(), &votes, 5, 5, 10, 0),
            Decision::Hold { .. }
        ));
    }

    #[test]
    fn no_signal_add_while_instances_boot() {
        let votes = [("lat".into(), 300.0, Vote::Add(3))];
        assert!(matches!(
            combine(hold(), &votes, 4, 20, 10, 1),
            Decision::Hold { .. }
        ));
        assert!(matches!(
            combine(add(1), &votes, 4, 20, 10, 1),
            Decision::Add { count: 1, .. }
        ));
    }

    #[test]
    fn removal_needs_every_signal() {
        let ok = [
            ("a".into(), 1.0, Vote::AllowRemove),
            ("b".into(), 1.0, Vote::AllowRemove),
        ];
        assert!(matches!(
            combine(remove(), &ok, 4, 20, 10, 0),
            Decision::Remove { .. }
        ));
        let one_blocks = [
            ("a".into(), 1.0, Vote::AllowRemove),
            ("b".into(), 90.0, Vote::Block),
        ];
        assert!(matches!(
            combine(remove(), &one_blocks, 4, 20, 10, 0),
            Decision::Hold { .. }
        ));
        let no_data = [("a".into(), 0.0, Vote::NoData("down".into()))];
        let d = combine(remove(), &no_data, 4, 20, 10, 0);
        assert!(
            matches!(&d, Decision::Hold { reason } if reason.contains("a has no data")),
            "{d:?}"
        );
        // Signals never remove on their own.
        assert!(matches!(
            combine(hold(), &ok, 4, 20, 10, 0),
            Decision::Hold { .. }
        ));
    }

    #[test]
    fn parses_prometheus_answers() {
        let vector = serde_json::json!({"status":"success","data":{"resultType":"vector",
            "result":[{"metric":{},"value":[1700000000.0,"0.250"]}]}});
        assert_eq!(parse(&vector), Ok(0.25));
        let scalar = serde_json::json!({"status":"success","data":{"resultType":"scalar","result":[1.0,"7"]}});
        assert_eq!(parse(&scalar), Ok(7.0));
        let empty =
            serde_json::json!({"status":"success","data":{"resultType":"vector","result":[]}});
        assert!(parse(&empty).is_err());
        let error = serde_json::json!({"status":"error","error":"bad query"});
        assert!(parse(&error).unwrap_err().to_string().contains("bad query"));
    }
}
