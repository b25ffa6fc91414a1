//! The Forge's own floor, beside scenario 2: what the Forge needs for the one thing it makes
//! per tester while the clock runs, its sign-in client (an OAuth2 application, whose secret
//! Gitea hashes with bcrypt; the accounts are made before the clock starts). A minimal client
//! with the administrator's token makes the same number of applications, the same number in
//! flight as the bench's creates, retrying Gitea's "database is locked" as the controller does,
//! and deletes them afterwards (not timed).

use std::time::{Duration, Instant};

use e2e::forge::Forge;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::json;

/// The floor's applications' names start with this.
const PREFIX: &str = "bench forge floor ";

/// Seconds from the first application asked for to the last one made.
pub async fn forge_floor(forge: &Forge, n: usize, in_flight: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| make(forge, i))
        .buffer_unordered(in_flight)
        .try_collect::<Vec<()>>()
        .await?;
    let took = start.elapsed();
    remove_all(forge, in_flight).await;
    Ok(took)
}

async fn make(forge: &Forge, i: usize) -> anyhow::Result<()> {
    let body = json!({
        "name": format!("{PREFIX}{i}"),
        "redirect_uris": [format!("https://floor-{i}.example/oauth2/callback")],
        "confidential_client": true,
    });
    for _ in 0..50 {
        let (status, answer) = forge
            .admin(Method::POST, "user/applications/oauth2", Some(body.clone()))
            .await;
        match status {
            201 => return Ok(()),
            500 if answer.to_string().contains("database is locked") => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            _ => anyhow::bail!("the Forge answered {status}: {answer}"),
        }
    }
    anyhow::bail!("the Forge stayed locked for application {i}")
}

/// Deletes every application the floor made (a refused POST may have made one too).
async fn remove_all(forge: &Forge, in_flight: usize) {
    let mut ids = Vec::new();
    for page in 1.. {
        let (_, apps) = forge
            .admin(
                Method::GET,
                &format!("user/applications/oauth2?page={page}&limit=50"),
                None,
            )
            .await;
        let apps = apps.as_array().cloned().unwrap_or_default();
        ids.extend(
            apps.iter()
                .filter(|a| a["name"].as_str().is_some_and(|n| n.starts_with(PREFIX)))
                .filter_map(|a| a["id"].as_i64()),
        );
        if apps.len() < 50 {
            break;
        }
    }
    futures::stream::iter(ids)
        .for_each_concurrent(in_flight.min(8), |id| async move {
            forge
                .admin(
                    Method::DELETE,
                    &format!("user/applications/oauth2/{id}"),
                    None,
                )
                .await;
        })
        .await;
}
