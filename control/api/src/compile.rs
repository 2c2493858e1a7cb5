//! Validated config → `Snapshot`: fills in the defaults of docs/config.md and
//! assigns stable ids. Nothing here can fail; every check happened in `validate`.

use crate::defaults as d;
use crate::ids::{cluster_id, endpoint_id};
use crate::snapshot::{
    Balance, ClusterSpec, EndpointSpec, ForwardHeaders, HttpLimits, HttpListenerSpec, ListenerKind,
    ListenerSpec, PoolSpec, RouteSpec, RuntimeSettings, Snapshot, TcpProxySpec,
};
use crate::validated::{
    default_route_name, ValidCluster, ValidConfig, ValidHttp, ValidListener, ValidListenerKind,
};

pub fn compile(config: &ValidConfig, generation: u64) -> Snapshot {
    Snapshot {
        generation,
        runtime: RuntimeSettings {
            workers: config.runtime.workers,
            drain_timeout_ms: config
                .runtime
                .drain_timeout_ms
                .unwrap_or(d::DRAIN_TIMEOUT_MS),
            admin: config.runtime.admin,
        },
        listeners: config.listeners.iter().map(listener).collect(),
        clusters: config.clusters.iter().map(cluster).collect(),
    }
}

fn listener(l: &ValidListener) -> ListenerSpec {
    let kind = match &l.kind {
        ValidListenerKind::Tcp { cluster, splice } => ListenerKind::Tcp(TcpProxySpec {
            cluster: *cluster,
            idle_timeout_ms: l.idle_timeout_ms.unwrap_or(d::TCP_IDLE_TIMEOUT_MS),
            splice: splice.unwrap_or(d::SPLICE),
        }),
        ValidListenerKind::Http(h) => ListenerKind::Http(http(h, l.idle_timeout_ms)),
    };
    ListenerSpec {
        name: l.name.clone(),
        bind: l.bind,
        max_connections: l.max_connections.unwrap_or(d::MAX_CONNECTIONS),
        kind,
    }
}

fn http(h: &ValidHttp, idle_timeout_ms: Option<u64>) -> HttpListenerSpec {
    HttpListenerSpec {
        limits: HttpLimits {
            max_request_line: h.max_request_line.unwrap_or(d::MAX_REQUEST_LINE),
            max_header_bytes: h.max_header_bytes.unwrap_or(d::MAX_HEADER_BYTES),
            max_headers: h.max_headers.unwrap_or(d::MAX_HEADERS),
            header_read_timeout_ms: h
                .header_read_timeout_ms
                .unwrap_or(d::HEADER_READ_TIMEOUT_MS),
            idle_timeout_ms: idle_timeout_ms.unwrap_or(d::HTTP_IDLE_TIMEOUT_MS),
            max_body_bytes: h.max_body_bytes.unwrap_or(d::MAX_BODY_BYTES),
        },
        forwarding: ForwardHeaders {
            x_forwarded_for: h.x_forwarded_for.unwrap_or(d::X_FORWARDED_FOR),
            x_forwarded_proto: h.x_forwarded_proto.unwrap_or(d::X_FORWARDED_PROTO),
            via: h.via.clone().unwrap_or_else(|| Some(d::VIA.to_string())),
            request_id: h.request_id.unwrap_or(d::REQUEST_ID),
        },
        routes: h
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| RouteSpec {
                name: r.name.clone().unwrap_or_else(|| default_route_name(i)),
                matcher: r.matcher.clone(),
                action: r.action.clone(),
                timeout_ms: r.timeout_ms,
                max_body_bytes: r.max_body_bytes,
                request_headers: r.request_headers.clone(),
                response_headers: r.response_headers.clone(),
            })
            .collect(),
    }
}

fn cluster(c: &ValidCluster) -> ClusterSpec {
    ClusterSpec {
        name: c.name.clone(),
        id: cluster_id(&c.name),
        balance: c.balance.unwrap_or(Balance::RoundRobin),
        connect_timeout_ms: c.connect_timeout_ms.unwrap_or(d::CONNECT_TIMEOUT_MS),
        pool: PoolSpec {
            max_idle_per_endpoint: c.max_idle_per_endpoint.unwrap_or(d::MAX_IDLE_PER_ENDPOINT),
            idle_timeout_ms: c.pool_idle_timeout_ms.unwrap_or(d::POOL_IDLE_TIMEOUT_MS),
        },
        endpoints: c
            .endpoints
            .iter()
            .map(|e| EndpointSpec {
                id: endpoint_id(&c.name, &e.addr.to_string()),
                addr: e.addr,
                weight: e.weight.unwrap_or(d::ENDPOINT_WEIGHT),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
