//! One relay connection: a reader (this task) that decodes envelopes and hands each request to
//! its own task, and one writer task that sends every answer. One connection per (twin,
//! session): a newer one closes the older.
//!
//! Checks, in order, as a relay and the node behind it would: the source is the admitted twin
//! (and session) and its signature verifies ("signature verification failed"), the envelope has
//! not expired ("message has expired"), the destination is a node's twin ("twin N not found or
//! not connected"). Then the node decrypts the payload and runs the command (`node::run`); the
//! `stale_connection` fault closes the connection instead of answering.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::{Message as Frame, WebSocket};
use futures::{SinkExt, StreamExt, stream::SplitSink};
use prost::Message as _;
use tfgrid::rmb::envelope::{Envelope, Message, Payload};
use tfgrid::rmb::jwt::Claims;
use tokio::sync::{mpsc, watch};

use super::{node_answer, pong, relay_error};
use crate::faults::Hit;
use crate::node::{self, Cmd};
use crate::state::{Sim, now_secs};

/// What the writer task does next.
enum Out {
    /// Send this envelope.
    Frame(Vec<u8>),
    /// Close the websocket and stop.
    Close,
}

/// A live connection, shared by its request tasks.
struct Conn {
    sim: Arc<Sim>,
    twin: u32,
    sid: Option<String>,
    out: mpsc::UnboundedSender<Out>,
    /// Set to close the connection without answering (the `stale_connection` fault).
    close: watch::Sender<bool>,
}

/// Serves an admitted connection until it closes, is replaced, or sends what is not an envelope.
pub async fn serve(sim: Arc<Sim>, claims: Claims, socket: WebSocket) {
    let (twin, sid) = (claims.sub, claims.sid);
    let (id, mut replaced) = sim.relay.register(twin, sid.clone());
    tracing::info!(twin, session = ?sid, "relay connection opened");
    let (sink, mut stream) = socket.split();
    let (out, out_rx) = mpsc::unbounded_channel();
    tokio::spawn(write(sink, out_rx));
    let (close, mut closing) = watch::channel(false);
    let conn = Arc::new(Conn {
        sim: sim.clone(),
        twin,
        sid: sid.clone(),
        out,
        close,
    });
    let why = loop {
        tokio::select! {
            _ = &mut replaced => break "replaced by a newer connection of the same twin and session",
            _ = closing.changed() => break "closed by the stale_connection fault",
            frame = stream.next() => match frame {
                Some(Ok(Frame::Binary(b))) => match Envelope::decode(b.as_ref()) {
                    Ok(env) => conn.clone().receive(env),
                    Err(_) => break "undecodable envelope",
                },
                Some(Ok(Frame::Text(_))) => break "text frame (only binary envelopes are allowed)",
                Some(Ok(Frame::Close(_))) | None => break "closed by the peer",
                Some(Ok(_)) => {} // websocket pings: answered by axum
                Some(Err(_)) => break "websocket error",
            },
        }
    };
    sim.relay.unregister(twin, sid.clone(), id);
    let _ = conn.out.send(Out::Close);
    tracing::info!(twin, session = ?sid, reason = why, "relay connection closed");
}

/// Sends what the connection's tasks queue, in order, until told to close.
async fn write(mut sink: SplitSink<WebSocket, Frame>, mut rx: mpsc::UnboundedReceiver<Out>) {
    while let Some(o) = rx.recv().await {
        match o {
            Out::Frame(b) => {
                if sink.send(Frame::Binary(b.into())).await.is_err() {
                    break;
                }
            }
            Out::Close => {
                let _ = sink.send(Frame::Close(None)).await;
                break;
            }
        }
    }
    let _ = sink.close().await;
}

impl Conn {
    /// zos verifies a deployment's signatures against the twins' keys on chain
    /// (`Deployment.Verify`) before it takes it; gridshim has the keys of its config's twins.
    fn verify(&self, cmd: &Cmd) -> Result<(), String> {
        let Cmd::Deploy(d) = cmd else { return Ok(()) };
        tfgrid::rmb::node_bus::verify(d, |t| self.sim.rmb.get(t).map(|r| r.identity.account()))
    }

    fn send(&self, env: &Envelope) {
        let _ = self.out.send(Out::Frame(env.encode_to_vec()));
    }

    /// One envelope from the peer: pings are answered here, each request in its own task.
    fn receive(self: Arc<Self>, env: Envelope) {
        match env.message {
            Some(Message::Ping(_)) => self.send(&pong(&env)),
            Some(Message::Request(_)) => {
                self.sim.requests.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move { self.request(env).await });
            }
            // Answers and errors from a peer: gridshim's twins are all nodes, which call no one.
            _ => tracing::debug!(uid = %env.uid, "envelope for no waiting request dropped"),
        }
    }

    async fn request(&self, env: Envelope) {
        let now = now_secs();
        let Some(caller) = self.sim.rmb.get(self.twin) else {
            return;
        };
        let from_us = env
            .source
            .as_ref()
            .is_some_and(|s| s.twin == self.twin && s.connection == self.sid);
        if !from_us || env.verify(&caller.identity.account()).is_err() {
            return self.send(&relay_error(&env, "signature verification failed", now));
        }
        if env.expired(now) {
            return self.send(&relay_error(&env, "message has expired", now));
        }
        let dest = env.destination.as_ref().map(|d| d.twin).unwrap_or_default();
        let Some((dest_twin, node_id)) =
            self.sim.rmb.get(dest).and_then(|t| t.node.map(|n| (t, n)))
        else {
            return self.send(&relay_error(
                &env,
                format!("twin {dest} not found or not connected"),
                now,
            ));
        };
        let Some(Message::Request(req)) = &env.message else {
            return;
        };
        let caller_pk = caller.e2e.public();
        let body = match &env.payload {
            Some(Payload::Cipher(c)) => dest_twin
                .e2e
                .decrypt(&caller_pk, c)
                .map_err(|e| e.to_string()),
            Some(Payload::Plain(p)) => Ok(p.clone()),
            None => Ok(Vec::new()),
        };
        let cmd = body.and_then(|b| Cmd::parse(&req.command, &b).map_err(|e| e.body.message));
        let result = match cmd {
            Ok(cmd) => {
                let stale = self
                    .sim
                    .faults
                    .fire(Hit::new("stale_connection", cmd.call()).node(Some(node_id)))
                    .is_some();
                if stale {
                    self.close.send_replace(true);
                    return;
                }
                match self.verify(&cmd) {
                    Ok(()) => node::run(self.sim.clone(), node_id, self.twin, cmd)
                        .await
                        .map_err(|e| e.body.message),
                    Err(text) => Err(text),
                }
            }
            Err(text) => Err(text),
        };
        tracing::debug!(twin = self.twin, node = node_id, command = %req.command, ok = result.is_ok(), "relay command");
        self.send(&node_answer(
            &env,
            dest,
            dest_twin,
            &caller_pk,
            result,
            now_secs(),
        ));
    }
}
