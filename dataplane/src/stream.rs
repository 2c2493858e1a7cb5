//! The two kinds of socket the request path carries: a plain TCP stream, or a TLS
//! stream over one (terminated from a client, or originated to an upstream).
//! Concrete enums rather than generics: one branch per IO call, no boxing of
//! futures, and the plain path stays what it was.
//!
//! Drain: an idle client read, plain or TLS, is cancelled through monoio's
//! `CancelHandle`. For TLS only the socket read under the TLS layer is
//! cancelled, before rustls has seen any of its bytes, so no TLS state is lost
//! and no timer is armed per read.

use crate::resilience::breaker::Guard;
use crate::tls::stream::{ClientStream, ServerStream};
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use std::cell::Cell;

/// A client connection: plain, or with TLS terminated here.
pub enum ClientIo {
    Plain(TcpStream),
    Tls(Box<ServerStream<TcpStream>>),
}

/// An upstream transport: plain, or with TLS originated here.
pub enum UpstreamTransport {
    Plain(TcpStream),
    Tls(Box<ClientStream<TcpStream>>),
}

/// An upstream connection. It holds one of its cluster's `max_connections` slots
/// for as long as the socket is open, in use or idle in a pool, so the breaker
/// counts connections, not the requests that happen to be using them.
pub struct UpstreamIo {
    pub transport: UpstreamTransport,
    slot: Option<Guard>,
}

impl UpstreamIo {
    pub fn new(transport: UpstreamTransport, slot: Option<Guard>) -> Self {
        UpstreamIo { transport, slot }
    }

    /// The transport and the slot, for a relay that splits the socket; the slot
    /// must be kept until the relay ends.
    pub fn into_parts(self) -> (UpstreamTransport, Option<Guard>) {
        (self.transport, self.slot)
    }
}

impl ClientIo {
    pub fn is_tls(&self) -> bool {
        matches!(self, ClientIo::Tls(_))
    }

    /// A read that ends early when the worker starts draining: a plain read
    /// fails as cancelled, a TLS read ends with `None` (as it did when it was
    /// raced against the drain flag).
    pub async fn read_or_drain<T: IoBufMut>(
        &mut self,
        buf: T,
        cancel: &CancelHandle,
        draining: &Cell<bool>,
    ) -> Option<BufResult<usize, T>> {
        match self {
            ClientIo::Plain(stream) => Some(stream.cancelable_read(buf, cancel.clone()).await),
            ClientIo::Tls(stream) => {
                let result = stream.cancelable_read(buf, cancel.clone()).await;
                if result.0.is_err() && draining.get() {
                    return None;
                }
                Some(result)
            }
        }
    }
}

macro_rules! delegate_io {
    ($ty:ident) => {
        impl AsyncReadRent for $ty {
            async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $ty::Plain(s) => s.read(buf).await,
                    $ty::Tls(s) => s.read(buf).await,
                }
            }
            async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $ty::Plain(s) => s.readv(buf).await,
                    $ty::Tls(s) => s.readv(buf).await,
                }
            }
        }

        impl AsyncWriteRent for $ty {
            async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $ty::Plain(s) => s.write(buf).await,
                    $ty::Tls(s) => s.write(buf).await,
                }
            }
            async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
                match self {
                    $ty::Plain(s) => s.writev(buf).await,
                    $ty::Tls(s) => s.writev(buf).await,
                }
            }
            async fn flush(&mut self) -> std::io::Result<()> {
                match self {
                    $ty::Plain(s) => s.flush().await,
                    $ty::Tls(s) => s.flush().await,
                }
            }
            async fn shutdown(&mut self) -> std::io::Result<()> {
                match self {
                    $ty::Plain(s) => s.shutdown().await,
                    $ty::Tls(s) => s.shutdown().await,
                }
            }
        }
    };
}

delegate_io!(ClientIo);
delegate_io!(UpstreamTransport);

impl AsyncReadRent for UpstreamIo {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.transport.read(buf).await
    }
    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.transport.readv(buf).await
    }
}

impl AsyncWriteRent for UpstreamIo {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.transport.write(buf).await
    }
    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.transport.writev(buf).await
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        self.transport.flush().await
    }
    async fn shutdown(&mut self) -> std::io::Result<()> {
        self.transport.shutdown().await
    }
}

impl std::fmt::Debug for UpstreamIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.transport {
            UpstreamTransport::Plain(_) => "UpstreamIo::Plain",
            UpstreamTransport::Tls(_) => "UpstreamIo::Tls",
        })
    }
}
