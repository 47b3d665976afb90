//! Pure verification of `POST /hooks/deploy`: size limit, HMAC-SHA256 signature in constant time,
//! replay refusal by delivery id, then the payload (a GitHub push event or `{"branch", "commit"}`).
//!
//! The checks run in that order on purpose: nothing from the body is parsed before the signature
//! holds, and an unauthenticated request can never mark a delivery id as seen. Refusals carry no
//! secret (this module only ever hands the secret to the HMAC).

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::config::WebhookConfig;

/// What the web layer extracts from the request, verbatim.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookRequest<'a> {
    /// `X-Hub-Signature-256` (`sha256=<hex>`).
    pub signature: Option<&'a str>,
    /// `X-GitHub-Delivery` (a unique id per delivery); absent for generic callers.
    pub delivery: Option<&'a str>,
    /// `X-GitHub-Event` (`push`, `ping`, ...); absent for generic callers.
    pub event: Option<&'a str>,
    /// The raw body, exactly as received (the signature covers these bytes).
    pub body: &'a [u8],
}

/// An accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Deploy this commit (answer 202 with the deploy id; remember `delivery` as seen).
    Deploy(Trigger),
    /// GitHub's `ping` on hook creation: genuine, nothing to deploy (answer 200).
    Ping {
        /// Its delivery id.
        delivery: String,
    },
}

/// A verified deploy request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The branch pushed (always the configured one).
    pub branch: String,
    /// The commit to deploy (hex).
    pub commit: String,
    /// The delivery id (`X-GitHub-Delivery`, or `sha256:<hex of the body>` when absent).
    pub delivery: String,
}

/// Why a request was refused; [`Refusal::status`] gives the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The body is over `max_body_bytes`.
    #[error("body of {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No `X-Hub-Signature-256` header.
    #[error("missing X-Hub-Signature-256 header")]
    MissingSignature,
    /// The signature is malformed or does not match the body.
    #[error("bad X-Hub-Signature-256 signature")]
    BadSignature,
    /// This delivery id was already accepted once.
    #[error("delivery {delivery} was already received (replay)")]
    Replay {
        /// The id.
        delivery: String,
    },
    /// The delivery id header is not a short printable token.
    #[error("bad X-GitHub-Delivery header")]
    BadDelivery,
    /// The body is not the JSON expected.
    #[error("bad JSON body: {reason}")]
    BadJson {
        /// What is wrong.
        reason: String,
    },
    /// A GitHub event other than push or ping.
    #[error("event {event:?} does not deploy (only push)")]
    NotAPush {
        /// The event name.
        event: String,
    },
    /// A push to another branch (or a tag).
    #[error("ref {pushed:?} is not the deploy branch {expected:?}")]
    OtherBranch {
        /// What was pushed.
        pushed: String,
        /// The configured branch.
        expected: String,
    },
    /// The push deleted the branch: nothing to deploy.
    #[error("the push deleted the branch")]
    BranchDeleted,
    /// The commit is not a hex object id.
    #[error("commit {commit:?} is not a hex commit id")]
    BadCommit {
        /// The value received.
        commit: String,
    },
}

impl Refusal {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::MissingSignature | Refusal::BadSignature => 401,
            Refusal::TooLarge { .. } => 413,
            Refusal::Replay { .. } => 409,
            Refusal::BadDelivery | Refusal::BadJson { .. } => 400,
            Refusal::NotAPush { .. }
            | Refusal::OtherBranch { .. }
            | Refusal::BranchDeleted
            | Refusal::BadCommit { .. } => 422,
        }
    }
}

/// Checks one request. `seen(id)` tells whether a delivery id was already accepted; the caller
/// records the id of every accepted request (a pure function cannot remember).
pub fn verify(
    config: &WebhookConfig,
    request: &WebhookRequest<'_>,
    seen: impl Fn(&str) -> bool,
) -> Result<WebhookOutcome, Refusal> {
    let body = request.body;
    if body.len() > config.max_body_bytes {
        return Err(Refusal::TooLarge {
            size: body.len(),
            limit: config.max_body_bytes,
        });
    }
    let signature = request.signature.ok_or(Refusal::MissingSignature)?;
    check_signature(config.secret.expose().as_bytes(), signature, body)?;
    let delivery = match request.delivery {
        Some(id)
            if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_graphic()) =>
        {
            return Err(Refusal::BadDelivery);
        }
        Some(id) => id.to_owned(),
        None => format!("sha256:{}", hex::encode(Sha256::digest(body))),
    };
    if seen(&delivery) {
        return Err(Refusal::Replay { delivery });
    }
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| Refusal::BadJson {
        reason: e.to_string(),
    })?;
    let github = match request.event {
        Some("ping") => return Ok(WebhookOutcome::Ping { delivery }),
        Some("push") => true,
        Some(other) => {
            return Err(Refusal::NotAPush {
                event: truncate(other),
            });
        }
        None => json.get("ref").is_some(),
    };
    let (branch, commit) = if github {
        push_event(json, &config.branch)?
    } else {
        generic(json)?
    };
    if branch != config.branch {
        return Err(Refusal::OtherBranch {
            pushed: truncate(&branch),
            expected: config.branch.clone(),
        });
    }
    let hex_id = (7..=64).contains(&commit.len()) && commit.chars().all(|c| c.is_ascii_hexdigit());
    if !hex_id {
        return Err(Refusal::BadCommit {
            commit: truncate(&commit),
        });
    }
    Ok(WebhookOutcome::Deploy(Trigger {
        branch,
        commit,
        delivery,
    }))
}

/// Constant-time comparison of `sha256=<hex>` with HMAC-SHA256(secret, body).
fn check_signature(secret: &[u8], header: &str, body: &[u8]) -> Result<(), Refusal> {
    let hex_sig = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(Refusal::BadSignature)?;
    let sig = hex::decode(hex_sig).map_err(|_| Refusal::BadSignature)?;
    // HMAC accepts keys of any length, so this cannot fail; refuse rather than panic anyway.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| Refusal::BadSignature)?;
    mac.update(body);
    mac.verify_slice(&sig).map_err(|_| Refusal::BadSignature)
}

/// The `X-Hub-Signature-256` value for `body` (for CI scripts and tests).
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length: new_from_slice never fails for Hmac<Sha256>.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn push_event(json: serde_json::Value, expected: &str) -> Result<(String, String), Refusal> {
    #[derive(Deserialize)]
    struct Push {
        #[serde(rename = "ref")]
        git_ref: String,
        after: String,
        #[serde(default)]
        deleted: bool,
    }
    let push: Push = serde_json::from_value(json).map_err(|e| Refusal::BadJson {
        reason: e.to_string(),
    })?;
    let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else {
        return Err(Refusal::OtherBranch {
            pushed: truncate(&push.git_ref),
            expected: expected.to_owned(),
        });
    };
    if push.deleted || push.after.bytes().all(|b| b == b'0') {
        return Err(Refusal::BranchDeleted);
    }
    Ok((branch.to_owned(), push.after))
}

fn generic(json: serde_json::Value) -> Result<(String, String), Refusal> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Generic {
        branch: String,
        commit: String,
        /// Optional nonce so the same commit can be redeployed (the body hash is the delivery id).
        #[serde(default)]
        #[allow(dead_code)]
        id: Option<String>,
    }
    let g: Generic = serde_json::from_value(json).map_err(|e| Refusal::BadJson {
        reason: format!(
            "{e} (expected {{\"branch\": \"...\", \"commit\": \"...\"}} or a GitHub push event)"
        ),
    })?;
    Ok((g.branch, g.commit))
}

/// Caps attacker-chosen text echoed in messages and logs.
fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Secret;
    use std::collections::HashSet;

    const SECRET: &str = "s3cret-s3cret-s3cret";
    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn config() -> WebhookConfig {
        WebhookConfig {
            secret: Secret::new(SECRET),
            branch: "main".into(),
            max_body_bytes: 64 * 1024,
        }
    }

    fn push(branch: &str) -> Vec<u8> {
        serde_json::json!({"ref": format!("refs/heads/{branch}"), "before": "0".repeat(40), "after": SHA,
            "repository": {"full_name": "acme/app"}, "commits": []})
        .to_string()
        .into_bytes()
    }

    fn check(
        sig: Option<&str>,
        delivery: Option<&str>,
        event: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookOutcome, Refusal> {
        let seen: HashSet<String> = ["old-delivery".to_owned()].into();
        verify(
            &config(),
            &WebhookRequest {
                signature: sig,
                delivery,
                event,
                body,
            },
            |id| seen.contains(id),
        )
    }

    fn signed(
        delivery: Option<&str>,
        event: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookOutcome, Refusal> {
        check(Some(&sign(SECRET, body)), delivery, event, body)
    }

    #[test]
    fn a_signed_push_to_the_branch_deploys() {
        let out = signed(Some("d-1"), Some("push"), &push("main")).unwrap();
        assert_eq!(
            out,
            WebhookOutcome::Deploy(Trigger {
                branch: "main".into(),
                commit: SHA.into(),
                delivery: "d-1".into()
            })
        );
    }

    #[test]
    fn a_generic_body_deploys_with_the_body_hash_as_delivery() {
        let body = format!(r#"{{"branch":"main","commit":"{SHA}"}}"#);
        let WebhookOutcome::Deploy(t) = signed(None, None, body.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!((t.branch.as_str(), t.commit.as_str()), ("main", SHA));
        assert_eq!(
            t.delivery,
            format!("sha256:{}", hex::encode(Sha256::digest(body.as_bytes())))
        );
        // Same body again: a replay once the caller has recorded it.
        let r = verify(
            &config(),
            &WebhookRequest {
                signature: Some(&sign(SECRET, body.as_bytes())),
                body: body.as_bytes(),
                ..Default::default()
            },
            |id| id == t.delivery,
        );
        assert!(matches!(r, Err(Refusal::Replay { .. })));
    }

    #[test]
    fn signature_refusals_are_401() {
        let body = push("main");
        let missing = check(None, Some("d"), Some("push"), &body).unwrap_err();
        assert_eq!(
            (missing.clone(), missing.status()),
            (Refusal::MissingSignature, 401)
        );
        let other_key = sign("another-secret-value!", &body);
        for bad in [
            other_key.as_str(),
            "sha256=zz",
            "sha1=abcd",
            "",
            "sha256=",
            &sign(SECRET, b"other body"),
        ] {
            let e = check(Some(bad), Some("d"), Some("push"), &body).unwrap_err();
            assert_eq!(
                (e.clone(), e.status()),
                (Refusal::BadSignature, 401),
                "{bad:?}"
            );
        }
        let mut tampered = body.clone();
        tampered[3] ^= 1;
        assert_eq!(
            check(
                Some(&sign(SECRET, &body)),
                Some("d"),
                Some("push"),
                &tampered
            ),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn other_refusals_have_their_4xx() {
        let e = signed(Some("d"), Some("push"), &push("dev")).unwrap_err();
        assert_eq!(e.status(), 422);
        assert_eq!(
            e.to_string(),
            "ref \"dev\" is not the deploy branch \"main\""
        );
        assert_eq!(
            signed(Some("old-delivery"), Some("push"), &push("main"))
                .unwrap_err()
                .status(),
            409
        );
        assert_eq!(
            signed(Some("d"), Some("push"), b"{not json")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            signed(Some("d"), None, br#"{"branch":"main"}"#)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            signed(Some("bad id"), Some("push"), &push("main")).unwrap_err(),
            Refusal::BadDelivery
        );
        assert_eq!(
            signed(Some("d"), Some("issues"), b"{}")
                .unwrap_err()
                .status(),
            422
        );
        let tag = br#"{"ref":"refs/tags/main","after":"0123456789abcdef"}"#;
        assert!(matches!(
            signed(Some("d"), Some("push"), tag),
            Err(Refusal::OtherBranch { .. })
        ));
        let deleted = format!(
            r#"{{"ref":"refs/heads/main","after":"{}","deleted":true}}"#,
            "0".repeat(40)
        );
        assert_eq!(
            signed(Some("d"), Some("push"), deleted.as_bytes()),
            Err(Refusal::BranchDeleted)
        );
        let evil = br#"{"branch":"main","commit":"$(reboot)"}"#;
        assert!(matches!(
            signed(Some("d"), None, evil),
            Err(Refusal::BadCommit { .. })
        ));
    }

    #[test]
    fn a_large_body_is_refused_before_anything_else() {
        let body = vec![b'x'; 10 * 1024 * 1024];
        let e = check(None, None, None, &body).unwrap_err();
        assert_eq!(
            e,
            Refusal::TooLarge {
                size: body.len(),
                limit: 64 * 1024
            }
        );
        assert_eq!(e.status(), 413);
    }

    #[test]
    fn an_unsigned_request_never_reaches_the_replay_check() {
        let e = check(
            Some("sha256=00"),
            Some("old-delivery"),
            Some("push"),
            &push("main"),
        )
        .unwrap_err();
        assert_eq!(e, Refusal::BadSignature);
    }

    #[test]
    fn ping_is_genuine_but_does_not_deploy() {
        let out = signed(
            Some("p-1"),
            Some("ping"),
            br#"{"zen":"Keep it logically awesome."}"#,
        )
        .unwrap();
        assert_eq!(
            out,
            WebhookOutcome::Ping {
                delivery: "p-1".into()
            }
        );
    }

    #[test]
    fn refusals_never_contain_the_secret() {
        let body = push("main");
        let cases = [
            check(None, None, None, &body),
            check(Some(&sign("wrong", &body)), None, None, &body),
            signed(Some("d"), Some("push"), &push("dev")),
            signed(Some("d"), None, b"garbage"),
        ];
        for r in cases {
            let e = r.unwrap_err();
            assert!(!format!("{e} {e:?}").contains(SECRET), "{e:?}");
        }
        assert!(!format!("{:?}", config()).contains(SECRET));
    }
}
