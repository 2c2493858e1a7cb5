//! Text for `ringmesh-control status` and `check`: pure formatting, no IO.

use ringmesh_api::snapshot::ListenerKind;
use ringmesh_api::wire::ControlStatus;
use ringmesh_api::Snapshot;
use std::fmt::Write;

/// `FILE: ok (N listeners, M routes, K clusters)`, the line `check` prints.
pub fn check_line(file: &str, snapshot: &Snapshot) -> String {
    let routes: usize = snapshot
        .listeners
        .iter()
        .map(|l| match &l.kind {
            ListenerKind::Http(http) => http.routes.len(),
            ListenerKind::Tcp(_) => 0,
        })
        .sum();
    format!(
        "{file}: ok ({} listeners, {routes} routes, {} clusters)",
        snapshot.listeners.len(),
        snapshot.clusters.len()
    )
}

/// The status report: generation, config, last error, then one line per dataplane.
///
/// ```text
/// generation: 3
/// config: /etc/ringmesh/mesh.toml
/// last error: none
/// dataplanes: 2
///   node-a  acked 3         connected 1h02m03s  last nack: -
///   node-b  acked 2 behind  connected 5s        last nack: generation 3: bind failed
/// ```
///
/// When serving as the mesh CA, a column before `last nack` shows each
/// dataplane's SVID: `svid spiffe://td/ns/default/sa/node-a (expires in 11h59m)`.
pub fn format_status(status: &ControlStatus) -> String {
    format_status_at(status, crate::issuer::unix_now())
}

/// [`format_status`] with the current time (unix seconds) given, for SVID expiry.
pub fn format_status_at(status: &ControlStatus, now_unix: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "generation: {}", status.generation);
    let _ = writeln!(out, "config: {}", status.config_path);
    match &status.last_error {
        None => out.push_str("last error: none\n"),
        Some(error) => {
            out.push_str("last error (still serving the generation above):\n");
            for line in error.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    let _ = writeln!(out, "dataplanes: {}", status.dataplanes.len());
    let node_width = status
        .dataplanes
        .iter()
        .map(|d| d.node.chars().count())
        .max()
        .unwrap_or(0);
    let rows: Vec<(String, String)> = status
        .dataplanes
        .iter()
        .map(|d| {
            let acked = match d.acked_generation {
                0 => "acked none".to_string(),
                g if g < status.generation => format!("acked {g} behind"),
                g => format!("acked {g}"),
            };
            (
                acked,
                format!("connected {}", format_duration(d.connected_secs)),
            )
        })
        .collect();
    let acked_width = rows.iter().map(|(a, _)| a.len()).max().unwrap_or(0);
    let connected_width = rows.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
    let any_svid = status.dataplanes.iter().any(|d| d.spiffe_id.is_some());
    let svids: Vec<String> = status
        .dataplanes
        .iter()
        .map(|d| match (any_svid, &d.spiffe_id) {
            (false, _) => String::new(),
            (true, None) => "svid -  ".to_string(),
            (true, Some(id)) => format!(
                "svid {id} ({})  ",
                svid_expiry(d.svid_expires_unix, now_unix)
            ),
        })
        .collect();
    let svid_width = svids.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    for ((d, (acked, connected)), svid) in status.dataplanes.iter().zip(&rows).zip(&svids) {
        let nack = d.last_nack.as_deref().unwrap_or("-");
        let _ = writeln!(
            out,
            "  {:node_width$}  {acked:acked_width$}  {connected:connected_width$}  {svid:svid_width$}last nack: {}",
            d.node,
            nack.replace('\n', " ")
        );
    }
    out
}

/// `expires in 11h59m`, `expired 5s ago`, or `expiry unknown`.
fn svid_expiry(expires_unix: Option<i64>, now_unix: i64) -> String {
    match expires_unix {
        None => "expiry unknown".to_string(),
        Some(at) if at > now_unix => {
            format!("expires in {}", format_duration(at.abs_diff(now_unix)))
        }
        Some(at) => format!("expired {} ago", format_duration(at.abs_diff(now_unix))),
    }
}

/// `45s`, `3m07s`, `1h02m03s`, `2d04h05m`.
pub fn format_duration(secs: u64) -> String {
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d{hours:02}h{minutes:02}m")
    } else if hours > 0 {
        format!("{hours}h{minutes:02}m{seconds:02}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmesh_api::wire::DataplaneStatus;

    #[test]
    fn durations() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(45), "45s");
        assert_eq!(format_duration(187), "3m07s");
        assert_eq!(format_duration(3_723), "1h02m03s");
        assert_eq!(
            format_duration(2 * 86_400 + 4 * 3_600 + 5 * 60 + 9),
            "2d04h05m"
        );
    }

    #[test]
    fn status_with_an_error_and_two_dataplanes() {
        let status = ControlStatus {
            config_path: "/etc/ringmesh/mesh.toml".into(),
            generation: 3,
            last_error: Some(
                "mesh.toml: cluster[0].name: empty\nmesh.toml: listener[1].bind: bad".into(),
            ),
            dataplanes: vec![
                DataplaneStatus {
                    node: "node-a".into(),
                    acked_generation: 3,
                    last_nack: None,
                    connected_secs: 3_723,
                    spiffe_id: None,
                    svid_expires_unix: None,
                    reload_to_ack_us: None,
                },
                DataplaneStatus {
                    node: "b".into(),
                    acked_generation: 2,
                    last_nack: Some("generation 3: bind failed".into()),
                    connected_secs: 5,
                    spiffe_id: None,
                    svid_expires_unix: None,
                    reload_to_ack_us: None,
                },
            ],
        };
        assert_eq!(
            format_status(&status),
            "generation: 3\n\
             config: /etc/ringmesh/mesh.toml\n\
             last error (still serving the generation above):\n\
             \x20 mesh.toml: cluster[0].name: empty\n\
             \x20 mesh.toml: listener[1].bind: bad\n\
             dataplanes: 2\n\
             \x20 node-a  acked 3         connected 1h02m03s  last nack: -\n\
             \x20 b       acked 2 behind  connected 5s        last nack: generation 3: bind failed\n"
        );
    }

    #[test]
    fn svid_column_when_serving_as_the_ca() {
        let row = |node: &str, svid: Option<(&str, i64)>| DataplaneStatus {
            node: node.into(),
            acked_generation: 1,
            last_nack: None,
            connected_secs: 5,
            spiffe_id: svid.map(|(id, _)| id.to_string()),
            svid_expires_unix: svid.map(|(_, at)| at),
            reload_to_ack_us: None,
        };
        let status = ControlStatus {
            config_path: "mesh.toml".into(),
            generation: 1,
            last_error: None,
            dataplanes: vec![
                row("a", Some(("spiffe://td/ns/default/sa/a", 1_000 + 43_140))),
                row("old", None),
                row("c", Some(("spiffe://td/x", 995))),
            ],
        };
        assert_eq!(
            format_status_at(&status, 1_000),
            "generation: 1\nconfig: mesh.toml\nlast error: none\ndataplanes: 3\n\
             \x20 a    acked 1  connected 5s  svid spiffe://td/ns/default/sa/a (expires in 11h59m00s)  last nack: -\n\
             \x20 old  acked 1  connected 5s  svid -                                                   last nack: -\n\
             \x20 c    acked 1  connected 5s  svid spiffe://td/x (expired 5s ago)                      last nack: -\n"
        );
    }

    #[test]
    fn status_with_nothing_connected() {
        let status = ControlStatus {
            config_path: "mesh.toml".into(),
            generation: 1,
            last_error: None,
            dataplanes: vec![],
        };
        assert_eq!(
            format_status(&status),
            "generation: 1\nconfig: mesh.toml\nlast error: none\ndataplanes: 0\n"
        );
    }

    #[test]
    fn check_line_counts_routes_of_http_listeners() {
        let snapshot = ringmesh_api::compile_str(
            "[[listener]]\nname = \"e\"\nbind = \"127.0.0.1:1\"\nprotocol = \"http\"\n\
             [[listener.route]]\nname = \"r\"\npath_prefix = \"/\"\ncluster = \"c\"\n\
             [[cluster]]\nname = \"c\"\nendpoints = [\"127.0.0.1:2\"]\n",
            "mesh.toml",
            1,
        )
        .unwrap();
        assert_eq!(
            check_line("mesh.toml", &snapshot),
            "mesh.toml: ok (1 listeners, 1 routes, 1 clusters)"
        );
    }
}
