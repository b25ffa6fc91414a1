//! Who a twin is, for RMB: its account (verifies its signatures), its end-to-end key (payloads
//! to it are encrypted to that key) and its relay. rmb-sdk-go reads these from the chain's
//! `Twins` storage; the grid proxy's `GET /twins` lists the same fields, and is what this
//! directory reads, cached (a twin's keys change only when its owner updates them on chain).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use gridapi::{
    ErrorCode, GridError, GridFuture,
    proxy::{Limit, Proxy, Twin, TwinFilter},
};

use crate::identity::AccountId;

/// What RMB needs of a twin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwinKeys {
    /// Twin id.
    pub id: u32,
    /// The account that signs its envelopes.
    pub account: AccountId,
    /// Its end-to-end public key (compressed secp256k1), when it published one.
    pub e2e: Option<Vec<u8>>,
    /// Its relay host(s), when set.
    pub relay: Option<String>,
}

impl TwinKeys {
    /// Reads a proxy entry; `None` when the account is not an address.
    pub fn from_proxy(t: &Twin) -> Option<TwinKeys> {
        let pk = t.public_key.trim_start_matches("0x");
        Some(TwinKeys {
            id: t.twin_id,
            account: AccountId::parse(&t.account_id)?,
            e2e: (!pk.is_empty()).then(|| hex::decode(pk).ok()).flatten(),
            relay: (!t.relay.is_empty()).then(|| t.relay.clone()),
        })
    }
}

/// Looks twins up.
pub trait TwinDirectory: Send + Sync {
    /// The twin `id`, or `NotFound`.
    fn twin(&self, id: u32) -> GridFuture<'_, TwinKeys>;
    /// Drops what is cached of `id` (its reply did not verify: its keys may have changed).
    fn forget(&self, id: u32);
}

/// [`TwinDirectory`] over the grid proxy, cached for `ttl`.
pub struct ProxyTwins {
    proxy: Arc<dyn Proxy>,
    ttl: Duration,
    cache: Mutex<HashMap<u32, (Instant, TwinKeys)>>,
}

impl ProxyTwins {
    /// A directory reading `proxy`, keeping entries `ttl`.
    pub fn new(proxy: Arc<dyn Proxy>, ttl: Duration) -> Self {
        ProxyTwins {
            proxy,
            ttl,
            cache: Mutex::default(),
        }
    }

    /// The twin whose account is `account`, or `NotFound` saying so.
    pub async fn of_account(&self, account: &AccountId) -> Result<TwinKeys, GridError> {
        let filter = TwinFilter {
            account_id: Some(account.ss58()),
            ..Default::default()
        };
        let page = self.proxy.twins(&filter, Limit::default()).await?;
        page.items
            .iter()
            .find_map(TwinKeys::from_proxy)
            .filter(|t| t.account == *account)
            .ok_or_else(|| GridError::NotFound {
                code: ErrorCode::NotFound,
                message: format!(
                    "account {account} has no twin on this grid: create one (the ThreeFold dashboard does) and try again"
                ),
            })
    }
}

impl TwinDirectory for ProxyTwins {
    fn twin(&self, id: u32) -> GridFuture<'_, TwinKeys> {
        Box::pin(async move {
            if let Some((at, t)) = self.cache.lock().expect("twins lock").get(&id)
                && at.elapsed() < self.ttl
            {
                return Ok(t.clone());
            }
            let filter = TwinFilter {
                twin_id: Some(id),
                ..Default::default()
            };
            let page = self.proxy.twins(&filter, Limit::default()).await?;
            let t = page
                .items
                .iter()
                .filter(|t| t.twin_id == id)
                .find_map(TwinKeys::from_proxy)
                .ok_or_else(|| GridError::NotFound {
                    code: ErrorCode::NotFound,
                    message: format!("twin {id} not found"),
                })?;
            self.cache
                .lock()
                .expect("twins lock")
                .insert(id, (Instant::now(), t.clone()));
            Ok(t)
        })
    }

    fn forget(&self, id: u32) {
        self.cache.lock().expect("twins lock").remove(&id);
    }
}
