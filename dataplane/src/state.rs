//! Process-wide state shared by the workers (the published table, drain flag,
//! adoption acknowledgements) and each worker's own view of the current table,
//! rebuilt on a swap so pools and latency state carry over by stable id.

use crate::balance::{carry, ClusterRuntime, EndpointRuntime};
use crate::bufpool::BufPool;
use crate::driver::DriverKind;
use crate::metrics::{ClusterStats, ListenerStats, PolicyStats, Registration, Registry};
use crate::resilience::rate_limit::TokenBucket;
use crate::table::{ClusterTable, ListenerMode, Table};
use crate::tls::setup;
use arc_swap::ArcSwap;
use ringmesh_api::snapshot::RateLimitSpec;
use ringmesh_api::snapshot::{EndpointSpec, StableId};
use rustls::client::ClientSessionMemoryCache;
use rustls::{ClientConfig, ServerConfig};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What crosses cores: written rarely (a swap, a drain), read by workers at accept
/// and between requests.
pub struct Shared {
    table: ArcSwap<Table>,
    /// Local publish counter, strictly increasing even when a restarted control
    /// process starts its generations again; readable without touching the
    /// table's refcount.
    epoch: AtomicU64,
    /// Generation (as numbered by its source) of `table`.
    generation: AtomicU64,
    draining: AtomicBool,
    /// Generation each worker has adopted, for acknowledging a swap.
    adopted: Vec<AtomicU64>,
    pub registry: Registry,
    /// Health of every endpoint by stable id, written by the worker that checks its
    /// cluster. Grows copy-on-write at table adoption, never on the request path.
    health: ArcSwap<HashMap<StableId, Arc<AtomicBool>>>,
    /// This dataplane's SVID and trust bundle (mesh mTLS), rotated in place.
    pub identity: crate::tls::identity::MeshIdentity,
    /// notAfter (unix seconds) of the installed SVID, from files or from the
    /// control process; 0: none.
    pub mesh_expiry: AtomicI64,
    /// Wakes the workers on publish.
    nudges: crate::nudge::Nudges,
    /// Keys of the edge listeners' TLS session tickets, for every worker, by
    /// resumption scope (`ListenerTlsTable::resumption_scope`).
    ticket_keys: ArcSwap<HashMap<u64, Arc<dyn rustls::server::ProducesTickets>>>,
}

/// Client sessions remembered per worker for TLS resumption to upstreams.
const CLIENT_SESSIONS: usize = 256;

impl Shared {
    pub fn new(table: Table, workers: usize, registry: Registry) -> Self {
        let generation = table.generation;
        let mut table = table;
        table.epoch = 1;
        Shared {
            table: ArcSwap::from_pointee(table),
            epoch: AtomicU64::new(1),
            generation: AtomicU64::new(generation),
            draining: AtomicBool::new(false),
            adopted: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            registry,
            health: ArcSwap::from_pointee(HashMap::new()),
            identity: crate::tls::identity::MeshIdentity::empty(),
            mesh_expiry: AtomicI64::new(0),
            nudges: crate::nudge::Nudges::default(),
            ticket_keys: ArcSwap::from_pointee(HashMap::new()),
        }
        .with_installed_identity()
    }

    /// The ticket keys of resumption scope `scope`, made on first use. Scopes
    /// pile up only when certificate settings change; past a bound they are all
    /// dropped (sessions then start over, nothing worse).
    /// Called while building a table, never per request.
    fn ticket_keys_for(&self, scope: u64) -> Arc<dyn rustls::server::ProducesTickets> {
        const MAX_SCOPES: usize = 1024;
        if let Some(keys) = self.ticket_keys.load().get(&scope) {
            return keys.clone();
        }
        let fresh = crate::tls::config::ticket_keys();
        // Copy-on-write; when two workers race, the first insert wins for both.
        self.ticket_keys.rcu(|all| {
            let mut all = HashMap::clone(all);
            if all.len() >= MAX_SCOPES && !all.contains_key(&scope) {
                all.clear();
            }
            all.entry(scope).or_insert_with(|| fresh.clone());
            all
        });
        self.ticket_keys
            .load()
            .get(&scope)
            .cloned()
            .unwrap_or(fresh)
    }

    /// Wake the workers through `nudges` on every publish.
    pub fn with_nudges(mut self, nudges: crate::nudge::Nudges) -> Self {
        self.nudges = nudges;
        self
    }

    fn with_installed_identity(self) -> Self {
        let table = self.table.load_full();
        self.install_identity(&table);
        self
    }

    /// Install the table's file-based SVID (if it has one) for new handshakes.
    fn install_identity(&self, table: &Table) {
        if let Some(loaded) = &table.mesh_identity {
            self.install_loaded(loaded);
        }
    }

    /// Make a file-based SVID current (from a table or the file watcher).
    pub fn install_loaded(&self, loaded: &setup::LoadedIdentity) {
        match setup::install(&self.identity, loaded) {
            Ok(()) => self
                .mesh_expiry
                .store(loaded.expiry.unwrap_or(0), Ordering::Release),
            Err(err) => {
                tracing::error!(error = %err, "mesh identity from files refused; keeping the current one")
            }
        }
    }

    /// Certificates to export as expiry gauges: the table's plus the mesh SVID.
    pub fn cert_expiries(&self) -> Vec<(String, i64)> {
        let table = self.table.load();
        let mut all = table.cert_expiries.clone();
        let mesh = self.mesh_expiry.load(Ordering::Acquire);
        if mesh != 0 {
            let name = table
                .mesh
                .as_ref()
                .and_then(|m| m.cert.clone())
                .unwrap_or_else(|| "mesh".to_string());
            all.push((name, mesh));
        }
        all
    }

    /// Make `table` current for every worker's next connection or request; returns
    /// the epoch to wait for in `adopted_by_all`. Only the one publishing thread
    /// (signal handler or control client) calls this.
    pub fn publish(&self, mut table: Table) -> u64 {
        let epoch = self.epoch.load(Ordering::Acquire) + 1;
        table.epoch = epoch;
        let generation = table.generation;
        self.install_identity(&table);
        self.table.store(Arc::new(table));
        self.generation.store(generation, Ordering::Release);
        self.epoch.store(epoch, Ordering::Release);
        self.nudges.nudge_all();
        epoch
    }

    /// The source renumbered the table being served (a restarted control process
    /// sent the same table under a new generation): report the new number.
    pub fn renumber(&self, generation: u64) {
        self.generation.store(generation, Ordering::Release);
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Arc<Table> {
        self.table.load_full()
    }

    pub fn start_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The shared health flag of an endpoint (healthy until a check says otherwise).
    pub fn health_flag(&self, id: StableId) -> Arc<AtomicBool> {
        if let Some(flag) = self.health.load().get(&id) {
            return flag.clone();
        }
        let mut created = None;
        self.health.rcu(|flags| {
            let mut flags = HashMap::clone(flags);
            let flag = flags
                .entry(id)
                .or_insert_with(|| Arc::new(AtomicBool::new(true)))
                .clone();
            created = Some(flag);
            flags
        });
        created.unwrap_or_else(|| Arc::new(AtomicBool::new(true)))
    }

    /// Create the health flags of `ids` that do not exist yet, in one
    /// copy-on-write update of the map.
    pub fn ensure_health_flags(&self, ids: &[StableId]) {
        let flags = self.health.load();
        if ids.iter().all(|id| flags.contains_key(id)) {
            return;
        }
        drop(flags);
        self.health.rcu(|flags| {
            let mut flags = HashMap::clone(flags);
            for id in ids {
                flags
                    .entry(*id)
                    .or_insert_with(|| Arc::new(AtomicBool::new(true)));
            }
            flags
        });
    }

    pub fn workers(&self) -> usize {
        self.adopted.len()
    }

    /// Lowest epoch adopted by every worker.
    pub fn adopted_by_all(&self) -> u64 {
        self.adopted
            .iter()
            .map(|g| g.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }
}

/// One worker's view of one table generation.
pub struct WorkerTable {
    pub table: Arc<Table>,
    /// Aligned with `table.clusters`.
    pub clusters: Vec<Rc<ClusterRuntime>>,
    /// Aligned with `table.listeners`.
    pub listener_stats: Vec<Arc<ListenerStats>>,
    /// This worker's share of each listener's rate limit (aligned with listeners).
    pub listener_limits: Vec<Option<RefCell<TokenBucket>>>,
    /// This worker's share of each route's rate limit ([listener][route]); empty
    /// for a listener none of whose routes is limited.
    pub route_limits: Vec<Vec<Option<RefCell<TokenBucket>>>>,
    /// This worker's TLS server config per listener (terminating or mesh).
    pub server_tls: Vec<Option<Arc<ServerConfig>>>,
    /// This worker's TLS client config per cluster (origination).
    pub client_tls: Vec<Option<Arc<ClientConfig>>>,
    /// Authorization counters, aligned with `table.policy_slots`.
    pub policy_stats: Vec<Arc<PolicyStats>>,
}

impl WorkerTable {
    /// Rate limits of the listener and the route: both must have a token.
    pub fn admit_request(&self, listener: usize, route: usize, now: Instant) -> bool {
        let listener_ok = self
            .listener_limits
            .get(listener)
            .and_then(Option::as_ref)
            .is_none_or(|limit| limit.borrow_mut().try_take(now));
        listener_ok
            && self
                .route_limits
                .get(listener)
                .and_then(|routes| routes.get(route))
                .and_then(Option::as_ref)
                .is_none_or(|limit| limit.borrow_mut().try_take(now))
    }

    /// The listener's rate limit alone (new TCP connections).
    pub fn admit_connection(&self, listener: usize, now: Instant) -> bool {
        self.listener_limits
            .get(listener)
            .and_then(Option::as_ref)
            .is_none_or(|limit| limit.borrow_mut().try_take(now))
    }

    pub fn listener_index(&self, name: &str) -> Option<usize> {
        self.table.listeners.iter().position(|l| l.name == name)
    }
}

/// Everything one worker thread owns.
pub struct Worker {
    pub index: usize,
    pub driver: DriverKind,
    pub shared: Arc<Shared>,
    current: RefCell<Rc<WorkerTable>>,
    endpoints: RefCell<HashMap<StableId, Rc<EndpointRuntime>>>,
    listener_stats: RefCell<HashMap<String, Arc<ListenerStats>>>,
    cluster_stats: RefCell<HashMap<String, Arc<ClusterStats>>>,
    policy_stats: RefCell<HashMap<(String, String), Arc<PolicyStats>>>,
    /// TLS sessions to upstreams, shared by this worker's clusters.
    pub sessions: Arc<ClientSessionMemoryCache>,
    /// Resumption at this worker's edge listeners by scope, kept across table
    /// swaps for the scopes still in use.
    server_resumption: RefCell<HashMap<u64, crate::tls::config::ServerResumption>>,
    rng: Cell<u64>,
    request_ids: Cell<u64>,
    /// High half of every request id: differs per worker and per process run.
    request_id_prefix: u64,
    pub buffers: BufPool,
    pub access_log: crate::access_log::WorkerLog,
    pub active_connections: Cell<usize>,
    pub draining: Cell<bool>,
    pub drain_deadline: Cell<Option<Instant>>,
}

impl Worker {
    pub fn new(
        index: usize,
        driver: DriverKind,
        shared: Arc<Shared>,
        access_log: crate::access_log::WorkerLog,
    ) -> Rc<Worker> {
        let table = shared.current();
        let seed = seed_for(index);
        let worker = Rc::new(Worker {
            index,
            driver,
            shared,
            current: RefCell::new(Rc::new(WorkerTable {
                table: table.clone(),
                clusters: Vec::new(),
                listener_stats: Vec::new(),
                listener_limits: Vec::new(),
                route_limits: Vec::new(),
                server_tls: Vec::new(),
                client_tls: Vec::new(),
                policy_stats: Vec::new(),
            })),
            endpoints: RefCell::new(HashMap::new()),
            listener_stats: RefCell::new(HashMap::new()),
            cluster_stats: RefCell::new(HashMap::new()),
            policy_stats: RefCell::new(HashMap::new()),
            sessions: crate::tls::config::session_cache(CLIENT_SESSIONS),
            server_resumption: RefCell::new(HashMap::new()),
            rng: Cell::new(seed),
            request_ids: Cell::new(0),
            request_id_prefix: seed.rotate_left(17) ^ ((index as u64) << 56),
            buffers: BufPool::default(),
            access_log,
            active_connections: Cell::new(0),
            draining: Cell::new(false),
            drain_deadline: Cell::new(None),
        });
        worker.adopt(table);
        worker
    }

    /// The table to serve the next connection or request with; adopts a newer
    /// published generation first.
    pub fn table(&self) -> Rc<WorkerTable> {
        let published = self.shared.epoch();
        let current = self.current.borrow().clone();
        if current.table.epoch == published {
            return current;
        }
        self.adopt(self.shared.current());
        self.current.borrow().clone()
    }

    /// Close pooled upstream connections idle longer than their cluster allows,
    /// so they do not linger when traffic stops.
    pub fn expire_idle_connections(&self) {
        let now = Instant::now();
        let current = self.current.borrow().clone();
        for cluster in &current.clusters {
            for endpoint in &cluster.endpoints {
                endpoint.idle.expire(now, cluster.pool_idle_timeout);
            }
        }
    }

    /// A failed active health check, counted on the cluster's stats.
    pub fn count_health_failure(&self, cluster: StableId) {
        let current = self.current.borrow().clone();
        if let Some(runtime) = current.clusters.iter().find(|c| c.id == cluster) {
            runtime.stats.health_check_failures.inc();
        }
    }

    /// xorshift64*: cheap per-worker randomness for splits and P2C.
    pub fn random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A 32-hex-digit request id unique per process run, without allocating.
    pub fn next_request_id(&self) -> [u8; 32] {
        let counter = self.request_ids.get().wrapping_add(1);
        self.request_ids.set(counter);
        let mut out = [0u8; 32];
        write_hex(&mut out[..16], self.request_id_prefix);
        write_hex(&mut out[16..], counter);
        out
    }
}

fn write_hex(out: &mut [u8], value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 60usize.saturating_sub(i * 4);
        *slot = DIGITS[((value >> shift) & 0xf) as usize];
    }
}

/// Per-process, per-worker seed: different across restarts so request ids do not
/// repeat, without a syscall for randomness.
fn seed_for(index: usize) -> u64 {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5eed);
    let mixed = time
        ^ (u64::from(std::process::id()) << 32)
        ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mixed | 1
}

mod adopt;

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
