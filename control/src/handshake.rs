//! Who may talk to the control socket, decided as pure functions: the peer's uid
//! (from SO_PEERCRED) and its first frame.
//!
//! The decisions are kept apart from the IO so every refusal reason is unit-tested
//! and the text a refused peer sees is written in one place.

use ringmesh_api::wire::{Message, ProtocolVersion, Role};

/// Longest accepted node name; it appears in logs and status lines.
pub const MAX_NODE_NAME: usize = 253;

/// The accepted client, as its `Hello` described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub role: Role,
    /// Node name (dataplanes) or a free label (CLI).
    pub node: String,
    pub protocol: ProtocolVersion,
}

/// What to do with a connection after its first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer `HelloAck` and serve the role.
    Accept(Accepted),
    /// Answer `Reject { reason }` and close.
    Reject(String),
}

/// Only processes running as our own uid may connect. Root is not exempt: the
/// dataplane and the control process are meant to share one service user, and a
/// root peer means a misconfigured unit rather than a legitimate client.
pub fn check_peer_uid(peer_uid: u32, our_uid: u32) -> Result<(), String> {
    if peer_uid == our_uid {
        Ok(())
    } else {
        Err(format!(
            "uid {peer_uid} may not use this control socket (only uid {our_uid}, the control process's own)"
        ))
    }
}

/// Decides on the first frame of a connection. `ours` is the protocol version this
/// process speaks.
pub fn decide(first: &Message, ours: ProtocolVersion) -> Decision {
    let Message::Hello {
        protocol,
        role,
        node,
    } = first
    else {
        return Decision::Reject(format!(
            "the first frame must be hello, got {}",
            first.kind()
        ));
    };
    if !ours.compatible_with(*protocol) {
        return Decision::Reject(format!(
            "protocol {}.{} is not supported by this control process (speaks {}.{})",
            protocol.major, protocol.minor, ours.major, ours.minor
        ));
    }
    if *role == Role::Dataplane {
        if let Err(reason) = check_node_name(node) {
            return Decision::Reject(reason);
        }
    }
    Decision::Accept(Accepted {
        role: *role,
        node: node.clone(),
        protocol: *protocol,
    })
}

/// A dataplane's node name is shown in status and logs: it must be non-empty,
/// printable and short.
fn check_node_name(node: &str) -> Result<(), String> {
    if node.is_empty() {
        return Err("a dataplane must send a non-empty node name".to_string());
    }
    if node.len() > MAX_NODE_NAME {
        return Err(format!(
            "node name is {} bytes long; at most {MAX_NODE_NAME} are allowed",
            node.len()
        ));
    }
    if node.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "node name {node:?} contains whitespace or control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(major: u32, minor: u32, role: Role, node: &str) -> Message {
        Message::Hello {
            protocol: ProtocolVersion { major, minor },
            role,
            node: node.to_string(),
        }
    }

    #[test]
    fn same_major_is_accepted_whatever_the_minor() {
        for minor in [0, 1, 7] {
            let decision = decide(
                &hello(1, minor, Role::Dataplane, "node-a"),
                ProtocolVersion::CURRENT,
            );
            assert_eq!(
                decision,
                Decision::Accept(Accepted {
                    role: Role::Dataplane,
                    node: "node-a".into(),
                    protocol: ProtocolVersion { major: 1, minor },
                })
            );
        }
    }

    #[test]
    fn other_major_is_rejected_with_both_versions() {
        let decision = decide(
            &hello(2, 0, Role::Dataplane, "node-a"),
            ProtocolVersion::CURRENT,
        );
        assert_eq!(
            decision,
            Decision::Reject(
                "protocol 2.0 is not supported by this control process (speaks 1.3)".into()
            )
        );
    }

    #[test]
    fn first_frame_must_be_hello() {
        let decision = decide(&Message::StatusRequest, ProtocolVersion::CURRENT);
        assert_eq!(
            decision,
            Decision::Reject("the first frame must be hello, got status_request".into())
        );
        assert!(matches!(
            decide(&Message::Ack { generation: 1 }, ProtocolVersion::CURRENT),
            Decision::Reject(reason) if reason.ends_with("got ack")
        ));
    }

    #[test]
    fn dataplane_node_names_are_checked_but_cli_labels_are_free() {
        let ours = ProtocolVersion::CURRENT;
        assert!(
            matches!(decide(&hello(1, 0, Role::Dataplane, ""), ours), Decision::Reject(r) if r.contains("non-empty"))
        );
        assert!(
            matches!(decide(&hello(1, 0, Role::Dataplane, "a b"), ours), Decision::Reject(r) if r.contains("whitespace"))
        );
        let long = "n".repeat(MAX_NODE_NAME + 1);
        assert!(
            matches!(decide(&hello(1, 0, Role::Dataplane, &long), ours), Decision::Reject(r) if r.contains("at most"))
        );
        assert!(
            matches!(decide(&hello(1, 0, Role::Cli, ""), ours), Decision::Accept(a) if a.role == Role::Cli)
        );
    }

    #[test]
    fn only_our_own_uid_passes() {
        assert_eq!(check_peer_uid(1000, 1000), Ok(()));
        let refused = check_peer_uid(0, 1000).unwrap_err();
        assert!(refused.contains("uid 0"), "{refused}");
        assert!(check_peer_uid(65534, 0).unwrap_err().contains("uid 65534"));
    }
}
