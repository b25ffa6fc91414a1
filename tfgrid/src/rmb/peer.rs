//! An RMB peer that makes calls, as rmb-sdk-go's `peer.RpcClient` does: one websocket to the
//! relay (admitted by a JWT in the URL's query), envelopes signed and encrypted to the
//! destination twin, answers matched to their request by `uid`, a time-out per call (60 s like
//! the real client: a lost reply means the call *may have landed*), pings every 20 s, and a
//! reconnect with backoff whenever the socket drops.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures::{SinkExt, StreamExt, stream::SplitSink};
use gridapi::{ErrorCode, GridError};
use prost::Message as _;
use tokio::{
    net::TcpStream,
    sync::{Mutex as AsyncMutex, oneshot, watch},
    task::JoinHandle,
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message as Frame};

use super::{
    crypto::E2eKey,
    envelope::{Address, Envelope, Message, Payload, Request, SCHEMA_JSON},
    jwt,
    twins::TwinDirectory,
};
use crate::identity::Identity;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a peer connects and how long it waits.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The relay's websocket URL (`wss://relay.grid.tf`).
    pub relay: String,
    /// A session id, to run beside another peer of the same twin.
    pub session: Option<String>,
    /// How long a call waits for its answer (the real client: 60 s).
    pub call_timeout: Duration,
}

/// Whether the peer is connected to its relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not yet tried.
    Connecting,
    /// Connected.
    Up,
    /// The last attempt failed, or the socket dropped: the text says why.
    Down(String),
}

/// A calling peer. Cheap to share; dropping the last handle stops its connection.
pub struct Peer {
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

struct Inner {
    identity: Arc<Identity>,
    e2e: E2eKey,
    twin: u32,
    cfg: PeerConfig,
    relay_host: String,
    twins: Arc<dyn TwinDirectory>,
    sink: AsyncMutex<Option<SplitSink<Socket, Frame>>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Envelope>>>,
    link: watch::Sender<Link>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("twin", &self.inner.twin)
            .field("relay", &self.inner.cfg.relay)
            .finish_non_exhaustive()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn retry_later(code: ErrorCode, message: String) -> GridError {
    GridError::RetryLater { code, message }
}

impl Peer {
    /// Starts a peer of `twin` (the identity's own twin, looked up by the caller) and its
    /// connection task. Fails only when the relay URL or the identity's seed is unusable.
    pub fn start(
        identity: Arc<Identity>,
        twin: u32,
        cfg: PeerConfig,
        twins: Arc<dyn TwinDirectory>,
    ) -> Result<Peer, GridError> {
        let fatal = |m: String| GridError::Fatal {
            code: ErrorCode::Invalid,
            message: m,
        };
        let url = url::Url::parse(&cfg.relay)
            .map_err(|e| fatal(format!("relay URL {:?} is not a URL: {e}", cfg.relay)))?;
        if !matches!(url.scheme(), "ws" | "wss") {
            return Err(fatal(format!(
                "relay URL {:?} must start with wss:// (or ws:// for a local relay)",
                cfg.relay
            )));
        }
        let relay_host = url.host_str().unwrap_or_default().to_string();
        let e2e = E2eKey::of(&identity).map_err(|e| fatal(e.to_string()))?;
        let (link, _) = watch::channel(Link::Connecting);
        let inner = Arc::new(Inner {
            identity,
            e2e,
            twin,
            cfg,
            relay_host,
            twins,
            sink: AsyncMutex::new(None),
            pending: Mutex::default(),
            link,
        });
        let task = tokio::spawn(connection(inner.clone()));
        Ok(Peer { inner, task })
    }

    /// The twin this peer speaks as.
    pub fn twin(&self) -> u32 {
        self.inner.twin
    }

    /// This peer's end-to-end public key (what its twin must publish on chain).
    pub fn e2e_public(&self) -> Vec<u8> {
        self.inner.e2e.public()
    }

    /// The state of the link to the relay, to watch.
    pub fn link(&self) -> watch::Receiver<Link> {
        self.inner.link.subscribe()
    }

    /// Calls `command` on twin `dest` with a JSON `payload`; the answer's payload.
    pub async fn call(
        &self,
        dest: u32,
        command: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, GridError> {
        let inner = &self.inner;
        let peer = inner.twins.twin(dest).await?;
        let uid = uuid::Uuid::new_v4().to_string();
        let mut env = Envelope {
            uid: uid.clone(),
            timestamp: now(),
            expiration: inner.cfg.call_timeout.as_secs().max(1),
            source: Some(Address {
                twin: inner.twin,
                connection: inner.cfg.session.clone(),
            }),
            destination: Some(Address {
                twin: dest,
                connection: None,
            }),
            message: Some(Message::Request(Request {
                command: command.to_string(),
            })),
            schema: Some(SCHEMA_JSON.into()),
            federation: peer.relay.clone(),
            relays: vec![inner.relay_host.clone()],
            ..Default::default()
        };
        env.payload =
            Some(match &peer.e2e {
                Some(pk) => Payload::Cipher(inner.e2e.encrypt(pk, &payload).map_err(|e| {
                    GridError::Fatal {
                        code: ErrorCode::Invalid,
                        message: format!("twin {dest}: {e}"),
                    }
                })?),
                None => Payload::Plain(payload),
            });
        env.sign(&inner.identity);

        let (tx, rx) = oneshot::channel();
        inner
            .pending
            .lock()
            .expect("pending lock")
            .insert(uid.clone(), tx);
        let _forget = Forget(inner, &uid);
        inner.send(env.encode_to_vec()).await?;
        let answer = match tokio::time::timeout(inner.cfg.call_timeout, rx).await {
            Ok(Ok(env)) => env,
            Ok(Err(_)) => {
                return Err(retry_later(
                    ErrorCode::BadGateway,
                    format!(
                        "{command} to twin {dest}: the relay connection was lost before the answer: the call may have landed"
                    ),
                ));
            }
            Err(_) => {
                return Err(retry_later(
                    ErrorCode::Timeout,
                    format!(
                        "{command} to twin {dest}: no answer within {} s (context deadline exceeded): the call may have landed",
                        inner.cfg.call_timeout.as_secs()
                    ),
                ));
            }
        };
        inner.open(answer, dest, command).await
    }
}

/// Removes a call's entry from the reply map however the call ends.
struct Forget<'a>(&'a Inner, &'a str);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.pending.lock().expect("pending lock").remove(self.1);
    }
}

impl Inner {
    /// Writes one frame; waits up to 2 s for a connection, as rmb-sdk-go does.
    async fn send(&self, bytes: Vec<u8>) -> Result<(), GridError> {
        let mut link = self.link.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            {
                let mut sink = self.sink.lock().await;
                if let Some(s) = sink.as_mut() {
                    return s.send(Frame::binary(bytes)).await.map_err(|e| {
                        retry_later(
                            ErrorCode::BadGateway,
                            format!("relay {}: send failed: {e}", self.cfg.relay),
                        )
                    });
                }
            }
            let why = match &*link.borrow() {
                Link::Down(why) => why.clone(),
                _ => "not connected yet".to_string(),
            };
            if tokio::time::timeout_at(deadline, link.changed())
                .await
                .is_err()
            {
                return Err(retry_later(
                    ErrorCode::BadGateway,
                    format!("relay {} unreachable: {why}", self.cfg.relay),
                ));
            }
        }
    }

    /// Checks an answer (signature of the destination twin, then decrypts) and reads it.
    async fn open(&self, env: Envelope, dest: u32, command: &str) -> Result<Vec<u8>, GridError> {
        let unverified = |m: String| GridError::Fatal {
            code: ErrorCode::Unauthorized,
            message: format!("{command} to twin {dest}: answer rejected: {m}"),
        };
        if env.source.is_none()
            && let Some(Message::Error(e)) = &env.message
        {
            return Err(retry_later(
                ErrorCode::BadGateway,
                format!(
                    "{command} to twin {dest}: the relay answered: {}",
                    e.message
                ),
            ));
        }
        if env.source_twin() != dest {
            return Err(unverified(format!(
                "it came from twin {}",
                env.source_twin()
            )));
        }
        let peer = self.twins.twin(dest).await?;
        if let Err(e) = env.verify(&peer.account) {
            self.twins.forget(dest);
            return Err(unverified(e.to_string()));
        }
        let payload = match env.payload {
            Some(Payload::Cipher(c)) => {
                let pk = peer
                    .e2e
                    .as_deref()
                    .ok_or_else(|| unverified("encrypted by a twin with no public key".into()))?;
                self.e2e
                    .decrypt(pk, &c)
                    .map_err(|e| unverified(e.to_string()))?
            }
            Some(Payload::Plain(p)) => p,
            None => Vec::new(),
        };
        match env.message {
            Some(Message::Response(_)) => Ok(payload),
            Some(Message::Error(e)) => Err(super::node_bus::node_error(&e.message, dest, command)),
            _ => Err(unverified("not a response".into())),
        }
    }

    /// Hands a frame from the relay to the call waiting for it.
    fn deliver(&self, bytes: &[u8]) {
        let Ok(env) = Envelope::decode(bytes) else {
            tracing::warn!(relay = %self.cfg.relay, "undecodable frame from the relay dropped");
            return;
        };
        if matches!(env.message, Some(Message::Pong(_))) {
            return;
        }
        let waiting = self.pending.lock().expect("pending lock").remove(&env.uid);
        match waiting {
            Some(tx) => {
                let _ = tx.send(env);
            }
            None => tracing::debug!(uid = %env.uid, "answer for no waiting call dropped"),
        }
    }

    async fn connect(&self) -> Result<Socket, String> {
        let token = jwt::token(
            &self.identity,
            self.twin,
            self.cfg.session.as_deref(),
            now(),
            60,
        );
        let url = format!("{}?{token}", self.cfg.relay.trim_end_matches('?'));
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(20),
            tokio_tungstenite::connect_async(url),
        )
        .await
        .map_err(|_| "connect timed out after 20 s".to_string())?
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => format!(
                "relay refused the connection: HTTP {}: {}",
                r.status(),
                String::from_utf8_lossy(r.body().as_deref().unwrap_or_default())
            ),
            other => other.to_string(),
        })?;
        Ok(ws)
    }
}

/// Keeps the peer connected: connect, serve until the socket drops, wait, again.
async fn connection(inner: Arc<Inner>) {
    let mut delay = Duration::from_millis(250);
    loop {
        match inner.connect().await {
            Ok(ws) => {
                delay = Duration::from_millis(250);
                let (sink, stream) = ws.split();
                *inner.sink.lock().await = Some(sink);
                inner.link.send_replace(Link::Up);
                tracing::info!(relay = %inner.cfg.relay, twin = inner.twin, "connected to the relay");
                let why = serve(&inner, stream).await;
                inner.sink.lock().await.take();
                // Answers cannot come over a new socket: fail the calls waiting now.
                inner.pending.lock().expect("pending lock").clear();
                tracing::warn!(relay = %inner.cfg.relay, error = %why, "relay connection lost, reconnecting");
                inner.link.send_replace(Link::Down(why));
            }
            Err(why) => {
                tracing::warn!(relay = %inner.cfg.relay, error = %why, "cannot connect to the relay");
                inner.link.send_replace(Link::Down(why));
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Reads frames until the socket fails or stalls; pings every 20 s, gives up after 40 s of
/// silence (rmb-sdk-go's `pingInterval`/`pongWait`).
async fn serve(inner: &Inner, mut stream: futures::stream::SplitStream<Socket>) -> String {
    let mut ping = tokio::time::interval(Duration::from_secs(20));
    ping.tick().await;
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Frame::Binary(b))) => { last = tokio::time::Instant::now(); inner.deliver(&b) }
                Some(Ok(Frame::Close(c))) => return format!("relay closed the connection: {c:?}"),
                Some(Ok(_)) => last = tokio::time::Instant::now(),
                Some(Err(e)) => return e.to_string(),
                None => return "relay closed the connection".into(),
            },
            _ = ping.tick() => {
                if last.elapsed() > Duration::from_secs(40) {
                    return "connection stalling: nothing from the relay for 40 s".into();
                }
                let mut sink = inner.sink.lock().await;
                if let Some(s) = sink.as_mut()
                    && let Err(e) = s.send(Frame::Ping(Vec::new().into())).await
                {
                    return e.to_string();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rmb::twins::TwinKeys;

    struct NoTwins;

    impl TwinDirectory for NoTwins {
        fn twin(&self, id: u32) -> gridapi::GridFuture<'_, TwinKeys> {
            Box::pin(async move {
                Err(GridError::NotFound {
                    code: ErrorCode::NotFound,
                    message: format!("twin {id} not found"),
                })
            })
        }
        fn forget(&self, _: u32) {}
    }

    /// A `wss://` relay is reached over TLS (rustls with ring, webpki roots): a server that
    /// speaks no TLS is a link down with the handshake's error, and the peer keeps trying.
    #[tokio::test]
    async fn a_wss_relay_is_spoken_to_over_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(b"HTTP/1.1 400 not tls\r\n\r\n").await;
            }
        });
        let identity = Identity::from_seed(zeroize::Zeroizing::new([3; 32]), Default::default());
        let peer = Peer::start(
            Arc::new(identity),
            7,
            PeerConfig {
                relay: format!("wss://localhost:{port}"),
                session: None,
                call_timeout: Duration::from_secs(1),
            },
            Arc::new(NoTwins),
        )
        .unwrap();
        let mut link = peer.link();
        let why = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Link::Down(why) = &*link.borrow_and_update() {
                    return why.clone();
                }
                link.changed().await.unwrap();
            }
        })
        .await
        .expect("the link goes down");
        assert!(!why.is_empty());
        assert!(
            Peer::start(
                Arc::new(Identity::from_seed(
                    zeroize::Zeroizing::new([3; 32]),
                    Default::default()
                )),
                7,
                PeerConfig {
                    relay: "https://relay.grid.tf".into(),
                    session: None,
                    call_timeout: Duration::from_secs(1),
                },
                Arc::new(NoTwins),
            )
            .is_err()
        );
    }
}
