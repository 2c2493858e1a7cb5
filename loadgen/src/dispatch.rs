//! Hands intended send times from the pacer to idle connection tasks of one
//! worker (one thread: `Rc`, `Cell`, no locks).
//!
//! A request goes straight into the slot of an idle connection, which is then
//! woken; only when every connection is busy does it wait in the backlog, in
//! order. Handing over into a slot (instead of waking "some waiter" to pop a
//! shared queue) means a wake-up can never be spent on a task that is busy
//! elsewhere: a spurious poll, e.g. from a timer, only refreshes the task's
//! waker, and no request is left behind while a connection sleeps.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

/// One connection's mailbox.
#[derive(Default)]
pub struct Slot {
    item: Cell<Option<Instant>>,
    waker: RefCell<Option<Waker>>,
}

#[derive(Default)]
pub struct Dispatch {
    backlog: RefCell<VecDeque<Instant>>,
    /// Connections waiting for a request, most recently idle last (it is
    /// reused first: its socket and buffers are warmest).
    idle: RefCell<Vec<Rc<Slot>>>,
    closed: Cell<bool>,
}

impl Dispatch {
    pub fn push(&self, at: Instant) {
        let slot = self.idle.borrow_mut().pop();
        match slot {
            Some(slot) => {
                slot.item.set(Some(at));
                if let Some(w) = slot.waker.borrow_mut().take() {
                    w.wake();
                }
            }
            None => self.backlog.borrow_mut().push_back(at),
        }
    }

    /// No more requests: idle connections get `None`, busy ones after the backlog.
    pub fn close(&self) {
        self.closed.set(true);
        let idle = std::mem::take(&mut *self.idle.borrow_mut());
        for slot in idle {
            if let Some(w) = slot.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// The next request for the connection owning `slot`; `None` when closed.
    pub async fn next(&self, slot: &Rc<Slot>) -> Option<Instant> {
        if let Some(at) = self.backlog.borrow_mut().pop_front() {
            return Some(at);
        }
        if self.closed.get() {
            return None;
        }
        self.idle.borrow_mut().push(slot.clone());
        std::future::poll_fn(|cx| {
            if let Some(at) = slot.item.take() {
                return Poll::Ready(Some(at));
            }
            if self.closed.get() {
                return Poll::Ready(None);
            }
            *slot.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Requests waiting for a free connection.
    pub fn backlog(&self) -> usize {
        self.backlog.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Wake};

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    fn poll<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(&Waker::from(Arc::new(Noop))))
    }

    #[test]
    fn hands_requests_to_idle_connections_and_queues_the_rest() {
        let d = Dispatch::default();
        let (a, b) = (Rc::new(Slot::default()), Rc::new(Slot::default()));
        let t0 = Instant::now();
        let mut fa = pin!(d.next(&a));
        let mut fb = pin!(d.next(&b));
        assert!(poll(fa.as_mut()).is_pending());
        assert!(poll(fb.as_mut()).is_pending());
        // A spurious poll of an idle connection must not lose its place.
        assert!(poll(fa.as_mut()).is_pending());
        d.push(t0);
        d.push(t0 + std::time::Duration::from_millis(1));
        d.push(t0 + std::time::Duration::from_millis(2));
        // Both idle connections got one each, the third waits in the backlog.
        assert!(matches!(poll(fa.as_mut()), Poll::Ready(Some(_))));
        assert!(matches!(poll(fb.as_mut()), Poll::Ready(Some(_))));
        assert_eq!(d.backlog(), 1);
        d.close();
        // A busy connection still drains the backlog after close, then stops.
        let mut again = pin!(d.next(&a));
        assert!(matches!(poll(again.as_mut()), Poll::Ready(Some(_))));
        let mut last = pin!(d.next(&a));
        assert!(matches!(poll(last.as_mut()), Poll::Ready(None)));
    }

    #[test]
    fn close_wakes_idle_connections() {
        let d = Dispatch::default();
        let a = Rc::new(Slot::default());
        let mut fa = pin!(d.next(&a));
        assert!(poll(fa.as_mut()).is_pending());
        d.close();
        assert!(matches!(poll(fa.as_mut()), Poll::Ready(None)));
    }
}
