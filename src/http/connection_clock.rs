//! One connection's header, idle and write timeouts.
//!
//! hyper's HTTP/1 server has a single timer, the header read timeout, and starts it as soon as
//! a connection becomes idle: a keep-alive connection waiting for its next request and a
//! request whose head stalls would share one limit. Its [`Timer`] is used for nothing else, so
//! this clock, given to hyper as its timer, splits them:
//! - the first request's head must arrive within `header_timeout` of the connection opening;
//! - later, the connection may wait `idle_timeout` for a request's first byte, and the rest of
//!   that head must follow within `header_timeout`.
//!
//! The first byte is seen through [`Watched`], which counts the bytes read from the socket.
//!
//! hyper has no limit on writing a response: a client that sends a request and then reads
//! nothing (a zero TCP window) holds its connection, one of the capped slots, for as long as it
//! likes once the response outgrows the socket buffers. [`Watched`] fails a write with
//! [`io::ErrorKind::TimedOut`], which ends the connection, once the socket has taken nothing for
//! `idle_timeout`: such a peer is as idle as one that sends no request, and the limit restarts
//! whenever the socket takes a byte, so a slow reader that keeps reading is not cut off.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Which limit ended a connection, for the timeouts metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Header,
    Idle,
    Write,
}

impl Expired {
    pub fn as_str(self) -> &'static str {
        match self {
            Expired::Header => "header",
            Expired::Idle => "idle",
            Expired::Write => "write",
        }
    }
}

#[derive(Clone)]
pub struct ConnectionClock {
    shared: Arc<Shared>,
}

struct Shared {
    header_timeout: Duration,
    idle_timeout: Duration,
    bytes_read: AtomicU64,
    /// False until hyper has asked for the first request's timer.
    first_head_started: AtomicBool,
    /// 0 while running; else 1 + the [`Expired`] that fired.
    expired: AtomicU8,
}

impl Shared {
    fn expire(&self, expired: Expired) {
        self.expired.store(1 + expired as u8, Ordering::Relaxed);
    }
}

impl ConnectionClock {
    pub fn new(header_timeout: Duration, idle_timeout: Duration) -> ConnectionClock {
        ConnectionClock {
            shared: Arc::new(Shared {
                header_timeout,
                idle_timeout,
                bytes_read: AtomicU64::new(0),
                first_head_started: AtomicBool::new(false),
                expired: AtomicU8::new(0),
            }),
        }
    }

    /// `io` with its reads counted and its writes timed for this clock.
    pub fn watch<T>(&self, io: T) -> Watched<T> {
        Watched {
            inner: io,
            shared: self.shared.clone(),
            write_deadline: None,
        }
    }

    /// The limit that fired, if one did.
    pub fn expired(&self) -> Option<Expired> {
        match self.shared.expired.load(Ordering::Relaxed) {
            1 => Some(Expired::Header),
            2 => Some(Expired::Idle),
            3 => Some(Expired::Write),
            _ => None,
        }
    }
}

impl Timer for ConnectionClock {
    /// Tokio's clock, so that paused time in tests applies.
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    /// hyper calls this when it starts reading a request head (see the module doc); the
    /// deadline it asks for is `header_timeout` from now.
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let shared = self.shared.clone();
        let first = !shared.first_head_started.swap(true, Ordering::Relaxed);
        let (phase, until) = if first {
            (Phase::Head, deadline)
        } else {
            let bytes_at_start = shared.bytes_read.load(Ordering::Relaxed);
            (
                Phase::Idle { bytes_at_start },
                self.now() + shared.idle_timeout,
            )
        };
        Box::pin(HeadTimer {
            shared,
            phase,
            sleep: Box::pin(tokio::time::sleep_until(until.into())),
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No byte of the request yet.
    Idle { bytes_at_start: u64 },
    /// Part of the head is in.
    Head,
}

struct HeadTimer {
    shared: Arc<Shared>,
    phase: Phase,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Future for HeadTimer {
    type Output = ();

    /// hyper polls this each time it tried to read more of the head, so the first byte is
    /// noticed as soon as it is read.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Phase::Idle { bytes_at_start } = self.phase {
            if self.shared.bytes_read.load(Ordering::Relaxed) != bytes_at_start {
                self.phase = Phase::Head;
                let until = tokio::time::Instant::now() + self.shared.header_timeout;
                self.sleep.as_mut().reset(until);
            }
        }
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let expired = match self.phase {
            Phase::Idle { .. } => Expired::Idle,
            Phase::Head => Expired::Header,
        };
        self.shared.expire(expired);
        Poll::Ready(())
    }
}

impl Sleep for HeadTimer {}

/// A socket whose reads are counted and whose writes are timed for its [`ConnectionClock`].
pub struct Watched<T> {
    inner: T,
    shared: Arc<Shared>,
    /// Set while a write is pending: when the socket has taken nothing for `idle_timeout`.
    write_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> Watched<T> {
    /// `polled`, a write or flush of the socket; one that has stayed pending for `idle_timeout`
    /// becomes a [`io::ErrorKind::TimedOut`] error instead.
    fn limit_stall<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if polled.is_ready() {
            self.write_deadline = None;
            return polled;
        }
        let limit = self.shared.idle_timeout;
        let deadline = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.shared.expire(Expired::Write);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the peer took none of the response for {limit:?}"),
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.shared
                .bytes_read
                .fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.limit_stall(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.limit_stall(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.limit_stall(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_once(sleep: &mut Pin<Box<dyn Sleep>>) -> Poll<()> {
        let waker = std::task::Waker::noop();
        sleep.as_mut().poll(&mut Context::from_waker(waker))
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_head_gets_the_header_timeout_later_ones_wait_idle_first() {
        let header = Duration::from_secs(10);
        let clock = ConnectionClock::new(header, Duration::from_secs(60));
        let mut first = clock.sleep(header);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(poll_once(&mut first).is_ready());
        assert_eq!(clock.expired(), Some(Expired::Header));

        let clock = ConnectionClock::new(header, Duration::from_secs(60));
        let _first = clock.sleep(header);
        let mut idle = clock.sleep(header);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(
            poll_once(&mut idle).is_pending(),
            "still within idle_timeout"
        );
        // The first byte of the next request: from now on the header timeout applies.
        clock.shared.bytes_read.fetch_add(1, Ordering::Relaxed);
        assert!(poll_once(&mut idle).is_pending());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(poll_once(&mut idle).is_pending());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(poll_once(&mut idle).is_ready());
        assert_eq!(clock.expired(), Some(Expired::Header));

        let clock = ConnectionClock::new(header, Duration::from_secs(60));
        let _first = clock.sleep(header);
        let mut idle = clock.sleep(header);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(poll_once(&mut idle).is_ready());
        assert_eq!(clock.expired(), Some(Expired::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_socket_takes_nothing_of_for_idle_timeout_fails() {
        use tokio::io::AsyncReadExt;
        let clock = ConnectionClock::new(Duration::from_secs(10), Duration::from_secs(60));
        let (server, mut client) = tokio::io::duplex(64);
        let mut server = clock.watch(server);
        let write = |server: &mut Watched<_>| {
            let waker = std::task::Waker::noop();
            Pin::new(server).poll_write(&mut Context::from_waker(waker), &[0u8; 64])
        };
        assert!(matches!(write(&mut server), Poll::Ready(Ok(64))));
        assert!(write(&mut server).is_pending(), "the peer reads nothing");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(write(&mut server).is_pending());

        // The peer takes some: the limit starts again with the next stall.
        client.read_exact(&mut [0u8; 16]).await.unwrap();
        assert!(matches!(write(&mut server), Poll::Ready(Ok(16))));
        assert!(write(&mut server).is_pending());
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(write(&mut server).is_pending());
        assert_eq!(clock.expired(), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        match write(&mut server) {
            Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            other => panic!("{other:?}"),
        }
        assert_eq!(clock.expired(), Some(Expired::Write));
    }
}
