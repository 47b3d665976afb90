//! `[cluster]`: which etcd to share, under which name and prefix, and how long a lease lasts.
//!
//! Parsing and [`ClusterConfig::validate`] touch nothing but the text; the host name (the default member
//! name) and the TLS files are read when the cluster is joined.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::cluster::keys::valid_member_name;
use crate::core::{Invalid, Secret};

/// `[cluster]`: run as one of several replicas coordinated through etcd.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The etcd client URLs, all of them (`http://10.0.0.1:2379`): the client fails over between them.
    pub etcd: Vec<String>,
    /// This replica's name, unique in the cluster; default: the host name.
    #[serde(default)]
    pub name: Option<String>,
    /// The membership and leadership lease. A replica that is silent this long is gone; a leader stops
    /// acting a margin (max(1 s, lease/5)) before it. At least 2 s.
    #[serde(default = "default_lease", with = "crate::core::duration")]
    pub lease: Duration,
    /// Every key tend writes lives under this prefix, so several tend clusters can share one etcd.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// A label for this replica (e.g. the availability zone), shown with it in `tend cluster`.
    #[serde(default)]
    pub zone: Option<String>,
    /// The URL other replicas and `tend cluster` reach this replica's web server at; default:
    /// `http://` + `[web] listen` (set it when tend listens on 0.0.0.0 or behind a proxy).
    #[serde(default)]
    pub advertise: Option<String>,
    /// etcd user, with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// etcd password, usually `${ETCD_PASSWORD}`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// CA certificate (PEM) that signed etcd's server certificates; needed for `https://` endpoints.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), with `key`, for etcd's client-certificate authentication.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
}

fn default_lease() -> Duration {
    Duration::from_secs(10)
}
fn default_prefix() -> String {
    "/tend".to_string()
}

/// The shortest lease accepted: the margin alone is 1 s.
pub const MIN_LEASE: Duration = Duration::from_secs(2);

impl ClusterConfig {
    /// A config for these endpoints with every default (handy in tests and examples).
    pub fn new(etcd: Vec<String>) -> ClusterConfig {
        ClusterConfig {
            etcd,
            name: None,
            lease: default_lease(),
            prefix: default_prefix(),
            zone: None,
            advertise: None,
            username: None,
            password: None,
            ca: None,
            cert: None,
            key: None,
        }
    }

    /// Every problem of the section, with its key path (`cluster.lease`).
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        if self.etcd.is_empty() {
            out.push(Invalid::new("cluster.etcd", "list at least one etcd URL"));
        }
        let mut https = 0;
        for (i, url) in self.etcd.iter().enumerate() {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                    https += usize::from(u.scheme() == "https");
                }
                Ok(_) => out.push(Invalid::new(
                    format!("cluster.etcd[{i}]"),
                    format!("{url:?} must be an http:// or https:// URL with a host"),
                )),
                Err(e) => out.push(Invalid::new(
                    format!("cluster.etcd[{i}]"),
                    format!("{url:?} is not a URL: {e}"),
                )),
            }
        }
        if https != 0 && https != self.etcd.len() {
            out.push(Invalid::new(
                "cluster.etcd",
                "mixes http:// and https:// endpoints; use one scheme",
            ));
        }
        let tls = self.ca.is_some() || self.cert.is_some() || self.key.is_some();
        if tls && https == 0 && !self.etcd.is_empty() {
            out.push(Invalid::new(
                "cluster.ca",
                "TLS files are set but the etcd endpoints are http://; use https://",
            ));
        }
        if https > 0 && self.ca.is_none() {
            out.push(Invalid::new(
                "cluster.ca",
                "https:// endpoints need the CA certificate that signed etcd's certificates",
            ));
        }
        if self.cert.is_some() != self.key.is_some() {
            out.push(Invalid::new(
                "cluster.cert",
                "set both cert and key, or neither",
            ));
        }
        if self.username.is_some() != self.password.is_some() {
            out.push(Invalid::new(
                "cluster.username",
                "set both username and password, or neither",
            ));
        }
        if let Some(name) = self.name.as_ref().filter(|n| !valid_member_name(n)) {
            out.push(Invalid::new(
                "cluster.name",
                format!("{name:?}: use 1 to 128 of letters, digits, '-', '_', '.'"),
            ));
        }
        if self.lease < MIN_LEASE {
            out.push(Invalid::new(
                "cluster.lease",
                format!(
                    "{} is too short; at least {}",
                    crate::core::duration::exact(self.lease),
                    crate::core::duration::exact(MIN_LEASE)
                ),
            ));
        }
        let p = &self.prefix;
        if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') || p.contains("//") {
            out.push(Invalid::new(
                "cluster.prefix",
                format!("{p:?} must start with '/' and not end with one, like \"/tend\""),
            ));
        }
        if let Some(a) = self
            .advertise
            .as_ref()
            .filter(|a| !(a.starts_with("http://") || a.starts_with("https://")))
        {
            out.push(Invalid::new(
                "cluster.advertise",
                format!("{a:?} must be an http:// or https:// URL"),
            ));
        }
        out
    }

    /// The member name: `name`, or else this machine's host name (read from /proc).
    pub fn member_name(&self) -> Result<String, crate::cluster::ClusterError> {
        if let Some(name) = &self.name {
            return Ok(name.clone());
        }
        let host = crate::core::host::name();
        if host == "unknown" {
            return Err(crate::cluster::ClusterError::Hostname(
                std::io::Error::other("the host name is unknown: set [cluster] name"),
            ));
        }
        Ok(host.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ClusterConfig {
        toml::from_str(text).unwrap()
    }

    fn paths(c: &ClusterConfig) -> Vec<String> {
        c.validate().into_iter().map(|i| i.path).collect()
    }

    #[test]
    fn the_documented_example_parses_with_defaults() {
        let c = parse(
            r#"
            etcd = ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
            name = "tend-a"
            zone = "eu-west-1a"
            "#,
        );
        assert_eq!(c.lease, Duration::from_secs(10));
        assert_eq!(c.prefix, "/tend");
        assert_eq!(c.member_name().unwrap(), "tend-a");
        assert!(c.validate().is_empty(), "{:?}", c.validate());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<ClusterConfig>("etcd = []\nleese = \"5s\"").is_err());
    }

    #[test]
    fn every_problem_at_once() {
        let c = parse(
            r#"
            etcd = ["ftp://x", "not a url"]
            name = "a/b"
            lease = "1s"
            prefix = "tend/"
            username = "u"
            cert = "c.pem"
            "#,
        );
        assert_eq!(
            paths(&c),
            [
                "cluster.etcd[0]",
                "cluster.etcd[1]",
                "cluster.ca",
                "cluster.cert",
                "cluster.username",
                "cluster.name",
                "cluster.lease",
                "cluster.prefix"
            ]
        );
    }

    #[test]
    fn empty_endpoints_and_tls_rules() {
        assert_eq!(paths(&parse("etcd = []")), ["cluster.etcd"]);
        let https = parse(r#"etcd = ["https://e:2379"]"#);
        assert_eq!(paths(&https), ["cluster.ca"]);
        let ok = parse(
            r#"
            etcd = ["https://e:2379"]
            ca = "ca.pem"
            cert = "c.pem"
            key = "k.pem"
            username = "tend"
            password = "secret"
            "#,
        );
        assert!(ok.validate().is_empty(), "{:?}", ok.validate());
        assert_eq!(format!("{:?}", ok.password), "Some(***)");
        let mixed = parse(
            r#"etcd = ["https://a:1", "http://b:2"]
            ca = "ca.pem""#,
        );
        assert_eq!(paths(&mixed), ["cluster.etcd"]);
    }

    #[test]
    fn default_name_is_the_host_name() {
        let c = ClusterConfig::new(vec!["http://127.0.0.1:2379".into()]);
        let name = c.member_name().unwrap();
        assert!(!name.is_empty() && !name.ends_with('\n'));
    }
}
