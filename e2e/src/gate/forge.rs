//! The Forge (a real Gitea, `e2e::forge`) as the gates' provider, as on the testers' machines:
//! one confidential OAuth2 application per gate with that gate's callback as its only redirect,
//! the accounts `alice` and `bob` and the administrator [`ADMIN`] (passwords `<name>-password`),
//! and a sign-in through Gitea's own pages (its form, then its "Authorize" page, which Gitea
//! shows once per person and application).

use anyhow::bail;
use e2e::forge::Forge;
use serde_json::{Value, json};

use super::browser::{Browser, Page};

/// The administrator account of the gates' tests (Gitea reserves `admin`).
pub const ADMIN: &str = "ops";

/// A gate's OAuth2 client at the Forge.
#[derive(Clone)]
pub struct Client {
    /// The client id.
    pub id: String,
    /// The client secret (never print it).
    pub secret: String,
}

/// Makes the accounts the gates' tests sign in with (a no-op when they exist).
pub async fn accounts(forge: &Forge) {
    for name in ["alice", "bob", ADMIN] {
        forge
            .ensure_account(name)
            .await
            .unwrap_or_else(|e| panic!("making {name} at the Forge: {e}"));
    }
}

/// Registers an application for the gate at `public_url` (its only redirect URI is the gate's
/// callback) and makes the accounts.
pub async fn client_for(forge: &Forge, public_url: &str) -> Client {
    accounts(forge).await;
    let redirect = format!("{}/oauth2/callback", public_url.trim_end_matches('/'));
    let (status, app) = forge
        .admin(
            reqwest::Method::POST,
            "user/applications/oauth2",
            Some(json!({
                "name": format!("gate test {public_url}"),
                "redirect_uris": [redirect],
                "confidential_client": true,
            })),
        )
        .await;
    assert_eq!(status, 201, "registering the gate's application: {app}");
    let field = |k: &str| app[k].as_str().map(str::to_string);
    Client {
        id: field("client_id").expect("a client id"),
        secret: field("client_secret").expect("a client secret"),
    }
}

/// The account id (`sub` in Gitea's tokens) of `name`.
pub async fn account_id(forge: &Forge, name: &str) -> String {
    let (status, user): (u16, Value) = forge
        .admin(reqwest::Method::GET, &format!("users/{name}"), None)
        .await;
    assert_eq!(status, 200, "{user}");
    user["id"].as_i64().expect("an id").to_string()
}

/// Signs in as `login` from `start` on a gate up to the Forge's answer that sends the browser
/// back to the gate's callback (not followed), or the Forge page where it stopped (a refused
/// password shows the form again).
pub async fn to_callback(
    browser: &Browser,
    start: &str,
    login: &str,
    password: &str,
) -> anyhow::Result<Page> {
    let form = browser.follow(start).await?;
    if !form.url.path().ends_with("/user/login") {
        bail!(
            "not the Forge's sign-in form at {} ({}): {}",
            form.url,
            form.status,
            form.body
        );
    }
    let answer = browser
        .post_form(
            form.url.join("/user/login")?.as_str(),
            &[("user_name", login), ("password", password)],
        )
        .await?;
    let page = within_forge(browser, answer).await?;
    if page.is_redirect() || !page.body.contains("id=\"authorize-app\"") {
        return Ok(page);
    }
    // Gitea's "Authorize" page: the person agrees.
    let mut fields = hidden_inputs(&page.body);
    fields.push(("granted".into(), "true".into()));
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let answer = browser
        .post_form(page.url.join("/login/oauth/grant")?.as_str(), &fields)
        .await?;
    within_forge(browser, answer).await
}

/// Signs in as `login` from `start` and follows back through the gate to the end.
pub async fn sign_in(
    browser: &Browser,
    start: &str,
    login: &str,
    password: &str,
) -> anyhow::Result<Page> {
    let page = to_callback(browser, start, login, password).await?;
    if page.is_redirect() {
        return browser.follow_from(page).await;
    }
    Ok(page)
}

/// Follows redirects while they stay at the Forge (same origin as `page`).
async fn within_forge(browser: &Browser, mut page: Page) -> anyhow::Result<Page> {
    let origin = page.url.origin();
    for _ in 0..10 {
        match page.location.clone() {
            Some(to) if page.is_redirect() && to.origin() == origin => {
                page = browser.get(to.as_str()).await?;
            }
            _ => return Ok(page),
        }
    }
    bail!("more than 10 redirects at the Forge, last {}", page.url)
}

/// The `<input type="hidden" name=... value=...>` fields of a page, values unescaped.
fn hidden_inputs(body: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(unescape(&tag[start..end]))
    };
    body.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            if !tag.contains("type=\"hidden\"") {
                return None;
            }
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect()
}

/// Undoes the HTML escaping Go's templates apply to attribute values.
fn unescape(s: &str) -> String {
    s.replace("&#43;", "+")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_fields_are_read_and_unescaped() {
        let body = r#"<form><input type="hidden" name="client_id" value="abc">
            <input type="hidden" name="redirect_uri" value="http://x/cb?a=1&amp;b=2">
            <input type="text" name="q" value="no"><input type="hidden" name="state" value="a&#43;b"></form>"#;
        assert_eq!(
            hidden_inputs(body),
            [
                ("client_id".to_string(), "abc".to_string()),
                ("redirect_uri".into(), "http://x/cb?a=1&b=2".into()),
                ("state".into(), "a+b".into()),
            ]
        );
    }
}
