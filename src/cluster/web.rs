//! The cluster's web parts: `GET /api/cluster` (this replica's view: its name, the leader, the members and
//! whether etcd answers) and the status page block.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::{Cluster, ClusterStatus};
use crate::web::Section;
use crate::web::page::escape;

/// `GET /api/cluster`: `{"name", "leader", "members": [{"name", "address", "since", "zone"}], "etcd"}`.
pub fn routes(cluster: Cluster) -> Router {
    Router::new()
        .route("/api/cluster", get(status))
        .with_state(cluster)
}

async fn status(State(cluster): State<Cluster>) -> Json<ClusterStatus> {
    Json(cluster.status())
}

/// The status page block: the members, the leader and etcd's health, as this replica sees them.
pub struct ClusterSection(pub Cluster);

impl Section for ClusterSection {
    fn render(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
        Box::pin(async move { html(&self.0.status()) })
    }
}

/// The block's HTML for a status snapshot.
pub fn html(s: &ClusterStatus) -> String {
    let etcd = if s.etcd == "ok" {
        "<span class=\"up\">etcd ok</span>".to_string()
    } else {
        "<span class=\"down\">etcd unreachable: working alone (alerts sent without coordination, no \
         leader work)</span>"
            .to_string()
    };
    let mut out = format!(
        "<section id=\"cluster\"><h2>Cluster</h2><p>{etcd} · leader <strong>{}</strong> · this replica \
         <strong>{}</strong></p><table><thead><tr><th>Member</th><th>Address</th><th>Zone</th><th>Since</th>\
         </tr></thead><tbody>",
        escape(s.leader.as_deref().unwrap_or("none")),
        escape(&s.name),
    );
    for m in &s.members {
        let role = if s.leader.as_deref() == Some(m.name.as_str()) {
            " (leader)"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr><td>{}{role}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&m.name),
            escape(&m.address),
            escape(m.zone.as_deref().unwrap_or("-")),
            escape(&m.since),
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::MemberStatus;

    #[test]
    fn the_block_names_the_leader_and_escapes() {
        let s = ClusterStatus {
            name: "a".into(),
            leader: Some("<b>".into()),
            members: vec![MemberStatus {
                name: "<b>".into(),
                address: "http://b".into(),
                since: "2026-11-29T20:00:00Z".into(),
                zone: None,
            }],
            etcd: "unreachable",
        };
        let h = html(&s);
        assert!(
            h.contains("&lt;b&gt; (leader)") && h.contains("working alone"),
            "{h}"
        );
    }
}
