//! A single master's commands, written to its connection in batches.
//!
//! Every operation sends one command to every node at once, so under load a node's
//! connection is handed many commands in one turn of the runtime: those of every operation
//! that ran in it. Sent one by one through the redis crate, each command is a request of its
//! own on the connection's queue, with a future of about 1.1 KB held for as long as its
//! answer takes, and thousands of them in flight are what the engine's time then goes to
//! (driven from Rust, a cycle cost 61 µs of CPU with 512 callers against 26 µs with 64). Here a command is put on a
//! queue of this connection's own, at once, and one task per connection hands everything
//! queued to the redis crate as one pipeline (one request, one write) and passes each answer
//! back to its sender.
//!
//! The queue keeps the order of the commands given to it, and so does the connection with
//! the pipelines: a node sees one sender's commands in the order it sent them. A command
//! that was queued is written even if its sender stops waiting for the answer (a request
//! that timed out), so that a later command never reaches the node without it. A server's
//! error answer to one command is that command's answer alone; a broken connection is every
//! waiting command's error.

use std::future::Future;

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{Cmd, RedisError, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};

use crate::wait::poll_once;

/// The most commands one pipeline takes: under heavier load the rest go in the next one,
/// in the same turn.
const MAX_BATCH: usize = 256;

/// A connection's queue of commands, shared by every request on it.
#[derive(Clone)]
pub(crate) struct Batched {
    queue: mpsc::UnboundedSender<Queued>,
}

/// A command waiting for its pipeline, and where its answer goes.
struct Queued {
    cmd: Cmd,
    answer: oneshot::Sender<RedisResult<Value>>,
}

impl Batched {
    /// The queue of `conn`, with its task; it ends when every copy of the queue is gone and
    /// the last pipeline has its answers.
    pub(crate) fn start(conn: MultiplexedConnection) -> Batched {
        let (queue, commands) = mpsc::unbounded_channel();
        tokio::spawn(write(conn, commands));
        Batched { queue }
    }

    /// Queues `cmd` now and answers the node's answer to it.
    pub(crate) fn send(&self, cmd: Cmd) -> impl Future<Output = RedisResult<Value>> + Send {
        let (answer, answered) = oneshot::channel();
        let queued = self.queue.send(Queued { cmd, answer }).is_ok();
        async move {
            match queued {
                true => answered.await.unwrap_or_else(|_| Err(closed())),
                false => Err(closed()),
            }
        }
    }
}

/// The error of a command whose connection went away before it was answered.
fn closed() -> RedisError {
    RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
}

/// The connection's task: takes what is queued, as one pipeline, until the queue closes.
async fn write(conn: MultiplexedConnection, mut commands: mpsc::UnboundedReceiver<Queued>) {
    let mut sending = FuturesUnordered::new();
    let mut open = true;
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            biased;
            taken = commands.recv_many(&mut batch, MAX_BATCH), if open => {
                if taken == 0 {
                    open = false;
                    continue;
                }
                let mut pipeline = Box::pin(send(conn.clone(), std::mem::take(&mut batch)));
                // Polled once here: its request is on the connection's queue before the next
                // pipeline's can be, so the pipelines are written in the order they were made.
                if poll_once(pipeline.as_mut()).await.is_pending() {
                    sending.push(pipeline);
                }
            }
            Some(()) = sending.next(), if !sending.is_empty() => {}
            else => return,
        }
    }
}

/// Sends `batch` on `conn`, as one command or one pipeline, and passes the answers on.
async fn send(mut conn: MultiplexedConnection, batch: Vec<Queued>) {
    if batch.len() == 1 {
        let Some(Queued { cmd, answer }) = batch.into_iter().next() else {
            return;
        };
        let _ = answer.send(conn.send_packed_command(&cmd).await);
        return;
    }
    let mut pipeline = redis::Pipeline::with_capacity(batch.len());
    let mut answers = Vec::with_capacity(batch.len());
    for Queued { cmd, answer } in batch {
        pipeline.add_command(cmd);
        answers.push(answer);
    }
    // Server errors stay among the answers, one per command; only a broken connection or an
    // unreadable answer fails the whole pipeline.
    let error = match conn.send_packed_commands(&pipeline, 0, answers.len()).await {
        Ok(values) if values.len() == answers.len() => {
            for (answer, value) in answers.into_iter().zip(values) {
                let _ = answer.send(Ok(value));
            }
            return;
        }
        Ok(_) => RedisError::from((
            redis::ErrorKind::Client,
            "a pipeline was answered with the wrong number of replies",
        )),
        Err(error) => error,
    };
    for answer in answers {
        let _ = answer.send(Err(error.clone()));
    }
}
