//! Delivering SVIDs to dataplanes: [`SvidIssuer`] holds the CA, the identity
//! mapping and the lifetimes; [`SessionIdentity`] is one dataplane session's
//! schedule (issue right after the first snapshot, then again at half of each
//! SVID's remaining lifetime, or after `--svid-rotate-after` when given).
//!
//! The session's writer thread drives the schedule: it waits for the next
//! snapshot *or* the renewal time, whichever comes first, so snapshots and
//! identities leave on one thread and their frames never interleave.

use crate::ca::{CaError, MeshCa, Svid};
use crate::identities::IdentityMap;
use ringmesh_api::units::parse_duration_us;
use ringmesh_api::wire::{self, KeyPem, Message, ProtocolVersion};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Shortest SVID lifetime accepted: renewal at half of it must leave time to spare.
pub const MIN_SVID_TTL: Duration = Duration::from_secs(60);
/// Default SVID lifetime.
pub const DEFAULT_SVID_TTL: &str = "24h";
/// After a failed issuance, the next attempt comes this long after (or sooner,
/// when the renewal period is shorter).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// Renewals are never closer together than this, even when the CA's own expiry
/// cuts SVID lifetimes short.
const MIN_RENEWAL: Duration = Duration::from_secs(1);

/// Issues SVIDs for every dataplane session of this control process.
pub struct SvidIssuer {
    ca: MeshCa,
    identities: IdentityMap,
    ttl: Duration,
    rotate_after: Option<Duration>,
}

impl std::fmt::Debug for SvidIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SvidIssuer")
            .field("ca", &self.ca)
            .field("identities", &self.identities.len())
            .field("ttl", &self.ttl)
            .field("rotate_after", &self.rotate_after)
            .finish()
    }
}

/// The serve command's CA flags, as typed.
#[derive(Debug, Clone, Default)]
pub struct CaFlags<'a> {
    pub ca_dir: Option<&'a Path>,
    pub trust_domain: Option<&'a str>,
    pub svid_ttl: Option<&'a str>,
    pub identities: Option<&'a Path>,
    pub svid_rotate_after: Option<&'a str>,
}

impl SvidIssuer {
    pub fn new(
        ca: MeshCa,
        identities: IdentityMap,
        ttl: Duration,
        rotate_after: Option<Duration>,
    ) -> Result<SvidIssuer, String> {
        if ttl < MIN_SVID_TTL {
            return Err(format!(
                "--svid-ttl must be at least {}s, not {}s",
                MIN_SVID_TTL.as_secs(),
                ttl.as_secs()
            ));
        }
        if let Some(after) = rotate_after {
            if after.is_zero() || after >= ttl {
                return Err(format!(
                    "--svid-rotate-after ({after:?}) must be more than zero and less than --svid-ttl ({ttl:?})"
                ));
            }
        }
        Ok(SvidIssuer {
            ca,
            identities,
            ttl,
            rotate_after,
        })
    }

    /// Builds the issuer from the serve flags; `Ok(None)` without `--ca-dir`.
    /// Every error names the flag or file it is about.
    pub fn from_flags(flags: &CaFlags<'_>) -> Result<Option<SvidIssuer>, String> {
        let Some(dir) = flags.ca_dir else {
            let stray = [
                (flags.trust_domain.is_some(), "--trust-domain"),
                (flags.svid_ttl.is_some(), "--svid-ttl"),
                (flags.identities.is_some(), "--identities"),
                (flags.svid_rotate_after.is_some(), "--svid-rotate-after"),
            ];
            return match stray.iter().find(|(given, _)| *given) {
                Some((_, flag)) => Err(format!("{flag} needs --ca-dir DIR")),
                None => Ok(None),
            };
        };
        let trust_domain = flags
            .trust_domain
            .ok_or("--ca-dir needs --trust-domain TD (the trust domain the CA was made for)")?;
        let ttl = duration_flag("--svid-ttl", flags.svid_ttl.unwrap_or(DEFAULT_SVID_TTL))?;
        let rotate_after = flags
            .svid_rotate_after
            .map(|text| duration_flag("--svid-rotate-after", text))
            .transpose()?;
        let ca = MeshCa::load(dir, trust_domain).map_err(|err| err.to_string())?;
        let identities = match flags.identities {
            Some(path) => IdentityMap::load(path, trust_domain)?,
            None => IdentityMap::defaults(trust_domain),
        };
        SvidIssuer::new(ca, identities, ttl, rotate_after).map(Some)
    }

    pub fn ca(&self) -> &MeshCa {
        &self.ca
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn identities(&self) -> &IdentityMap {
        &self.identities
    }

    /// The `identity` message carrying a new SVID for `spiffe_id`.
    pub fn issue(&self, spiffe_id: &str) -> Result<(Message, Svid), CaError> {
        let svid = self.ca.issue(spiffe_id, self.ttl)?;
        let message = Message::Identity {
            spiffe_id: svid.spiffe_id.clone(),
            chain_pem: svid.chain_pem.clone(),
            key_pem: KeyPem(svid.key_pem.clone()),
            bundle_pem: self.ca.bundle_pem().to_string(),
            trust_domain: self.ca.trust_domain().to_string(),
            expires_unix: svid.expires_unix,
        };
        Ok((message, svid))
    }

    /// How long after issuing `svid` (at `now_unix`) the next one is due.
    pub fn renew_in(&self, svid: &Svid, now_unix: i64) -> Duration {
        let left = u64::try_from(svid.expires_unix.saturating_sub(now_unix)).unwrap_or(0);
        let half = Duration::from_secs(left) / 2;
        let due = match self.rotate_after {
            Some(after) => after.min(half.max(MIN_RENEWAL)),
            None => half,
        };
        due.max(MIN_RENEWAL)
    }
}

fn duration_flag(flag: &str, text: &str) -> Result<Duration, String> {
    parse_duration_us(text)
        .map(Duration::from_micros)
        .map_err(|err| match err.hint {
            Some(hint) => format!("{flag}: {}; {hint}", err.message),
            None => format!("{flag}: {}", err.message),
        })
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// One dataplane session's SVID schedule.
#[derive(Debug)]
pub struct SessionIdentity {
    issuer: Arc<SvidIssuer>,
    node: String,
    spiffe_id: String,
    due: Instant,
}

/// A newly issued SVID, encoded and ready to write.
#[derive(Debug)]
pub struct Issued {
    pub frame: Vec<u8>,
    pub svid: Svid,
}

impl SessionIdentity {
    /// The schedule for `node`, due at once; `None` (and the reason logged) when
    /// this session gets no identity: no CA, a 1.0 dataplane, or a node name that
    /// cannot become a SPIFFE ID.
    pub fn start(
        issuer: Option<&Arc<SvidIssuer>>,
        node: &str,
        protocol: ProtocolVersion,
    ) -> Option<SessionIdentity> {
        let issuer = issuer?;
        if !protocol.has_identity() {
            tracing::warn!(
                node,
                protocol = %format_args!("{}.{}", protocol.major, protocol.minor),
                "dataplane predates identity messages (protocol 1.1); it gets no SVID"
            );
            return None;
        }
        match issuer.identities.spiffe_id(node) {
            Ok(spiffe_id) => Some(SessionIdentity {
                issuer: Arc::clone(issuer),
                node: node.to_string(),
                spiffe_id,
                due: Instant::now(),
            }),
            Err(reason) => {
                tracing::error!(node, %reason, "no SVID for this dataplane");
                None
            }
        }
    }

    pub fn due(&self) -> Instant {
        self.due
    }

    /// Issues the next SVID and schedules the one after. On failure the error
    /// is logged, a retry is scheduled, and `None` is returned.
    pub fn issue(&mut self) -> Option<Issued> {
        let now_unix = unix_now();
        let encoded = self
            .issuer
            .issue(&self.spiffe_id)
            .map_err(|err| err.to_string())
            .and_then(|(message, svid)| match wire::encode(&message) {
                Ok(frame) => Ok(Issued { frame, svid }),
                Err(err) => Err(format!("encoding the identity message: {err}")),
            });
        match encoded {
            Ok(issued) => {
                let renew_in = self.issuer.renew_in(&issued.svid, now_unix);
                self.due = Instant::now() + renew_in;
                tracing::info!(
                    node = %self.node,
                    spiffe_id = %issued.svid.spiffe_id,
                    serial = %issued.svid.serial_hex,
                    expires_unix = issued.svid.expires_unix,
                    valid_for = ?Duration::from_secs(
                        u64::try_from(issued.svid.expires_unix - now_unix).unwrap_or(0)
                    ),
                    renew_in = ?renew_in,
                    "SVID issued"
                );
                Some(issued)
            }
            Err(error) => {
                let retry = RETRY_AFTER_FAILURE
                    .min(self.issuer.rotate_after.unwrap_or(self.issuer.ttl / 2));
                self.due = Instant::now() + retry;
                tracing::error!(node = %self.node, spiffe_id = %self.spiffe_id, %error, retry_in = ?retry, "SVID issuance failed");
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "issuer_tests.rs"]
mod tests;
