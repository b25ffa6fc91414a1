//! Shared engines over real HTTP: each accepts only the tester's own token, and one without a
//! token store refuses to listen.

mod common;

use common::*;

#[tokio::test]
async fn engines_accept_only_the_testers_own_token() {
    let s = shim("").await;
    let body = serde_json::json!({ "input": "hello" });
    s.admin
        .register_engine_token("embedder", "alice", "alice-token-0123456789")
        .await
        .unwrap();
    s.admin
        .register_engine_token("embedder", "bob", "bob-token-0123456789")
        .await
        .unwrap();
    let ok = s
        .admin
        .call_engine("embedder", "alice", "alice-token-0123456789", &body)
        .await
        .unwrap();
    assert_eq!(ok["tester"], "alice");
    let no = s
        .admin
        .call_engine("embedder", "alice", "", &body)
        .await
        .unwrap_err();
    assert_eq!(no.code(), ErrorCode::Unauthenticated);
    assert_eq!(no.message(), "missing bearer token");
    let wrong = s
        .admin
        .call_engine("embedder", "alice", "guessed-token-000000", &body)
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), ErrorCode::Unauthenticated);
    assert_eq!(wrong.message(), "invalid token");
    let theirs = s
        .admin
        .call_engine("embedder", "alice", "bob-token-0123456789", &body)
        .await
        .unwrap_err();
    assert_eq!(theirs.code(), ErrorCode::Unauthorized);
    assert_eq!(theirs.message(), "token belongs to another tester");
    // A token is bound to its engine too.
    let other_engine = s
        .admin
        .call_engine("voice", "alice", "alice-token-0123456789", &body)
        .await
        .unwrap_err();
    assert_eq!(other_engine.code(), ErrorCode::Unauthenticated);

    s.admin
        .revoke_engine_token("embedder", "alice")
        .await
        .unwrap();
    s.admin
        .revoke_engine_token("embedder", "alice")
        .await
        .unwrap();
    let revoked = s
        .admin
        .call_engine("embedder", "alice", "alice-token-0123456789", &body)
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), ErrorCode::Unauthenticated);
    let inspection = s.admin.inspect().await.unwrap();
    assert_eq!(inspection.tokens.len(), 1);
    let raw = serde_json::to_string(&inspection).unwrap();
    assert!(!raw.contains("bob-token"), "inspection prints a token");
}

#[tokio::test]
async fn engine_without_token_store_refuses_to_listen() {
    let (mut cfg, _) = config("");
    cfg.engines.token_store_unavailable = vec!["voice".into()];
    let s = shim_cfg(cfg, None, false).await;
    let engines = s.admin.engines().await.unwrap();
    let voice = engines.iter().find(|e| e.name == "voice").unwrap();
    assert!(!voice.listening && !voice.token_store_available);
    assert!(
        engines
            .iter()
            .find(|e| e.name == "embedder")
            .unwrap()
            .listening
    );
    // Nothing answers on its address, and its registry refuses for now.
    assert!(
        s.http
            .post(format!("{}{}", voice.url, voice.call_path))
            .send()
            .await
            .is_err()
    );
    let e = s
        .admin
        .register_engine_token("voice", "alice", "alice-token-0123456789")
        .await
        .unwrap_err();
    assert!(e.is_retry_later(), "{e:?}");

    // The store comes back: the engine opens; it goes away again: the engine closes.
    s.admin.set_token_store("voice", true).await.unwrap();
    s.admin
        .register_engine_token("voice", "alice", "alice-token-0123456789")
        .await
        .unwrap();
    let ok = s
        .admin
        .call_engine(
            "voice",
            "alice",
            "alice-token-0123456789",
            &serde_json::json!({}),
        )
        .await
        .unwrap();
    assert_eq!(ok["tester"], "alice");
    s.admin.set_token_store("voice", false).await.unwrap();
    let e = eventually(|| async {
        match s
            .admin
            .call_engine(
                "voice",
                "alice",
                "alice-token-0123456789",
                &serde_json::json!({}),
            )
            .await
        {
            Err(e) if e.is_retry_later() => Ok(e),
            Ok(_) => Err(GridError::Fatal {
                code: ErrorCode::Internal,
                message: "still open".into(),
            }),
            Err(e) => panic!("{e:?}"),
        }
    })
    .await;
    assert_eq!(e.code(), ErrorCode::NodeUnreachable);
}
