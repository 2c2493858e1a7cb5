//! The TLS stream the request path reads and writes through once a handshake is
//! done: a rustls connection driven directly over a monoio socket, with its own
//! two ciphertext buffers.
//!
//! Why not monoio-rustls's stream (which this replaced on the request path): it
//! moves ciphertext through a fixed 16 KiB buffer, one TLS record piece at a
//! time, and sends each piece with its own socket write. A 16 KiB response is two
//! records (16 KiB of body plus the head), and a full record is 22 bytes larger
//! than that buffer, so it went out in three sends, each a separate TCP segment
//! the client has to wake up for. Here every record of one write is gathered into
//! one buffer and sent in one operation, and plaintext that rustls holds is copied
//! straight into the caller's buffer.
//!
//! Buffers. `incoming` holds ciphertext read from the socket that rustls has not
//! taken yet (rustls takes only what fits its record buffer). `outgoing` holds
//! the records of one write until they are sent; it is kept for the next write
//! unless a bulk write grew it past [`KEEP_OUTGOING`], so an idle keep-alive
//! connection does not pin a large buffer.
//!
//! Writes take plaintext from the caller's owned buffer. This crate has no
//! `unsafe`, and monoio's `IoBuf` gives only a raw pointer, so the bytes are
//! reached through the concrete buffer types the dataplane writes (`Vec<u8>`, its
//! slices, `Box<[u8]>`, static bytes and strings); any other type is refused
//! with `Unsupported` rather than copied blindly.
//!
//! Cancellation: a read or write dropped half way (a deadline, a drain) leaves
//! the stream unusable, as with any TLS stream; callers close it then. Nothing
//! here panics in that case: a lost buffer is replaced by an empty one.
//!
//! L4 relays need the stream split into a read half and a write half; for
//! those the connection is handed to monoio-rustls (`into_relay`, below), which
//! replays ciphertext not yet taken by rustls, so nothing is lost.

use super::stream::{rewind, Rewind};
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, Slice, SliceMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent, Split,
    Splitable,
};
use monoio::BufResult;
use rustls::{ClientConnection, ConnectionCommon, ServerConnection, SideData};
use std::any::Any;
use std::io::{self, BufRead, Write};
use std::ops::{Deref, DerefMut};

/// Ciphertext asked for per socket read: a full TLS record in one read.
const READ_SIZE: usize = 16 * 1024 + 512;
/// Plaintext encrypted per socket write: two full records. A 16 KiB response
/// with its head is one write; larger bodies go out in rounds of this size.
const WRITE_ROUND: usize = 32 * 1024;
/// `outgoing` capacity kept between writes (one round of records plus headroom).
const KEEP_OUTGOING: usize = WRITE_ROUND + 1024;

/// A TLS connection over `IO` after the handshake (`C` is rustls's client or
/// server connection).
pub struct TlsStream<IO, C> {
    io: IO,
    conn: C,
    /// Ciphertext read from `io`; `incoming[taken..]` is not yet given to rustls.
    incoming: Vec<u8>,
    taken: usize,
    /// Records waiting to be sent (empty between calls unless a write was cancelled).
    outgoing: Vec<u8>,
}

impl<IO, C> TlsStream<IO, C> {
    /// Wrap a connection whose handshake is complete and which holds every byte
    /// read from `io` so far.
    pub fn new(io: IO, conn: C) -> Self {
        TlsStream {
            io,
            conn,
            incoming: Vec::new(),
            taken: 0,
            outgoing: Vec::new(),
        }
    }

    /// The rustls connection (negotiated parameters, peer certificates).
    pub fn conn(&self) -> &C {
        &self.conn
    }

    /// The socket under the TLS layer.
    pub fn io(&self) -> &IO {
        &self.io
    }
}

impl<IO, C, SD> TlsStream<IO, C>
where
    IO: AsyncReadRent + AsyncWriteRent,
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    /// Give rustls ciphertext left from the last socket read, or read more (one
    /// socket read), and let it process what it took.
    async fn fill<R: SocketRead<IO>>(&mut self, how: &R) -> io::Result<()> {
        if self.taken >= self.incoming.len() {
            self.incoming.clear();
            self.taken = 0;
            // A cancelled read may have taken the buffer with it: `reserve`
            // brings the capacity back, so the slice below is always in range.
            self.incoming.reserve(READ_SIZE);
            let window = std::mem::take(&mut self.incoming).slice_mut(0..READ_SIZE);
            let (read, window) = how.read(&mut self.io, window).await;
            self.incoming = window.into_inner();
            if read? == 0 {
                // Tell rustls about the end of the stream: its reader then
                // reports a clean close or `UnexpectedEof`.
                self.conn.read_tls(&mut io::empty())?;
                return Ok(());
            }
        }
        let mut rest = self.incoming.get(self.taken..).unwrap_or_default();
        let used = self.conn.read_tls(&mut rest)?;
        self.taken += used;
        if let Err(err) = self.conn.process_new_packets() {
            // rustls queued an alert saying why: send it, best effort.
            let _ = self.send_pending().await;
            return Err(io::Error::new(io::ErrorKind::InvalidData, err));
        }
        Ok(())
    }

    /// Send every record rustls has queued, in one socket write per round.
    async fn send_pending(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            while self.conn.wants_write() {
                // `Vec`'s vectored write appends all queued records at once.
                self.conn.write_tls(&mut self.outgoing)?;
            }
            let out = std::mem::take(&mut self.outgoing);
            let (written, mut out) = self.io.write_all(out).await;
            out.clear();
            if out.capacity() <= KEEP_OUTGOING {
                self.outgoing = out;
            }
            written?;
        }
        Ok(())
    }

    /// Plaintext into `buf`: what rustls holds, else one more socket read (as
    /// `how` does it) and what that decrypts to.
    async fn read_plain<T: IoBufMut, R: SocketRead<IO>>(
        &mut self,
        mut buf: T,
        how: &R,
    ) -> BufResult<usize, T> {
        if buf.bytes_total() == 0 {
            return (Ok(0), buf);
        }
        loop {
            let mut reader = self.conn.reader();
            match reader.fill_buf() {
                Ok(mut plain) => {
                    // Copies what fits into `buf` (an empty `plain` is a clean
                    // close: 0). `&[u8]` as a reader does this without `unsafe`.
                    let (copied, back) = plain.read(buf).await;
                    buf = back;
                    if let Ok(n) = copied {
                        reader.consume(n);
                    }
                    return (copied, buf);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return (Err(err), buf),
            }
            let before = (self.taken, self.incoming.len());
            if let Err(err) = self.fill(how).await {
                return (Err(err), buf);
            }
            // rustls took nothing, has nothing to give and the socket gave
            // nothing new: do not spin.
            if before == (self.taken, self.incoming.len()) && self.taken < self.incoming.len() {
                let stalled = io::Error::new(io::ErrorKind::InvalidData, "TLS reader stalled");
                return (Err(stalled), buf);
            }
        }
    }

    /// Encrypt up to one round of `data` and send it; returns the plaintext
    /// bytes taken.
    async fn write_plain(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.outgoing.is_empty() {
            // Left by a cancelled write: the stream is broken.
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "TLS stream used after a cancelled write",
            ));
        }
        let round = data.get(..WRITE_ROUND).unwrap_or(data);
        let taken = self.conn.writer().write(round)?;
        self.send_pending().await?;
        Ok(taken)
    }

    /// The parts, and the ciphertext read but not yet taken by rustls.
    fn into_parts(self) -> (IO, C, Vec<u8>) {
        let pending = self
            .incoming
            .get(self.taken..)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        (self.io, self.conn, pending)
    }
}

/// L4 relays split a stream into a read half and a write half, which this
/// stream does not do itself: the connection goes to monoio-rustls, with the
/// ciphertext not yet taken by rustls replayed ahead of the socket (plaintext
/// rustls holds stays in it), so nothing is lost.
macro_rules! relay_via_monoio_rustls {
    ($conn:ty, $relay:ident) => {
        impl<IO: AsyncReadRent + AsyncWriteRent> TlsStream<IO, $conn> {
            pub fn into_relay(self) -> monoio_rustls::$relay<Rewind<IO>> {
                let (io, conn, pending) = self.into_parts();
                monoio_rustls::$relay::new(rewind(io, pending), conn)
            }
        }

        impl<IO: AsyncReadRent + AsyncWriteRent + Split> Splitable for TlsStream<IO, $conn> {
            type OwnedRead = <monoio_rustls::$relay<Rewind<IO>> as Splitable>::OwnedRead;
            type OwnedWrite = <monoio_rustls::$relay<Rewind<IO>> as Splitable>::OwnedWrite;

            fn into_split(self) -> (Self::OwnedRead, Self::OwnedWrite) {
                self.into_relay().into_split()
            }
        }
    };
}

relay_via_monoio_rustls!(ServerConnection, ServerTlsStream);
relay_via_monoio_rustls!(ClientConnection, ClientTlsStream);

/// How a socket read is made: plain, or cancellable through a handle (drain).
/// A cancelled socket read gives its buffer back and rustls has not seen any of
/// it, so the TLS state stays whole and the stream can still be used.
trait SocketRead<IO> {
    async fn read(
        &self,
        io: &mut IO,
        buf: SliceMut<Vec<u8>>,
    ) -> BufResult<usize, SliceMut<Vec<u8>>>;
}

struct Plain;

impl<IO: AsyncReadRent> SocketRead<IO> for Plain {
    async fn read(
        &self,
        io: &mut IO,
        buf: SliceMut<Vec<u8>>,
    ) -> BufResult<usize, SliceMut<Vec<u8>>> {
        io.read(buf).await
    }
}

struct Cancelable<'a>(&'a CancelHandle);

impl<IO: CancelableAsyncReadRent> SocketRead<IO> for Cancelable<'_> {
    async fn read(
        &self,
        io: &mut IO,
        buf: SliceMut<Vec<u8>>,
    ) -> BufResult<usize, SliceMut<Vec<u8>>> {
        io.cancelable_read(buf, self.0.clone()).await
    }
}

/// The plaintext of an owned buffer, for the buffer types the dataplane writes:
/// `Vec<u8>`, `Box<[u8]>`, static bytes and strings, a `SliceMut<Vec<u8>>`, and
/// those inside one or two `Slice`s (`write_all` wraps what it is given in one).
fn plain_bytes<T: IoBuf>(buf: &T) -> Option<&[u8]> {
    let any: &dyn Any = buf;
    if let Some(bytes) = base_bytes(any) {
        return Some(bytes);
    }
    macro_rules! sliced {
        ($($base:ty),*) => {$(
            if let Some(s) = any.downcast_ref::<Slice<$base>>() {
                return base_bytes(s.get_ref())?.get(s.begin()..s.end());
            }
            if let Some(s) = any.downcast_ref::<Slice<Slice<$base>>>() {
                let inner = s.get_ref();
                let bytes = base_bytes(inner.get_ref())?.get(inner.begin()..inner.end())?;
                return bytes.get(s.begin()..s.end());
            }
        )*};
    }
    sliced!(
        Vec<u8>,
        Box<[u8]>,
        &'static [u8],
        &'static str,
        SliceMut<Vec<u8>>
    );
    None
}

fn base_bytes(any: &dyn Any) -> Option<&[u8]> {
    if let Some(v) = any.downcast_ref::<Vec<u8>>() {
        return Some(v);
    }
    if let Some(b) = any.downcast_ref::<Box<[u8]>>() {
        return Some(b);
    }
    if let Some(b) = any.downcast_ref::<&'static [u8]>() {
        return Some(b);
    }
    if let Some(s) = any.downcast_ref::<&'static str>() {
        return Some(s.as_bytes());
    }
    if let Some(s) = any.downcast_ref::<SliceMut<Vec<u8>>>() {
        return Some(s);
    }
    None
}

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "TLS stream: buffer type not supported (use Vec<u8> or its slices)",
    )
}

impl<IO, C, SD> AsyncReadRent for TlsStream<IO, C>
where
    IO: AsyncReadRent + AsyncWriteRent,
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.read_plain(buf, &Plain).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        // Not used by the dataplane; reaching the iovecs would need `unsafe`.
        (Err(unsupported()), buf)
    }
}

/// A read that a drain can cancel while it waits on the socket (see
/// [`SocketRead`]); plaintext rustls already holds is returned first.
impl<IO, C, SD> CancelableAsyncReadRent for TlsStream<IO, C>
where
    IO: CancelableAsyncReadRent + AsyncWriteRent,
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        cancel: CancelHandle,
    ) -> BufResult<usize, T> {
        self.read_plain(buf, &Cancelable(&cancel)).await
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        _cancel: CancelHandle,
    ) -> BufResult<usize, T> {
        // Not used by the dataplane; reaching the iovecs would need `unsafe`.
        (Err(unsupported()), buf)
    }
}

impl<IO, C, SD> AsyncWriteRent for TlsStream<IO, C>
where
    IO: AsyncReadRent + AsyncWriteRent,
    C: DerefMut + Deref<Target = ConnectionCommon<SD>>,
    SD: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let written = match plain_bytes(&buf) {
            Some([]) => Ok(0),
            Some(data) => self.write_plain(data).await,
            None => Err(unsupported()),
        };
        (written, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // Not used by the dataplane; reaching the iovecs would need `unsafe`.
        (Err(unsupported()), buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.send_pending().await?;
        self.io.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.send_pending().await?;
        self.io.shutdown().await
    }
}

#[cfg(test)]
#[path = "io_tests.rs"]
mod tests;
