//! The key layout in etcd: every key tend writes lives under the configured prefix, one sub-folder per use.
//!
//! ```text
//! {prefix}/members/{name}     MemberInfo as JSON, bound to the member's lease
//! {prefix}/election/{lease}   the election's candidate keys (etcd's election API names them)
//! {prefix}/state/{key}        shared JSON state (tracker states, the scaler's memory, deploys: releases,
//!                             the deploy lock, webhook deliveries and requests)
//! {prefix}/claims/{key}       alert claims: held (bound to the claimer's lease) or done (own lease)
//! ```
//! Pure string work, tested without etcd.

use crate::cluster::ClusterError;

/// The keys of one cluster, built from its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The layout under `prefix` ("/tend"; a trailing slash is dropped).
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// `{prefix}/members/`: the range the member watch covers.
    pub fn members(&self) -> String {
        format!("{}/members/", self.prefix)
    }

    /// `{prefix}/members/{name}`.
    pub fn member(&self, name: &str) -> String {
        format!("{}{name}", self.members())
    }

    /// The member name of a key under [`Keys::members`], if it is one.
    pub fn member_name<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.members())
            .filter(|n| !n.is_empty() && !n.contains('/'))
    }

    /// `{prefix}/election`: the election's name (etcd puts candidates under `{name}/`).
    pub fn election(&self) -> String {
        format!("{}/election", self.prefix)
    }

    /// `{prefix}/state/`: the range of shared state.
    pub fn state_root(&self) -> String {
        format!("{}/state/", self.prefix)
    }

    /// `{prefix}/state/{key}` for a valid key.
    pub fn state(&self, key: &str) -> Result<String, ClusterError> {
        check_key(key)?;
        Ok(format!("{}{key}", self.state_root()))
    }

    /// `{prefix}/state/{key_prefix}` for listing; an empty `key_prefix` lists all shared state.
    pub fn state_range(&self, key_prefix: &str) -> Result<String, ClusterError> {
        if !key_prefix.is_empty() {
            check_key(key_prefix)?;
        }
        Ok(format!("{}{key_prefix}", self.state_root()))
    }

    /// The caller's key of a full state key (what `list_json` returns).
    pub fn state_key<'a>(&self, full: &'a str) -> Option<&'a str> {
        full.strip_prefix(&self.state_root())
    }

    /// `{prefix}/claims/{key}` for a valid key.
    pub fn claim(&self, key: &str) -> Result<String, ClusterError> {
        check_key(key)?;
        Ok(format!("{}/claims/{key}", self.prefix))
    }
}

/// A caller's key: not empty, no leading slash, no empty or dot segments, printable.
pub fn check_key(key: &str) -> Result<(), ClusterError> {
    let reason = if key.is_empty() {
        Some("empty")
    } else if key.starts_with('/') {
        Some("starts with '/'")
    } else if key.split('/').any(|s| s == "." || s == "..") {
        Some("has a '.' or '..' segment")
    } else if key.contains("//") {
        Some("has an empty segment")
    } else if key.chars().any(char::is_control) {
        Some("has a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ClusterError::InvalidKey {
            key: key.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A member name: 1 to 128 of letters, digits, `-`, `_`, `.`.
pub fn valid_member_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_under_the_prefix() {
        let k = Keys::new("/tend/");
        assert_eq!(k.members(), "/tend/members/");
        assert_eq!(k.member("tend-a"), "/tend/members/tend-a");
        assert_eq!(k.election(), "/tend/election");
        assert_eq!(
            k.state("monitor/website").unwrap(),
            "/tend/state/monitor/website"
        );
        assert_eq!(k.state_range("").unwrap(), "/tend/state/");
        assert_eq!(k.state_range("monitor/").unwrap(), "/tend/state/monitor/");
        assert_eq!(k.claim("alert:disk").unwrap(), "/tend/claims/alert:disk");
    }

    #[test]
    fn reading_keys_back() {
        let k = Keys::new("/t");
        assert_eq!(k.member_name("/t/members/a"), Some("a"));
        assert_eq!(k.member_name("/t/members/"), None);
        assert_eq!(k.member_name("/t/members/a/b"), None);
        assert_eq!(k.member_name("/t/state/a"), None);
        assert_eq!(k.state_key("/t/state/x/y"), Some("x/y"));
        assert_eq!(k.state_key("/t/claims/x"), None);
    }

    #[test]
    fn prefixes_do_not_bleed_into_each_other() {
        // "/t" and "/tt" are different clusters: every range ends with a slash.
        assert!(
            !Keys::new("/tt")
                .members()
                .starts_with(&Keys::new("/t").members())
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in ["", "/abs", "a//b", "a/../b", "./a", "a\nb"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a/b", "alert:MonitorDown:website", "x.y"] {
            assert!(check_key(good).is_ok(), "{good:?}");
        }
        assert!(Keys::new("/t").state_range("/x").is_err());
    }

    #[test]
    fn member_names() {
        assert!(valid_member_name("tend-a.eu_1"));
        for bad in ["", "a/b", "a b", &"x".repeat(129)] {
            assert!(!valid_member_name(bad), "{bad:?}");
        }
    }
}
