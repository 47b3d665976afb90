//! One host to deploy to: parsed from a config `hosts` entry (`host`, `host:port`, `[v6]:port`) or taken from
//! the fleet, and refused when it could smuggle ssh options or shell syntax.

/// A `hosts` entry that is not a host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("host {entry:?}: {why}")]
pub struct BadHost {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub why: String,
}

/// One host to deploy to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Name shown in output and substituted for `{name}` (the instance name for the fleet).
    pub name: String,
    /// Hostname or IP address SSH connects to (IPv6 without brackets).
    pub address: String,
    /// SSH port, if not the default from ssh_config.
    pub port: Option<u16>,
    /// The cloud instance's id when the host comes from the fleet (what an `elb` balancer registers).
    pub instance_id: Option<String>,
}

impl Target {
    /// Parses `host`, `host:port`, `[v6]:port` or a bare IPv6 address (a config `hosts` entry).
    pub fn parse(entry: &str) -> Result<Target, BadHost> {
        let bad = |why: &str| BadHost {
            entry: entry.to_string(),
            why: why.to_string(),
        };
        let (address, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (addr, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            match after {
                "" => (addr, None),
                _ => (
                    addr,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("expected ':' after ']'"))?,
                    ),
                ),
            }
        } else if entry.matches(':').count() > 1 {
            (entry, None)
        } else {
            match entry.split_once(':') {
                Some((a, p)) => (a, Some(p)),
                None => (entry, None),
            }
        };
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("port must be 1-65535"))?,
            ),
            None => None,
        };
        if let Some(why) = address_problem(address) {
            return Err(bad(why));
        }
        let mut target = Target {
            name: String::new(),
            address: address.to_owned(),
            port,
            instance_id: None,
        };
        target.name = target.host();
        Ok(target)
    }

    /// A fleet instance: its name and its IP address (SSH port from ssh_config).
    pub fn fleet(name: impl Into<String>, address: impl Into<String>) -> Target {
        Target {
            name: name.into(),
            address: address.into(),
            port: None,
            instance_id: None,
        }
    }

    /// The same host, known to the cloud as instance `id`.
    pub fn with_instance_id(mut self, id: impl Into<String>) -> Target {
        self.instance_id = Some(id.into());
        self
    }

    /// The host as a balancer sees it: the fleet instance (by id), or for a listed host its address as the id
    /// (an `elb` target group of type `ip`; a `command` balancer gets `{id}` = `{address}`).
    pub fn as_instance(&self) -> crate::cloud::Instance {
        crate::cloud::Instance {
            id: self
                .instance_id
                .clone()
                .unwrap_or_else(|| self.address.clone()),
            name: self.name.clone(),
            state: crate::cloud::State::Running,
            launched_at: std::time::SystemTime::UNIX_EPOCH,
            private_address: Some(self.address.clone()),
            public_address: None,
            port: None,
        }
    }

    /// `address` or `address:port` (`[v6]:port`): what `{host}` becomes.
    pub fn host(&self) -> String {
        match (self.port, self.address.contains(':')) {
            (None, _) => self.address.clone(),
            (Some(p), false) => format!("{}:{p}", self.address),
            (Some(p), true) => format!("[{}]:{p}", self.address),
        }
    }

    /// The address as it goes into a URL (`[v6]` bracketed).
    pub(super) fn url_address(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]", self.address)
        } else {
            self.address.clone()
        }
    }
}

/// What is wrong with an address, if anything: it must not be able to smuggle ssh options or shell syntax.
pub(super) fn address_problem(address: &str) -> Option<&'static str> {
    if address.is_empty() {
        Some("empty address")
    } else if address.starts_with('-') {
        Some("an address cannot start with '-'")
    } else if !address
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        Some("only letters, digits, '.', '-', '_' and ':' are allowed")
    } else {
        None
    }
}
