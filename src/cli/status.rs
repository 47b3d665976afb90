//! `tend status`: one screen from a running daemon's JSON API: monitors up and down (and which are down), the
//! fleet and the last scaling decision, the last release, the cluster's leader ("single replica" when the daemon
//! has no cluster). Exit 1 when a monitor is down or the daemon cannot be reached.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tend::config::Config;

use super::Status;

/// Time one API call may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Down monitors listed by name.
const DOWN_LISTED: usize = 20;

/// The flags of `tend status`.
#[derive(clap::Args)]
pub struct Args {
    /// The daemon's address [default: http:// and the config's [web] listen].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Print what was gathered as one JSON object.
    #[arg(long)]
    json: bool,
}

/// What the daemon's API answered; `None` where the daemon serves no such part (404).
#[derive(Debug, Default, serde::Serialize)]
struct Gathered {
    url: String,
    monitors: Option<Monitors>,
    fleet: Option<Value>,
    release: Option<Value>,
    cluster: Option<Value>,
}

#[derive(Debug, Default, serde::Serialize)]
struct Monitors {
    total: u64,
    up: u64,
    down: u64,
    /// The first down targets: name and reason.
    down_targets: Vec<(String, String)>,
}

/// Reads the daemon's API and prints one screen.
pub async fn run(config: Config, args: Args) -> anyhow::Result<Status> {
    let url = args
        .url
        .unwrap_or_else(|| default_url(config.web.listen))
        .trim_end_matches('/')
        .to_owned();
    let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
    let gathered = match gather(&client, &url).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("tend at {url}: unreachable: {}", tend::core::chain(&e));
            return Ok(Status::Unhealthy);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&gathered)?);
    } else {
        print!("{}", screen(&gathered));
    }
    Ok(Status::failed_if(down(&gathered)))
}

/// `http://` + the listen address, an unspecified address (0.0.0.0, ::) asked on loopback.
fn default_url(listen: SocketAddr) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

/// GET `url`: the JSON, or `None` on 404 (the daemon does not run that part).
async fn get(client: &reqwest::Client, url: &str) -> Result<Option<Value>, reqwest::Error> {
    let response = client.get(url).send().await?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    Ok(Some(response.error_for_status()?.json().await?))
}

async fn gather(client: &reqwest::Client, url: &str) -> Result<Gathered, reqwest::Error> {
    let total = |v: &Option<Value>| v.as_ref().and_then(|v| v["total"].as_u64()).unwrap_or(0);
    let all = get(client, &format!("{url}/api/monitors?per_page=1")).await?;
    let monitors = match all {
        None => None,
        Some(all) => {
            let up = get(client, &format!("{url}/api/monitors?state=up&per_page=1")).await?;
            let down = get(
                client,
                &format!("{url}/api/monitors?state=down&per_page={DOWN_LISTED}"),
            )
            .await?;
            let down_targets = down
                .as_ref()
                .and_then(|d| d["targets"].as_array())
                .map(|targets| {
                    targets
                        .iter()
                        .map(|t| {
                            let text = |k: &str| t[k].as_str().unwrap_or("").to_owned();
                            (text("name"), text("reason"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(Monitors {
                total: total(&Some(all)),
                up: total(&up),
                down: total(&down),
                down_targets,
            })
        }
    };
    let fleet = get(client, &format!("{url}/api/fleet")).await?;
    let releases = get(client, &format!("{url}/api/releases?limit=1")).await?;
    let cluster = get(client, &format!("{url}/api/cluster")).await?;
    Ok(Gathered {
        url: url.to_owned(),
        monitors,
        fleet: fleet.map(|f| f["cycle"].clone()),
        release: releases.map(|r| r["releases"][0].clone()),
        cluster,
    })
}

/// Whether anything is down.
fn down(g: &Gathered) -> bool {
    g.monitors.as_ref().is_some_and(|m| m.down > 0)
}

/// The screen: one block per part.
fn screen(g: &Gathered) -> String {
    let mut out = format!("tend at {}\n", g.url);
    let _ = match &g.monitors {
        None => writeln!(out, "Monitors:  not running"),
        Some(m) => {
            let unknown = m.total.saturating_sub(m.up + m.down);
            let _ = writeln!(
                out,
                "Monitors:  {} up, {} down, {unknown} unknown",
                m.up, m.down
            );
            for (name, reason) in &m.down_targets {
                let _ = writeln!(out, "  DOWN {name}: {reason}");
            }
            if m.down as usize > m.down_targets.len() {
                let _ = writeln!(
                    out,
                    "  … and {} more",
                    m.down as usize - m.down_targets.len()
                );
            }
            Ok(())
        }
    };
    let _ = match &g.fleet {
        None => writeln!(out, "Fleet:     no autoscaler"),
        Some(Value::Null) => writeln!(out, "Fleet:     no scaling cycle yet"),
        Some(c) => {
            let pct = |v: &Value| v.as_f64().map_or("no data".into(), |p| format!("{p:.1}%"));
            writeln!(
                out,
                "Fleet:     {} instance(s), median load {}; last decision {} at {}: {} ({})",
                c["total"],
                pct(&c["median"]),
                c["decision"].as_str().unwrap_or("-"),
                c["at"].as_str().unwrap_or("-"),
                c["reason"].as_str().unwrap_or("-"),
                c["outcome"].as_str().unwrap_or("-"),
            )
        }
    };
    let _ = match &g.release {
        None => writeln!(out, "Release:   no deploys configured"),
        Some(Value::Null) => writeln!(out, "Release:   none yet"),
        Some(r) => {
            let hosts = r["results"].as_array().map_or(0, Vec::len);
            let ok = r["results"]
                .as_array()
                .map_or(0, |a| a.iter().filter(|h| h["result"] == "ok").count());
            let commit: String = r["commit"]
                .as_str()
                .unwrap_or("-")
                .chars()
                .take(12)
                .collect();
            writeln!(
                out,
                "Release:   #{} {commit} {} ({}/{hosts} hosts ok), by {} {}, {}",
                r["id"],
                r["state"].as_str().unwrap_or("-"),
                ok,
                r["trigger"].as_str().unwrap_or("-"),
                r["started_by"].as_str().unwrap_or("-"),
                r["started_at"].as_str().unwrap_or("-"),
            )
        }
    };
    let _ = match &g.cluster {
        None => writeln!(out, "Cluster:   single replica"),
        Some(c) => writeln!(
            out,
            "Cluster:   leader {}, {} member(s), etcd {}",
            c["leader"].as_str().unwrap_or("none"),
            c["members"].as_array().map_or(0, Vec::len),
            c["etcd"].as_str().unwrap_or("-"),
        ),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_screen_shows_each_part_and_what_is_absent() {
        let g = Gathered {
            url: "http://127.0.0.1:8080".into(),
            monitors: Some(Monitors {
                total: 3,
                up: 1,
                down: 1,
                down_targets: vec![("api".into(), "connection refused".into())],
            }),
            fleet: Some(json!({"total": 2, "median": 41.25, "decision": "hold",
                "at": "2025-01-01T00:00:00Z", "reason": "in band", "outcome": "nothing to do"})),
            release: Some(
                json!({"id": 7, "commit": "0123456789abcdef", "state": "succeeded",
                "trigger": "cli", "started_by": "ops@box", "started_at": "2025-01-01T00:00:00Z",
                "results": [{"result": "ok"}, {"result": "FAILED"}]}),
            ),
            cluster: None,
        };
        let s = screen(&g);
        assert!(s.contains("Monitors:  1 up, 1 down, 1 unknown"), "{s}");
        assert!(s.contains("  DOWN api: connection refused"), "{s}");
        assert!(s.contains("median load 41.2%; last decision hold"), "{s}");
        assert!(
            s.contains("#7 0123456789ab succeeded (1/2 hosts ok), by cli ops@box"),
            "{s}"
        );
        assert!(s.contains("Cluster:   single replica"), "{s}");
        assert!(down(&g));
        let quiet = Gathered::default();
        let s = screen(&quiet);
        assert!(
            s.contains("Monitors:  not running") && s.contains("no autoscaler"),
            "{s}"
        );
        assert!(!down(&quiet));
    }

    #[test]
    fn the_default_url_asks_loopback_for_an_unspecified_listen_address() {
        assert_eq!(
            default_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            default_url("[::]:9000".parse().unwrap()),
            "http://[::1]:9000"
        );
        assert_eq!(
            default_url("10.1.2.3:80".parse().unwrap()),
            "http://10.1.2.3:80"
        );
    }
}
