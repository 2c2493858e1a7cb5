//! Active health checks: for each cluster with a `health_check`, one worker (the
//! cluster's index modulo the worker count) probes its endpoints on schedule and
//! writes each endpoint's shared health flag, which every worker's balancer reads.
//! Probes are TCP connects or HTTP GETs with an expected status.

use crate::policy;
use crate::resilience::health::{Health, HealthChecker};
use crate::state::Worker;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use ringmesh_api::snapshot::{HealthCheckKind, HealthCheckSpec, StableId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// One checked cluster on the worker that owns its checks.
struct Checked {
    spec: HealthCheckSpec,
    name: String,
    endpoints: Vec<(StableId, SocketAddr)>,
    checker: Rc<RefCell<HealthChecker>>,
}

/// Per-worker: the clusters this worker checks, keyed by cluster id, rebuilt when
/// the table changes (keeping each endpoint's state by stable id).
#[derive(Default)]
pub struct HealthChecks {
    epoch: u64,
    clusters: HashMap<StableId, Checked>,
}

impl HealthChecks {
    /// Start the probes that are due; called from the worker's tick.
    pub fn tick(&mut self, worker: &Rc<Worker>) {
        let table = worker.table();
        if table.table.epoch != self.epoch {
            self.rebuild(worker, &table);
        }
        let now = Instant::now();
        for (cluster_id, checked) in &self.clusters {
            let due: Vec<usize> = checked.checker.borrow().due(now).collect();
            for index in due {
                let Some(&(endpoint_id, addr)) = checked.endpoints.get(index) else {
                    continue;
                };
                checked.checker.borrow_mut().begin(index);
                let checker = checked.checker.clone();
                let spec = checked.spec.clone();
                let worker = worker.clone();
                let cluster = *cluster_id;
                let name = checked.name.clone();
                monoio::spawn(async move {
                    let healthy = probe(&spec, addr).await;
                    let transition = checker.borrow_mut().record(index, healthy, Instant::now());
                    if !healthy {
                        worker.count_health_failure(cluster);
                    }
                    if let Some(transition) = transition {
                        let up = transition.to == Health::Healthy;
                        worker
                            .shared
                            .health_flag(endpoint_id)
                            .store(up, Ordering::Relaxed);
                        tracing::warn!(cluster = %name, endpoint = %addr, healthy = up, "health check changed endpoint state");
                    }
                });
            }
        }
    }

    fn rebuild(&mut self, worker: &Rc<Worker>, table: &crate::state::WorkerTable) {
        self.epoch = table.table.epoch;
        let workers = worker.shared.workers().max(1);
        let mut next = HashMap::new();
        for (index, cluster) in table.table.clusters.iter().enumerate() {
            let Some(spec) = &cluster.health_check else {
                continue;
            };
            if index % workers != worker.index {
                continue;
            }
            let endpoints: Vec<(StableId, SocketAddr)> =
                cluster.endpoints.iter().map(|e| (e.id, e.addr)).collect();
            let config = policy::health_config(spec);
            let now = Instant::now();
            let checker = match self.clusters.get(&cluster.id) {
                Some(old) => {
                    let previous = |i: usize| {
                        let id = endpoints.get(i)?.0;
                        old.endpoints.iter().position(|(old_id, _)| *old_id == id)
                    };
                    let rebuilt =
                        old.checker
                            .borrow()
                            .rebuild(config, endpoints.len(), previous, now);
                    rebuilt
                }
                None => HealthChecker::new(config, endpoints.len(), now, worker.random()),
            };
            next.insert(
                cluster.id,
                Checked {
                    spec: spec.clone(),
                    name: cluster.name.clone(),
                    endpoints,
                    checker: Rc::new(RefCell::new(checker)),
                },
            );
        }
        self.clusters = next;
    }
}

/// One probe: a TCP connect, or an HTTP/1.1 GET whose status must match.
async fn probe(spec: &HealthCheckSpec, addr: SocketAddr) -> bool {
    let timeout = Duration::from_millis(spec.timeout_ms.max(1));
    let attempt = async {
        let mut stream = TcpStream::connect_addr(addr).await.ok()?;
        let (path, expect) = match &spec.kind {
            HealthCheckKind::Tcp => return Some(true),
            HealthCheckKind::Http {
                path,
                expect_status,
            } => (path, *expect_status),
        };
        let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nuser-agent: ringmesh-health\r\nconnection: close\r\n\r\n");
        let (written, _) = stream.write_all(request.into_bytes()).await;
        written.ok()?;
        // The status line is all we need: "HTTP/1.1 200 ...".
        let mut head = Vec::with_capacity(512);
        while head.len() < 12 {
            let spare = std::mem::take(&mut head);
            let filled = spare.len();
            let (read, returned) = stream
                .read(monoio::buf::IoBufMut::slice_mut(spare, filled..512))
                .await;
            head = returned.into_inner();
            if read.ok()? == 0 {
                return Some(false);
            }
        }
        let status = std::str::from_utf8(head.get(9..12)?)
            .ok()?
            .parse::<u16>()
            .ok()?;
        Some(status == expect)
    };
    matches!(
        monoio::time::timeout(timeout, attempt).await,
        Ok(Some(true))
    )
}
