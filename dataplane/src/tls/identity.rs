//! This dataplane's mesh identity: its SVID (served on mesh listeners and presented
//! when originating mTLS) and the trust bundle peers are verified against. Filled
//! from files or from the control process, and swapped in place on rotation so new
//! handshakes use the new certificate while open connections keep theirs.

use super::certs::{CertStore, ClientCertSlot, SniTable};
use super::verify::{shared_bundle, SharedBundle, TrustBundle};
use std::sync::Arc;

/// Shared by every worker; written only by the thread that installs a new SVID.
pub struct MeshIdentity {
    /// Server side: the SVID as the default certificate of mesh listeners.
    pub server: Arc<CertStore>,
    /// Client side: the SVID presented when a cluster asks for mTLS.
    pub client: Arc<ClientCertSlot>,
    /// CAs (and trust domain) peers' SVIDs must chain to.
    pub bundle: SharedBundle,
}

impl MeshIdentity {
    /// No identity yet: mesh listeners and mTLS clusters cannot handshake until one
    /// is installed.
    pub fn empty() -> MeshIdentity {
        MeshIdentity {
            server: CertStore::new(SniTable::new()),
            client: ClientCertSlot::new(None),
            bundle: shared_bundle(TrustBundle::empty()),
        }
    }
}
