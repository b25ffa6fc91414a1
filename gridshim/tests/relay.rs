//! The node face over the RMB relay, driven by the real grid client (`tfgrid::rmb`): the peer's
//! JWT, signed and encrypted envelopes, the node's signed answers, the relay's refusals, and
//! the faults that hit a relay call.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use gridapi::http::proxy::HttpProxy;
use gridapi::node::{CMD_GET, NodeBus};
use gridapi::proxy::Proxy;
use gridshim::state::rmb::node_identity;
use prost::Message as _;
use secrecy::SecretString;
use tfgrid::identity::{Identity, KeyType};
use tfgrid::rmb::crypto::E2eKey;
use tfgrid::rmb::envelope::{Address, Envelope, Message, Payload, Ping, Request, SCHEMA_JSON};
use tfgrid::rmb::node_bus::RmbSetup;
use tfgrid::rmb::{Peer, PeerConfig, ProxyTwins, RmbNodeBus, jwt};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Frame};

/// Public development phrases only.
const ALICE: &str = "bottom drive obey lake curtain smoke basket hold race lonely fit walk";
const BOB: &str = "volume behind cable present pull exchange wish loyal avocado snap film increase";

fn identity(phrase: &str, kind: KeyType) -> Arc<Identity> {
    Arc::new(Identity::from_mnemonic(&SecretString::from(phrase), kind).unwrap())
}

fn alice() -> Arc<Identity> {
    identity(ALICE, KeyType::Sr25519)
}

fn bob() -> Arc<Identity> {
    identity(BOB, KeyType::Ed25519)
}

fn now() -> u64 {
    gridshim::state::now_secs()
}

/// gridshim whose first twin (US) has Alice's phrase and the other (OTHER) Bob's, in ed25519.
async fn relay_shim() -> Shim {
    let (mut cfg, _) = config("");
    cfg.twins[0].mnemonic = Some(ALICE.into());
    cfg.twins[1].mnemonic = Some(BOB.into());
    cfg.twins[1].key_type = Some("ed25519".into());
    shim_cfg(cfg, None, false).await
}

fn relay_url(s: &Shim) -> String {
    format!("ws://{}/relay", s.running.addr)
}

/// A calling peer of `twin`, as the node bus builds its own.
fn peer(s: &Shim, me: Arc<Identity>, twin: u32) -> Arc<Peer> {
    let proxy: Arc<dyn Proxy> = Arc::new(HttpProxy::new(&s.url()));
    let twins = Arc::new(ProxyTwins::new(proxy, Duration::from_secs(60)));
    Arc::new(Peer::start(me, twin, peer_config(s), twins).unwrap())
}

fn peer_config(s: &Shim) -> PeerConfig {
    PeerConfig {
        relay: relay_url(s),
        session: Some("test".into()),
        call_timeout: Duration::from_secs(60),
    }
}

/// The node bus over RMB, as the controller builds it: it finds its own twin by account on the
/// proxy's `GET /twins`, then connects.
fn rmb(s: &Shim, me: Arc<Identity>, twin: u32) -> RmbNodeBus {
    RmbNodeBus::new(RmbSetup {
        identity: Ok(me),
        proxy: Arc::new(HttpProxy::new(&s.url())),
        peer: peer_config(s),
        expected_twin: Some(twin),
    })
}

/// The node's twin of a test node.
fn twin_of(node: u32) -> u32 {
    1000 + node
}

/// Creates the contract over the HTTP chain face and deploys over RMB.
async fn submit_rmb(s: &Shim, bus: &RmbNodeBus, node: u32, d: &mut Deployment) -> u64 {
    let c =
        s.us.create_node_contract(&NodeContractRequest {
            node_id: node,
            deployment_hash: d.challenge_hash(),
            metadata: "tester-uid".into(),
        })
        .await
        .unwrap();
    d.contract_id = c.contract_id;
    bus.deploy(twin_of(node), d).await.unwrap();
    c.contract_id
}

async fn settled_rmb(bus: &RmbNodeBus, node: u32, cid: u64) -> Deployment {
    for _ in 0..2000 {
        let d = bus.get(twin_of(node), cid).await.expect("get over rmb");
        if d.workloads
            .iter()
            .all(|w| w.result.state != WorkloadState::Init)
        {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("deployment {cid} never settled");
}

#[tokio::test]
async fn deploys_and_reads_back_over_the_relay() {
    let s = relay_shim().await;
    let bus = rmb(&s, alice(), US);
    let mut d = vm_deployment(US, "k1", &seed(), 2);
    let cid = submit_rmb(&s, &bus, 12, &mut d).await;
    let got = settled_rmb(&bus, 12, cid).await;
    assert!(got.all_ok(), "{:?}", got.errors());
    assert_eq!(got.contract_id, cid);
    let changes = bus.changes(twin_of(12), cid).await.unwrap();
    let vm_states: Vec<_> = changes
        .iter()
        .filter(|c| c.name == "vm")
        .map(|c| c.result.state)
        .collect();
    assert_eq!(vm_states, vec![WorkloadState::Init, WorkloadState::Ok]);

    // The same deployment over the HTTP face reads the same.
    assert_eq!(s.us.get_deployment(12, cid).await.unwrap(), got);

    // One command, one counted request (the twin's keys are cached by then).
    let before = s.admin.requests().await.unwrap().served;
    bus.get(twin_of(12), cid).await.unwrap();
    assert_eq!(s.admin.requests().await.unwrap().served, before + 1);

    // The node's own errors, sorted by their text as over HTTP.
    let e = bus.get(twin_of(12), 999_999).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::NotFound, "{e}");
    assert!(e.message().contains("deployment 999999 not found"), "{e}");
    let e = bus.deploy(twin_of(12), &d).await.unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Conflict, "{e}");
    let bob_bus = rmb(&s, bob(), OTHER);
    let e = bob_bus.get(twin_of(12), cid).await.unwrap_err();
    assert!(e.message().contains("twin id mismatch"), "{e}");
    assert_eq!(e.code(), ErrorCode::Unauthorized);

    // A twin that is not a node's: the relay answers, without a source.
    let peer = peer(&s, alice(), US);
    let e = peer.call(OTHER, CMD_GET, b"{}".to_vec()).await.unwrap_err();
    assert!(e.is_retry_later(), "{e}");
    assert!(
        e.message().contains("twin 99 not found or not connected"),
        "{e}"
    );
}

#[tokio::test]
async fn the_proxy_lists_the_twins_keys() {
    let s = relay_shim().await;
    let node = node_identity(1012);
    let r = s
        .http
        .get(format!("{}/twins?twin_id=1012", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!([{
            "twinId": 1012,
            "accountId": node.account().ss58(),
            "relay": s.running.addr.to_string(),
            "publicKey": hex::encode(E2eKey::of(&node).unwrap().public()),
        }])
    );
    // Two twins with a mnemonic and four node twins; paged like every listing.
    let r = s
        .http
        .get(format!("{}/twins?ret_count=true&size=4&page=2", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["count"], "6");
    let page: Vec<gridapi::proxy::Twin> = r.json().await.unwrap();
    assert_eq!(page.len(), 2);
    let by_account: Vec<gridapi::proxy::Twin> = s
        .http
        .get(format!(
            "{}/twins?account_id={}",
            s.url(),
            alice().account().ss58()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        by_account.iter().map(|t| t.twin_id).collect::<Vec<_>>(),
        vec![US]
    );
}

/// Connects with a raw websocket; the HTTP status and body when refused.
async fn raw(
    s: &Shim,
    token: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    (u16, String),
> {
    match tokio_tungstenite::connect_async(format!("{}?{token}", relay_url(s))).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(r)) => Err((
            r.status().as_u16(),
            String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).into_owned(),
        )),
        Err(e) => panic!("connect: {e}"),
    }
}

#[tokio::test]
async fn tokens_not_signed_by_the_twin_are_refused() {
    let s = relay_shim().await;
    let forged = jwt::token(&bob(), US, None, now(), 60);
    let (status, body) = raw(&s, &forged).await.unwrap_err();
    assert_eq!(status, 401);
    assert!(body.contains("signature"), "{body}");
    let unknown = jwt::token(&alice(), 5, None, now(), 60);
    assert_eq!(
        raw(&s, &unknown).await.unwrap_err(),
        (401, "twin not found 5".to_string())
    );
    let old = jwt::token(&alice(), US, None, now() - 600, 60);
    let (status, body) = raw(&s, &old).await.unwrap_err();
    assert_eq!((status, body.contains("expired")), (401, true), "{body}");

    // The peer sees the refusal as a link that stays down.
    let peer = peer(&s, bob(), US);
    let mut link = peer.link();
    let down = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let tfgrid::rmb::Link::Down(why) = &*link.borrow_and_update() {
                return why.clone();
            }
            link.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
    assert!(down.contains("401"), "{down}");
}

fn request(uid: &str, dest: u32, timestamp: u64) -> Envelope {
    Envelope {
        uid: uid.into(),
        timestamp,
        expiration: 60,
        source: Some(Address {
            twin: US,
            connection: None,
        }),
        destination: Some(Address {
            twin: dest,
            connection: None,
        }),
        message: Some(Message::Request(Request {
            command: CMD_GET.into(),
        })),
        schema: Some(SCHEMA_JSON.into()),
        payload: Some(Payload::Plain(br#"{"contract_id":1}"#.to_vec())),
        ..Default::default()
    }
}

#[tokio::test]
async fn envelopes_the_relay_refuses() {
    let s = relay_shim().await;
    let mut ws = raw(&s, &jwt::token(&alice(), US, None, now(), 60))
        .await
        .unwrap();
    let mut ask = async |env: Envelope| -> Envelope {
        ws.send(Frame::binary(env.encode_to_vec())).await.unwrap();
        loop {
            match ws.next().await.unwrap().unwrap() {
                Frame::Binary(b) => return Envelope::decode(b.as_ref()).unwrap(),
                _ => continue,
            }
        }
    };
    let relay_error = |env: &Envelope| match (&env.source, &env.message) {
        (None, Some(Message::Error(e))) => e.message.clone(),
        other => panic!("want a relay error, got {other:?}"),
    };

    let mut forged = request("u1", 1012, now());
    forged.sign(&bob());
    let answer = ask(forged).await;
    assert_eq!(answer.uid, "u1");
    assert_eq!(relay_error(&answer), "signature verification failed");

    let mut spoofed = request("u2", 1012, now());
    spoofed.source = Some(Address {
        twin: OTHER,
        connection: None,
    });
    spoofed.sign(&bob());
    assert_eq!(
        relay_error(&ask(spoofed).await),
        "signature verification failed"
    );

    let mut old = request("u3", 1012, now() - 120);
    old.sign(&alice());
    assert_eq!(relay_error(&ask(old).await), "message has expired");

    let mut elsewhere = request("u4", 4242, now());
    elsewhere.sign(&alice());
    assert_eq!(
        relay_error(&ask(elsewhere).await),
        "twin 4242 not found or not connected"
    );

    // A plain (unencrypted) request is answered, signed by the node, encrypted to us.
    let mut plain = request("u5", 1012, now());
    plain.sign(&alice());
    let answer = ask(plain).await;
    answer.verify(&node_identity(1012).account()).unwrap();
    match answer.message {
        Some(Message::Error(e)) => assert_eq!(e.message, "deployment 1 not found"),
        other => panic!("want the node's error, got {other:?}"),
    }

    let ping = Envelope {
        uid: "p".into(),
        message: Some(Message::Ping(Ping {})),
        source: Some(Address {
            twin: US,
            connection: None,
        }),
        ..Default::default()
    };
    let pong = ask(ping).await;
    assert!(matches!(pong.message, Some(Message::Pong(_))), "{pong:?}");

    // Not an envelope: the relay drops the connection.
    ws.send(Frame::binary(vec![0xff, 0xff, 0xff]))
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Frame::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the connection was dropped");
}

#[tokio::test]
async fn a_stale_connection_drops_and_the_peer_reconnects() {
    let s = relay_shim().await;
    let bus = rmb(&s, alice(), US);
    let mut d = vm_deployment(US, "k2", &seed(), 2);
    let cid = submit_rmb(&s, &bus, 12, &mut d).await;
    s.admin
        .inject(&FaultSpec {
            kind: FaultKind::StaleConnection,
            mode: FaultMode::Once,
            scope: FaultScope {
                node_id: Some(12),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let e = bus.get(twin_of(12), cid).await.unwrap_err();
    assert!(e.is_retry_later(), "{e}");
    assert!(e.message().contains("may have landed"), "{e}");
    let got = bus.get(twin_of(12), cid).await.unwrap();
    assert_eq!(got.contract_id, cid);
}

#[tokio::test]
async fn an_unreachable_node_is_retry_later() {
    let s = relay_shim().await;
    let bus = rmb(&s, alice(), US);
    s.admin
        .inject(&FaultSpec {
            kind: FaultKind::NodeUnreachable,
            mode: FaultMode::Once,
            scope: FaultScope {
                node_id: Some(12),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let e = bus.get(twin_of(12), 1).await.unwrap_err();
    assert!(e.is_retry_later(), "{e}");
    assert_eq!(e.code(), ErrorCode::NodeUnreachable);
    assert!(
        e.message()
            .contains("failed to send request to node 12 (twin 1012): context deadline exceeded"),
        "{e}"
    );
    // A node that is down answers the same way.
    let e = bus.get(twin_of(14), 1).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NodeUnreachable, "{e}");
}
