//! `tend check-config`: the summary of a valid config (errors are printed by `exit.rs`).

use tend::config::Config;
use tend::core::duration;
use tend::deploy::config::Hosts;

use super::Source;

/// Prints what the config enables, one line per part.
pub fn print_summary(config: &Config, source: &Source) {
    match source {
        Source::File(p) => println!("{}: ok", p.display()),
        Source::Demo => {
            println!("no --config and no ./tend.toml: the embedded demo config is valid")
        }
    }
    println!("  store     {}", config.store.path.display());
    if config.web.enabled {
        println!("  web       http://{}/", config.web.listen);
    } else {
        println!("  web       disabled");
    }
    println!(
        "  log       level {}, alerts from {}, {} context lines",
        config.log.level.as_str(),
        config.log.alert_from.as_str(),
        config.log.context_lines
    );
    if let Some(cloud) = &config.cloud {
        println!(
            "  cloud     provider {}, instances named {}-…",
            format!("{:?}", cloud.provider).to_lowercase(),
            cloud.prefix
        );
    }
    if let Some(scale) = &config.scale {
        let p = &scale.policy;
        println!(
            "  scale     {}..={} instances, add above {}%, remove below {}% predicted, every {}{}",
            p.min,
            p.max,
            p.high,
            p.low,
            duration::exact(p.interval),
            if scale.dry_run { " (dry run)" } else { "" }
        );
    }
    if let Some(m) = &config.monitor {
        println!(
            "  monitor   {} target(s) every {}, down after {} failures",
            m.target.len(),
            duration::exact(m.interval),
            m.failure_threshold
        );
    }
    if let Some(d) = &config.deploy {
        let hosts = match &d.hosts {
            Hosts::Fleet => "the fleet".to_string(),
            Hosts::List(l) => format!("{} host(s)", l.len()),
        };
        let hook = if d.webhook.is_some() {
            ", webhook on /hooks/deploy"
        } else {
            ""
        };
        println!("  deploy    {} step(s) to {hosts}{hook}", d.steps.len());
    }
    if let Some(c) = &config.cluster {
        println!(
            "  cluster   member {} of the etcd at {}, lease {}, keys under {}",
            c.name.as_deref().unwrap_or("(the host name)"),
            c.etcd.join(", "),
            duration::exact(c.lease),
            c.prefix
        );
    }
    let names = config.alert.notifier_names();
    if names.is_empty() {
        println!("  alerts    no notifier: alerts stay in the outbox");
    } else {
        println!(
            "  alerts    {} (dedup window {})",
            names.join(", "),
            duration::exact(config.alert.dedup_window)
        );
    }
}
