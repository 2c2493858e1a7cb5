//! A worker thread: its accept loops (one `SO_REUSEPORT` socket per listener), the
//! connections they spawn, and its drain. Nothing here is shared with other workers
//! except the published table and the drain flag.

use crate::state::{Shared, Worker};
use crate::table::ListenerMode;
use monoio::io::{CancelHandle, Canceller};
use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a worker looks for a new table or a drain while idle.
const TICK: Duration = Duration::from_millis(10);
/// Idle pooled connections are checked for expiry every 10 ticks (100 ms).
const SWEEP_EVERY_TICKS: u64 = 10;

pub struct WorkerPlan {
    pub index: usize,
    pub driver: crate::driver::DriverKind,
    pub shared: Arc<Shared>,
    /// (listener name, this worker's socket)
    pub sockets: Vec<(String, TcpListener)>,
    pub drain_timeout: Duration,
    pub access_log: Option<Arc<crate::access_log::Sink>>,
    /// This worker's end of its nudge pair (see `nudge`).
    pub nudge: Option<std::os::unix::net::UnixStream>,
    /// Told once this worker's runtime runs and its listeners are registered.
    pub started: crossbeam_channel::Sender<usize>,
}

pub async fn run(plan: WorkerPlan) {
    let access_log = crate::access_log::WorkerLog::new(plan.access_log);
    let worker = Worker::new(plan.index, plan.driver, plan.shared, access_log);
    if let Some(socket) = plan.nudge {
        monoio::spawn(crate::nudge::adopt_on_nudge(
            worker.clone(),
            plan.driver,
            socket,
        ));
    }
    let canceller = Rc::new(RefCell::new(Canceller::new()));
    let mut accepting = Vec::new();
    for (name, socket) in plan.sockets {
        // A plain descriptor for the same socket, closed synchronously after the
        // drain (without one, the drain falls back on the driver's close).
        let stopper = socket
            .try_clone()
            .inspect_err(|err| tracing::warn!(listener = %name, error = %err, "cannot duplicate listener socket"))
            .ok();
        match monoio::net::TcpListener::from_std(socket) {
            Ok(listener) => {
                let handle = canceller.borrow().handle();
                accepting.push(monoio::spawn(accept_loop(
                    worker.clone(),
                    name,
                    listener,
                    stopper,
                    handle,
                )));
            }
            Err(err) => {
                tracing::error!(listener = %name, error = %err, "cannot register listener with the driver")
            }
        }
    }
    let _ = plan.started.send(plan.index);
    let mut ticks: u64 = 0;
    let mut health_checks = crate::health_check::HealthChecks::default();
    loop {
        monoio::time::sleep(TICK).await;
        ticks += 1;
        worker.access_log.hand_over();
        if ticks.is_multiple_of(SWEEP_EVERY_TICKS) {
            worker.expire_idle_connections();
        }
        if !worker.draining.get() {
            health_checks.tick(&worker);
        }
        // Adopt a new table even without traffic, so the swap is acknowledged
        // (normally a nudge did already: this is the fallback).
        let _ = worker.table();
        if !worker.draining.get() && worker.shared.draining() {
            worker.draining.set(true);
            worker
                .drain_deadline
                .set(Some(Instant::now() + plan.drain_timeout));
            // Wakes every pending accept and every idle keep-alive read.
            let old = std::mem::take(&mut *canceller.borrow_mut());
            let _ = old.cancel();
        }
        if worker.draining.get() {
            let expired = worker
                .drain_deadline
                .get()
                .is_some_and(|at| Instant::now() >= at);
            if worker.active_connections.get() == 0 || expired {
                if expired {
                    tracing::warn!(
                        worker = worker.index,
                        open = worker.active_connections.get(),
                        "drain deadline passed"
                    );
                }
                break;
            }
        }
    }
    for task in accepting {
        task.await;
    }
    worker.access_log.hand_over();
}

async fn accept_loop(
    worker: Rc<Worker>,
    name: String,
    listener: monoio::net::TcpListener,
    stopper: Option<std::net::TcpListener>,
    cancel: CancelHandle,
) {
    loop {
        if worker.draining.get() {
            break;
        }
        match listener.cancelable_accept(cancel.clone()).await {
            Ok((stream, peer)) => admit(&worker, &name, stream, peer, &cancel),
            Err(err) => {
                if worker.draining.get() {
                    break;
                }
                // Out of descriptors and similar: back off instead of spinning.
                tracing::warn!(listener = %name, error = %err, "accept failed");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // Dropping the listener would close the socket through an io_uring op that
    // is only submitted on the ring's next turn; a worker with nothing left to
    // drain may exit first, and the socket would go on completing handshakes that
    // nobody accepts. shutdown(2) takes it out of LISTEN now (queued connections
    // are reset), so new connections are refused the moment the drain starts.
    if let Some(stopper) = &stopper {
        if let Err(err) = socket2::SockRef::from(stopper).shutdown(std::net::Shutdown::Both) {
            tracing::debug!(listener = %name, error = %err, "shutdown of the listening socket");
        }
    }
}

fn admit(
    worker: &Rc<Worker>,
    name: &str,
    stream: monoio::net::TcpStream,
    peer: SocketAddr,
    cancel: &CancelHandle,
) {
    let table = worker.table();
    let Some(index) = table.listener_index(name) else {
        return;
    };
    let (Some(listener), Some(stats)) = (
        table.table.listeners.get(index),
        table.listener_stats.get(index),
    ) else {
        return;
    };
    if stats.connections_active.get() >= i64::from(listener.max_connections) {
        stats.connections_rejected.inc();
        return;
    }
    if matches!(listener.mode, ListenerMode::Tcp(_))
        && !table.admit_connection(index, Instant::now())
    {
        stats.rate_limited.inc();
        return;
    }
    stats.connections.inc();
    let guard = ConnectionGuard::new(worker.clone(), stats.clone());
    let worker = worker.clone();
    let cancel = cancel.clone();
    monoio::spawn(async move {
        crate::accept::start(worker, table, index, stream, peer, cancel).await;
        drop(guard);
    });
}

/// Counts a connection as open for as long as its task lives.
struct ConnectionGuard {
    worker: Rc<Worker>,
    stats: Arc<crate::metrics::ListenerStats>,
}

impl ConnectionGuard {
    fn new(worker: Rc<Worker>, stats: Arc<crate::metrics::ListenerStats>) -> Self {
        worker
            .active_connections
            .set(worker.active_connections.get() + 1);
        stats.connections_active.inc();
        ConnectionGuard { worker, stats }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.worker
            .active_connections
            .set(self.worker.active_connections.get().saturating_sub(1));
        self.stats.connections_active.dec();
    }
}
