//! Socket reads and writes with an optional deadline and drain cancellation, in
//! monoio's owned-buffer model: a read appends to a `Vec` and hands it back.

use crate::stream::ClientIo;
use monoio::buf::{IoBuf, IoBufMut, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle};
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::time::Instant;

#[derive(Debug)]
pub enum ReadOutcome {
    Data(usize),
    Eof,
    /// The deadline passed; the buffer went down with the cancelled read and
    /// was replaced by an empty one, so the caller must stop using the connection.
    TimedOut,
    Failed(io::Error),
}

/// Run `work`, or give up at `deadline`.
pub async fn by_deadline<F: Future>(deadline: Option<Instant>, work: F) -> Option<F::Output> {
    match deadline {
        None => Some(work.await),
        Some(at) => {
            let left = at.saturating_duration_since(Instant::now());
            monoio::time::timeout(left, work).await.ok()
        }
    }
}

fn spare(buf: &mut Vec<u8>) -> SliceMut<Vec<u8>> {
    if buf.len() == buf.capacity() {
        buf.reserve(buf.capacity().max(4096));
    }
    let filled = buf.len();
    let capacity = buf.capacity();
    std::mem::take(buf).slice_mut(filled..capacity)
}

/// Append what the socket has to `buf`, growing it when full.
pub async fn read_more<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Option<Instant>,
) -> ReadOutcome {
    let spare = spare(buf);
    let result = by_deadline(deadline, stream.read(spare)).await;
    finish_read(buf, result)
}

/// `read_more` on an idle client connection: a drain ends the wait (as `Eof`).
pub async fn read_idle(
    stream: &mut ClientIo,
    buf: &mut Vec<u8>,
    deadline: Option<Instant>,
    cancel: &CancelHandle,
    draining: &Cell<bool>,
) -> ReadOutcome {
    let spare = spare(buf);
    match by_deadline(deadline, stream.read_or_drain(spare, cancel, draining)).await {
        None => ReadOutcome::TimedOut,
        Some(None) => ReadOutcome::Eof,
        Some(Some(result)) => finish_read(buf, Some(result)),
    }
}

fn finish_read(
    buf: &mut Vec<u8>,
    result: Option<monoio::BufResult<usize, SliceMut<Vec<u8>>>>,
) -> ReadOutcome {
    match result {
        None => ReadOutcome::TimedOut,
        Some((outcome, spare)) => {
            *buf = spare.into_inner();
            match outcome {
                Ok(0) => ReadOutcome::Eof,
                Ok(n) => ReadOutcome::Data(n),
                Err(err) => ReadOutcome::Failed(err),
            }
        }
    }
}

#[derive(Debug)]
pub enum WriteOutcome {
    Done,
    TimedOut,
    Failed(io::Error),
}

/// Write all of `buf`; the buffer comes back unless the deadline took it.
pub async fn write_all<S: AsyncWriteRent, T: IoBuf>(
    stream: &mut S,
    buf: T,
    deadline: Option<Instant>,
) -> (WriteOutcome, Option<T>) {
    match by_deadline(deadline, stream.write_all(buf)).await {
        None => (WriteOutcome::TimedOut, None),
        Some((Ok(_), buf)) => (WriteOutcome::Done, Some(buf)),
        Some((Err(err), buf)) => (WriteOutcome::Failed(err), Some(buf)),
    }
}

/// Write `buf[range]` of a Vec and hand the Vec back (or an empty one if lost).
pub async fn write_range<S: AsyncWriteRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    start: usize,
    end: usize,
    deadline: Option<Instant>,
) -> WriteOutcome {
    if start >= end {
        return WriteOutcome::Done;
    }
    let owned = std::mem::take(buf);
    let end = end.min(owned.len());
    let start = start.min(end);
    let (outcome, returned) = write_all(stream, owned.slice(start..end), deadline).await;
    if let Some(slice) = returned {
        *buf = slice.into_inner();
    }
    outcome
}
