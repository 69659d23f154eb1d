//! A WebSocket session's side of the socket: batches of encoded frames written straight to the
//! connection (joined into few writes), the writer's blocked/unblocked signal to the outbox,
//! delivery latency, and the close handshake.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::inflate::Inflating;
use crate::hub::{Hub, SessionHandle};
use crate::outbox::{Close, Outgoing};
use crate::protocol::Frame;

/// A session's connection: client frames pass through [`Inflating`] (permessage-deflate) on
/// their way to tungstenite.
pub(super) type Socket = WebSocketStream<Inflating<TokioIo<Upgraded>>>;

/// Most bytes of small frames joined into one write.
const JOIN_BYTES: usize = 64 * 1024;
/// How long a close frame may take to leave, and the peer to answer it, before the connection
/// is dropped anyway.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Writes a batch of frames straight to the connection, already encoded for the wire (shared
/// by every session; see [`Frame::wire`]), in as few `write`s as the connection allows:
/// - where it takes vectored writes (a TCP socket does), one `writev` per up to
///   [`MAX_SLICES`] frames, each from its shared buffer — no copy, no allocation;
/// - elsewhere, consecutive frames are joined into one buffer of up to [`JOIN_BYTES`] and a
///   larger frame is written from its shared buffer.
///
/// `written` counts the batch's bytes written so far: a write that is abandoned can be finished
/// by calling again with the same batch (and the same `deflate`).
///
/// `deflate` is the session's permessage-deflate threshold (`None`: not negotiated): frames with
/// at least that much text are written in their shared compressed form ([`on_wire`]).
///
/// tungstenite, which reads the connection and writes pings, pongs and the close frame, never
/// holds unsent bytes here: each of its writes is flushed before the session goes on.
pub(super) async fn write_frames<W>(
    io: &mut W,
    batch: Batch<'_>,
    deflate: Option<usize>,
    written: &mut usize,
) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    if batch.len() > 1 && io.is_write_vectored() {
        write_vectored(io, batch, deflate, written).await?;
        return io.flush().await;
    }
    let wire = |i: usize| on_wire(batch.frame(i), deflate);
    let (mut first, mut start) = (0, 0);
    while first < batch.len() {
        // Frames first..end make the next write.
        let (mut end, mut size) = (first + 1, wire(first).len());
        while end < batch.len() && size + wire(end).len() <= JOIN_BYTES {
            size += wire(end).len();
            end += 1;
        }
        if *written < start + size {
            let joined: Vec<u8>;
            let bytes = if end == first + 1 {
                wire(first)
            } else {
                let mut buffer = Vec::with_capacity(size);
                for i in first..end {
                    buffer.extend_from_slice(wire(i));
                }
                joined = buffer;
                &joined
            };
            while *written < start + size {
                let n = io.write(&bytes[*written - start..]).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                *written += n;
            }
        }
        (first, start) = (end, start + size);
    }
    io.flush().await
}

/// Most frames (buffers) in one vectored write; Linux takes up to 1,024.
const MAX_SLICES: usize = 64;

/// [`write_frames`] on a connection that takes vectored writes: each write names the shared
/// buffers of the frames not yet (fully) written, from where the last write stopped.
async fn write_vectored<W>(
    io: &mut W,
    batch: Batch<'_>,
    deflate: Option<usize>,
    written: &mut usize,
) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let wire = |i: usize| on_wire(batch.frame(i), deflate);
    // The frame holding byte `written`, and where that frame starts in the batch.
    let (mut first, mut start) = (0, 0);
    loop {
        while first < batch.len() && start + wire(first).len() <= *written {
            start += wire(first).len();
            first += 1;
        }
        if first == batch.len() {
            return Ok(());
        }
        let mut slices = [std::io::IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        for i in first..batch.len().min(first + MAX_SLICES) {
            let bytes = wire(i);
            slices[count] = std::io::IoSlice::new(if i == first {
                &bytes[*written - start..]
            } else {
                bytes
            });
            count += 1;
        }
        let n = io.write_vectored(&slices[..count]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        *written += n;
    }
}

/// What a session writes: frames its transport made, or the queued items themselves when each
/// is a frame already (the JSON protocol: records as their shared frames, borrowed).
#[derive(Clone, Copy)]
pub(super) enum Batch<'a> {
    Frames(&'a [Frame]),
    Items(&'a [Outgoing]),
}

impl Batch<'_> {
    pub(super) fn len(&self) -> usize {
        match self {
            Batch::Frames(frames) => frames.len(),
            Batch::Items(items) => items.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn frame(&self, i: usize) -> &Frame {
        match self {
            Batch::Frames(frames) => &frames[i],
            Batch::Items(items) => items[i]
                .item
                .as_frame()
                .expect("the transport made every item a frame"),
        }
    }
}

/// The bytes written for `frame` to a session with permessage-deflate threshold `deflate`.
pub(super) fn on_wire(frame: &Frame, deflate: Option<usize>) -> &[u8] {
    match deflate {
        Some(min_bytes) => frame.wire_deflated(min_bytes),
        None => frame.wire(),
    }
}

/// Payload bytes of a batch as written (compressed where it was), for `sent_bytes_total`.
pub(super) fn payload_sent(batch: Batch<'_>, deflate: Option<usize>) -> usize {
    (0..batch.len())
        .map(|i| batch.frame(i))
        .map(|frame| match deflate {
            Some(_) => Frame::payload_len(on_wire(frame, deflate)),
            None => frame.len(),
        })
        .sum()
}

/// The connection as the writer sees it: tells the outbox whether the kernel takes bytes —
/// what makes a session slow. A write that returns `Pending` (the send buffer is full) marks
/// the socket blocked; the kernel's wake-up marks it unblocked at once, before the session's
/// task runs again, so time the task waits for a busy bridge is not counted against the client.
pub(super) struct Watched<'a, W> {
    io: &'a mut W,
    session: &'a Arc<SessionHandle>,
}

/// The waker of a blocked write: unblocks the socket in the outbox, then wakes the task.
struct Unblock {
    session: Arc<SessionHandle>,
    task: Waker,
}

impl Wake for Unblock {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.session.outbox.set_socket_blocked(false);
        self.task.wake_by_ref();
    }
}

impl<'a, W: tokio::io::AsyncWrite + Unpin> Watched<'a, W> {
    pub(super) fn new(io: &'a mut W, session: &'a Arc<SessionHandle>) -> Self {
        Watched { io, session }
    }

    /// Polls the connection; when it would block, polls it again with a waker that unblocks
    /// the socket in the outbox (only then: a waker per write would cost an allocation each).
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut poll: impl FnMut(Pin<&mut W>, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        if let Poll::Ready(done) = poll(Pin::new(&mut *self.io), cx) {
            self.session.outbox.set_socket_blocked(false);
            return Poll::Ready(done);
        }
        let unblock = Waker::from(Arc::new(Unblock {
            session: self.session.clone(),
            task: cx.waker().clone(),
        }));
        self.session.outbox.set_socket_blocked(true);
        let result = poll(Pin::new(&mut *self.io), &mut Context::from_waker(&unblock));
        if result.is_ready() {
            self.session.outbox.set_socket_blocked(false);
        }
        result
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<'_, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.watch(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.watch(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.watch(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }
}

/// Records each live record's delivery latency (Kafka timestamp → written) and empties the batch.
pub(super) fn record_latencies(batch: &mut Vec<Outgoing>, hub: &Hub) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for (channel, timestamp) in batch.drain(..).filter_map(|o| o.stamp) {
        let latency = (now_ms - timestamp).max(0) as f64 / 1000.0;
        hub.catalogue()
            .channel(channel)
            .metrics
            .delivery_latency
            .observe(latency);
    }
}

pub(super) async fn send_close(socket: &mut Socket, close: Close) {
    let frame = CloseFrame {
        code: CloseCode::from(close.code()),
        reason: close.reason().into(),
    };
    close_and_linger(socket, frame).await;
}

/// Sends a close frame, then reads and discards what the peer still sends until its own close
/// (or EOF), all within [`CLOSE_TIMEOUT`]. Dropping a socket whose input was not read makes the
/// kernel reset the connection, and the reset can destroy the close frame before the peer has
/// read it: a client still publishing at shutdown would see a reset instead of 1001.
pub(super) async fn close_and_linger(socket: &mut Socket, frame: CloseFrame) {
    let deadline = tokio::time::Instant::now() + CLOSE_TIMEOUT;
    let sent = tokio::time::timeout_at(deadline, socket.send(Message::Close(Some(frame)))).await;
    if matches!(sent, Ok(Ok(()))) {
        let _ = tokio::time::timeout_at(deadline, async {
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// Takes at most `per_write` bytes per write, and refuses writes (pending) once `budget`
    /// bytes are taken, like a socket whose peer stopped reading.
    struct Trickle {
        taken: Vec<u8>,
        per_write: usize,
        budget: usize,
        writes: usize,
        /// Takes vectored writes (as a TCP socket does), each taking `per_write` bytes at most.
        vectored: bool,
    }

    impl Trickle {
        fn new(per_write: usize, budget: usize, vectored: bool) -> Self {
            Trickle {
                taken: Vec::new(),
                per_write,
                budget,
                writes: 0,
                vectored,
            }
        }
    }

    impl tokio::io::AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.per_write).min(self.budget);
            if n == 0 {
                return Poll::Pending;
            }
            self.budget -= n;
            self.writes += 1;
            self.taken.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            if !self.vectored {
                let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
                return self.poll_write(cx, first);
            }
            let mut n = bufs.iter().map(|b| b.len()).sum::<usize>();
            n = n.min(self.per_write).min(self.budget);
            if n == 0 {
                return Poll::Pending;
            }
            self.budget -= n;
            self.writes += 1;
            let mut left = n;
            for buf in bufs {
                let take = left.min(buf.len());
                self.taken.extend_from_slice(&buf[..take]);
                left -= take;
            }
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn batch(sizes: &[usize]) -> Vec<Frame> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| Frame::from(format!("{i}").repeat(size)))
            .collect()
    }

    fn concatenated(batch: &[Frame]) -> Vec<u8> {
        batch
            .iter()
            .flat_map(|frame| frame.wire().to_vec())
            .collect()
    }

    #[tokio::test]
    async fn a_batch_of_small_frames_is_one_write_and_large_frames_go_alone() {
        let batch = batch(&[10, 200, 3, 70_000, 5, 6]);
        let mut io = Trickle::new(usize::MAX, usize::MAX, false);
        let mut written = 0;
        write_frames(&mut io, Batch::Frames(&batch), None, &mut written)
            .await
            .unwrap();
        assert_eq!(io.taken, concatenated(&batch));
        assert_eq!(written, io.taken.len());
        // [10, 200, 3] joined, 70,000 alone, [5, 6] joined.
        assert_eq!(io.writes, 3);
    }

    #[tokio::test]
    async fn an_abandoned_write_is_finished_where_it_stopped() {
        let batch = batch(&[100, 2_000, 70_000, 300, 1]);
        let all = concatenated(&batch);
        for (cut, vectored) in [1, 99, 102, 2_105, 50_000, all.len() - 1]
            .into_iter()
            .flat_map(|cut| [(cut, false), (cut, true)])
        {
            let mut io = Trickle::new(777, cut, vectored);
            let mut written = 0;
            let stalled = futures_util::FutureExt::now_or_never(write_frames(
                &mut io,
                Batch::Frames(&batch),
                None,
                &mut written,
            ));
            assert!(stalled.is_none(), "the write waits for the peer");
            assert_eq!(written, cut);
            io.budget = usize::MAX;
            write_frames(&mut io, Batch::Frames(&batch), None, &mut written)
                .await
                .unwrap();
            assert_eq!(io.taken, all, "cut at {cut}, vectored: {vectored}");
        }
    }

    #[tokio::test]
    async fn a_connection_that_takes_vectored_writes_gets_the_batch_in_one() {
        let frames = batch(&[10, 200, 3, 70_000, 5, 6]);
        let mut io = Trickle::new(usize::MAX, usize::MAX, true);
        let mut written = 0;
        write_frames(&mut io, Batch::Frames(&frames), None, &mut written)
            .await
            .unwrap();
        assert_eq!(io.taken, concatenated(&frames));
        assert_eq!(written, io.taken.len());
        assert_eq!(io.writes, 1);
        // More frames than one vectored write names: several writes, nothing lost or repeated.
        let many = batch(&[7; 150]);
        let mut io = Trickle::new(usize::MAX, usize::MAX, true);
        let mut written = 0;
        write_frames(&mut io, Batch::Frames(&many), None, &mut written)
            .await
            .unwrap();
        assert_eq!(io.taken, concatenated(&many));
        assert_eq!(io.writes, 150usize.div_ceil(MAX_SLICES));
    }
}
