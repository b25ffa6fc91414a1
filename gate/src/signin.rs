//! The sign-in itself: sending a visitor to the provider, and the callback that turns its
//! answer into a session (single-use state, allow-list, sealed cookie).

use super::*;

impl Gate {
    pub(crate) async fn start_sign_in(&self, method: &Method, uri: &Uri) -> Response {
        let return_to = if matches!(*method, Method::GET | Method::HEAD) {
            uri.path_and_query()
                .map(|pq| pq.as_str().to_string())
                .unwrap_or_else(|| "/".into())
        } else {
            "/".into()
        };
        match self.inner.provider.authorize(return_to).await {
            Ok((url, pending)) => {
                let sealed = self.inner.sealer.seal(LOGIN_COOKIE, &pending);
                let mut response = Redirect::to(url.as_str()).into_response();
                self.set_cookie(
                    &mut response,
                    LOGIN_COOKIE,
                    &sealed,
                    CALLBACK_PATH,
                    LOGIN_TTL.as_secs(),
                );
                response
            }
            Err(e) => {
                tracing::warn!(error = %e, gate = %self.inner.public_origin, "cannot start a sign-in");
                pages::provider_unavailable()
            }
        }
    }

    pub(crate) async fn callback(&self, uri: &Uri, headers: &HeaderMap) -> Response {
        let mut response = match self.finish_sign_in(uri, headers).await {
            Ok((session, return_to)) => {
                tracing::info!(
                    gate = %self.inner.public_origin,
                    account = %session.who.display_name(),
                    "signed in"
                );
                let sealed = self.inner.sealer.seal(SESSION_COOKIE, &session);
                let mut response = Redirect::to(&return_to).into_response();
                self.set_cookie(
                    &mut response,
                    SESSION_COOKIE,
                    &sealed,
                    "/",
                    self.inner.session_max_age.as_secs(),
                );
                response
            }
            Err(e) => {
                tracing::warn!(error = %e, gate = %self.inner.public_origin, "refused a sign-in");
                match e {
                    CallbackError::Provider(_) => pages::provider_unavailable(),
                    e => pages::sign_in_failed(StatusCode::BAD_REQUEST, &e.to_string()),
                }
            }
        };
        self.set_cookie(&mut response, LOGIN_COOKIE, "", CALLBACK_PATH, 0);
        response
    }

    pub(crate) async fn finish_sign_in(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(Session, String), CallbackError> {
        let query: HashMap<String, String> = uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        if let Some(error) = query.get("error") {
            // Only the standard error code: the description may echo request values.
            let code: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(CallbackError::ProviderRefused(code));
        }
        let (Some(code), Some(state)) = (query.get("code"), query.get("state")) else {
            return Err(CallbackError::MissingParameters);
        };
        let now = chrono::Utc::now().timestamp();
        let pending = cookie::cookie_values(headers, LOGIN_COOKIE)
            .filter_map(|v| self.inner.sealer.open::<PendingLogin>(LOGIN_COOKIE, v))
            .find(|p| now - p.started <= LOGIN_TTL.as_secs() as i64 && p.started <= now + 60)
            .ok_or(CallbackError::NoPendingLogin)?;
        if !constant_time_eq(pending.state.as_bytes(), state.as_bytes()) {
            return Err(CallbackError::StateMismatch);
        }
        self.consume_state(&pending.state)?;
        let who = self
            .inner
            .provider
            .finish(&pending, code.clone(), query.get("iss").map(String::as_str))
            .await?;
        let return_to =
            if pending.return_to.starts_with('/') && !pending.return_to.starts_with("//") {
                pending.return_to
            } else {
                "/".into()
            };
        Ok((Session { who, at: now }, return_to))
    }

    /// Marks a `state` as used; refuses one used before.
    pub(crate) fn consume_state(&self, state: &str) -> Result<(), CallbackError> {
        let mut used = self
            .inner
            .used_states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if used.contains_key(state) {
            return Err(CallbackError::StateReplayed);
        }
        if used.len() >= MAX_USED_STATES {
            used.retain(|_, at| at.elapsed() < LOGIN_TTL);
        }
        if used.len() >= MAX_USED_STATES {
            // Still full of live states: forget the oldest. Its sealed cookie is still
            // bounded by LOGIN_TTL and the provider's single-use code.
            if let Some(oldest) = used
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone())
            {
                used.remove(&oldest);
            }
        }
        used.insert(state.to_string(), Instant::now());
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
