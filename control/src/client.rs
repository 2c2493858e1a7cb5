//! The CLI side of the control socket: connect, say hello as `cli`, ask.

use ringmesh_api::wire::{self, ControlStatus, Message, ProtocolVersion, Role, WireError};
use ringmesh_api::Snapshot;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the CLI waits for any one answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the control process at {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the control process refused this client: {0}")]
    Refused(String),
    #[error("control socket: {0}")]
    Wire(#[from] WireError),
    #[error("control socket: expected {expected}, got {got}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
}

/// A CLI connection after a successful handshake.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let connect_error = |source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        };
        let stream = UnixStream::connect(path).map_err(connect_error)?;
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(ANSWER_TIMEOUT)))
            .map_err(connect_error)?;
        let mut client = Client { stream };
        let hello = Message::Hello {
            protocol: ProtocolVersion::CURRENT,
            role: Role::Cli,
            node: format!("ringmesh-control-cli[{}]", std::process::id()),
        };
        match client.ask(&hello) {
            Ok(Message::HelloAck { .. }) => Ok(client),
            Ok(other) => Err(unexpected("hello_ack", &other)),
            // A refusal by uid comes as a Reject frame before the server reads our
            // hello, and it may close before our write lands.
            Err(ClientError::Wire(_)) => match wire::read_message(&mut client.stream) {
                Ok(Message::Reject { reason }) => Err(ClientError::Refused(reason)),
                _ => Err(ClientError::Wire(WireError::Closed)),
            },
            Err(err) => Err(err),
        }
    }

    pub fn status(&mut self) -> Result<ControlStatus, ClientError> {
        match self.ask(&Message::StatusRequest)? {
            Message::StatusReply { status } => Ok(status),
            other => Err(unexpected("status_reply", &other)),
        }
    }

    /// The snapshot the control process serves now.
    pub fn snapshot(&mut self) -> Result<Snapshot, ClientError> {
        match self.ask(&Message::SnapshotRequest)? {
            Message::Snapshot { snapshot } => Ok(*snapshot),
            other => Err(unexpected("snapshot", &other)),
        }
    }

    /// Sends one request and reads one answer; a `Reject` becomes `Refused`.
    fn ask(&mut self, request: &Message) -> Result<Message, ClientError> {
        wire::write_message(&mut self.stream, request)?;
        match wire::read_message(&mut self.stream)? {
            Message::Reject { reason } => Err(ClientError::Refused(reason)),
            answer => Ok(answer),
        }
    }
}

fn unexpected(expected: &'static str, got: &Message) -> ClientError {
    ClientError::Unexpected {
        expected,
        got: got.kind(),
    }
}
