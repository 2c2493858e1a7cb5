//! A worker taking a published table: its own view of it (cluster runtimes carried
//! over by stable id, stats handles, rate-limit buckets, TLS configs), built off
//! the request path when the worker notices a new epoch.

use super::*;

impl Worker {
    /// Build this worker's view of `table`. A cluster the new table shares with the
    /// current one (unchanged spec, same index) keeps its runtime as it is, so a
    /// swap costs this worker in proportion to what changed; a changed cluster is
    /// rebuilt, carrying endpoint state by stable id.
    pub fn adopt(&self, table: Arc<Table>) {
        let started = Instant::now();
        let old = self.current.borrow().clone();
        let workers = self.shared.adopted.len();
        let (clusters, rebuilt) = carry::carry(
            &old.clusters,
            &table.clusters,
            &mut self.endpoints.borrow_mut(),
            carry::Makers {
                // Health flags of new endpoints in one copy-on-write step rather
                // than one copy of the whole map per endpoint.
                prepare: |fresh: &[StableId]| self.shared.ensure_health_flags(fresh),
                endpoint: |spec: &EndpointSpec| {
                    EndpointRuntime::new(spec.id, spec.addr, self.shared.health_flag(spec.id))
                },
                cluster: |index: usize,
                          cluster: &Arc<ClusterTable>,
                          members: Vec<Rc<EndpointRuntime>>,
                          previous: Option<&ClusterRuntime>| {
                    let stats = self.cluster_stats_for(&cluster.name);
                    ClusterRuntime::new(index, cluster, members, stats, previous, workers)
                },
            },
        );
        drop(old);
        let listener_stats = table
            .listeners
            .iter()
            .map(|l| self.listener_stats_for(&l.name))
            .collect();
        let listener_limits = table
            .listeners
            .iter()
            .map(|l| bucket(l.rate_limit.as_ref(), workers))
            .collect();
        let route_limits = table
            .listeners
            .iter()
            .map(|l| match &l.mode {
                // Without any route limit the list stays empty (no route is
                // limited) rather than one empty slot per route on every swap.
                ListenerMode::Http(http) if http.routes.iter().any(|r| r.rate_limit.is_some()) => {
                    http.routes
                        .iter()
                        .map(|r| bucket(r.rate_limit.as_ref(), workers))
                        .collect()
                }
                ListenerMode::Http(_) | ListenerMode::Tcp(_) => Vec::new(),
            })
            .collect();
        let identity = &self.shared.identity;
        let mut previous_resumption = self.server_resumption.take();
        let mut kept_resumption = HashMap::new();
        let server_tls = table
            .listeners
            .iter()
            .map(|l| {
                let resumption = |scope: u64| {
                    let state = previous_resumption.remove(&scope).unwrap_or_else(|| {
                        crate::tls::config::ServerResumption::new(
                            self.shared.ticket_keys_for(scope),
                        )
                    });
                    kept_resumption.insert(scope, state.clone());
                    state
                };
                match setup::server_config(l.tls.as_ref(), l.mesh, identity, resumption) {
                    Some(Ok(config)) => Some(config),
                    Some(Err(err)) => {
                        tracing::error!(listener = %l.name, error = %err, "TLS server config refused");
                        None
                    }
                    None => None,
                }
            })
            .collect();
        *self.server_resumption.borrow_mut() = kept_resumption;
        let client_tls = table
            .clusters
            .iter()
            .map(|c| {
                let tls = c.tls.as_ref()?;
                match setup::client_config(tls, identity, &self.sessions) {
                    Ok(config) => Some(config),
                    Err(err) => {
                        tracing::error!(cluster = %c.name, error = %err, "TLS client config refused");
                        None
                    }
                }
            })
            .collect();
        let policy_stats = table
            .policy_slots
            .iter()
            .map(|(listener, policy)| self.policy_stats_for(listener, policy))
            .collect();
        let epoch = table.epoch;
        *self.current.borrow_mut() = Rc::new(WorkerTable {
            table,
            clusters,
            listener_stats,
            listener_limits,
            route_limits,
            server_tls,
            client_tls,
            policy_stats,
        });
        if let Some(adopted) = self.shared.adopted.get(self.index) {
            adopted.store(epoch, Ordering::Release);
        }
        tracing::debug!(
            worker = self.index,
            epoch,
            clusters_rebuilt = rebuilt,
            adopt_us = started.elapsed().as_micros() as u64,
            "table adopted"
        );
    }

    fn listener_stats_for(&self, name: &str) -> Arc<ListenerStats> {
        self.registered(&self.listener_stats, name.to_string(), |stats| {
            Registration::Listener(name.to_string(), stats)
        })
    }

    fn policy_stats_for(&self, listener: &str, policy: &str) -> Arc<PolicyStats> {
        let key = (listener.to_string(), policy.to_string());
        self.registered(&self.policy_stats, key, |stats| {
            Registration::Policy(listener.to_string(), policy.to_string(), stats)
        })
    }

    fn cluster_stats_for(&self, name: &str) -> Arc<ClusterStats> {
        self.registered(&self.cluster_stats, name.to_string(), |stats| {
            Registration::Cluster(name.to_string(), stats)
        })
    }

    /// The stats kept under `key`, made and registered with the admin thread
    /// the first time: a name keeps its counters across swaps.
    fn registered<K: Eq + std::hash::Hash, S: Default>(
        &self,
        kept: &RefCell<HashMap<K, Arc<S>>>,
        key: K,
        registration: impl FnOnce(Arc<S>) -> Registration,
    ) -> Arc<S> {
        kept.borrow_mut()
            .entry(key)
            .or_insert_with(|| {
                let stats = Arc::new(S::default());
                self.shared.registry.register(registration(stats.clone()));
                stats
            })
            .clone()
    }
}

fn bucket(spec: Option<&RateLimitSpec>, workers: usize) -> Option<RefCell<TokenBucket>> {
    spec.map(|limit| {
        RefCell::new(TokenBucket::for_worker(
            u64::from(limit.requests_per_second),
            u64::from(limit.burst.max(1)),
            workers,
        ))
    })
}
