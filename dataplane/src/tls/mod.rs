//! TLS building blocks of the dataplane: ClientHello peeking and protocol
//! detection, SPIFFE identities, certificate verification with clear refusal
//! reasons, SNI certificate stores with live rotation, rustls profiles (edge,
//! mesh, origination) and handshakes on monoio sockets.
//!
//! Only rustls with the *ring* provider is used; there is no second TLS stack.
//!
//! | concern | where |
//! |---|---|
//! | SNI/ALPN without terminating, protocol detection | [`clienthello::parse_client_hello`], [`clienthello::detect`] |
//! | SPIFFE IDs, patterns, X.509-SVID leaf rules | [`spiffe::SpiffeId`], [`spiffe::SpiffePattern`], [`spiffe::svid_identity`] |
//! | chain + identity verification, refusal reasons | [`verify::ServerVerifier`], [`verify::ClientVerifier`], [`verify::failure_reason`] |
//! | PEM loading, SNI selection, rotation | [`certs::CertStore`], [`certs::ClientCertSlot`], [`certs::load_certified_key`] |
//! | edge / mesh / origination profiles | [`config::edge_server`], [`config::mesh_server`], [`config::origination_client`] |
//! | handshakes, peer info, replaying peeked bytes | [`stream::accept`], [`stream::connect`], [`stream::Rewind`] |
//! | reading and writing after the handshake (one send per write), L4 split | [`io::TlsStream`] |
//! | snapshot settings → loaded certs, per-worker configs, file identities | [`setup::listener_tls`], [`setup::cluster_tls`], [`setup::load_mesh`], [`setup::install`] |

pub mod certs;
pub mod clienthello;
pub mod config;
pub mod identity;
pub mod io;
pub mod setup;
pub mod spiffe;
pub mod stream;
pub mod verify;
pub mod watch;

#[cfg(test)]
mod testpki;
