//! Who signed in, and whether they may pass.

use serde::{Deserialize, Serialize};

/// The account a visitor signed in with, as the provider's userinfo endpoint described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The provider's subject (Forgejo: the numeric account id).
    pub sub: String,
    /// `preferred_username` from userinfo.
    pub username: Option<String>,
    /// `email` from userinfo.
    pub email: Option<String>,
    /// `email_verified` from userinfo, when the provider says.
    pub email_verified: Option<bool>,
}

impl Identity {
    /// The name to show and to hand to the app: the username, else the email, else the subject.
    pub fn display_name(&self) -> &str {
        self.username
            .as_deref()
            .or(self.email.as_deref())
            .unwrap_or(&self.sub)
    }
}

/// The accounts that may pass a gate: usernames or email addresses, compared without regard
/// to case (providers treat both case-insensitively).
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    entries: Vec<String>,
}

impl AllowList {
    /// An allow-list of these usernames and email addresses (blank entries are ignored).
    pub fn new<I, S>(entries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut entries: Vec<String> = entries
            .into_iter()
            .map(|e| e.as_ref().trim().to_lowercase())
            .filter(|e| !e.is_empty())
            .collect();
        entries.sort();
        entries.dedup();
        Self { entries }
    }

    /// Whether `who` may pass: their username is listed, or their email is listed and the
    /// provider has not said it is unverified (an unverified address proves nothing).
    pub fn allows(&self, who: &Identity) -> bool {
        let listed = |value: &str| {
            let value = value.trim().to_lowercase();
            !value.is_empty() && self.entries.binary_search(&value).is_ok()
        };
        let by_name = who.username.as_deref().is_some_and(listed);
        let by_email =
            who.email_verified != Some(false) && who.email.as_deref().is_some_and(listed);
        by_name || by_email
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(username: Option<&str>, email: Option<&str>, verified: Option<bool>) -> Identity {
        Identity {
            sub: "1001".into(),
            username: username.map(Into::into),
            email: email.map(Into::into),
            email_verified: verified,
        }
    }

    #[test]
    fn by_username_any_case() {
        let list = AllowList::new(["Alice.Smith", "admin", " "]);
        assert!(list.allows(&who(Some("alice.smith"), None, None)));
        assert!(list.allows(&who(Some("ADMIN"), None, None)));
        assert!(!list.allows(&who(Some("bob"), None, None)));
        assert!(!list.allows(&who(Some(""), None, None)));
        assert!(!list.allows(&who(None, None, None)));
    }

    #[test]
    fn by_email_unless_unverified() {
        let list = AllowList::new(["carol@example.test"]);
        assert!(list.allows(&who(Some("carol2"), Some("Carol@Example.test"), Some(true))));
        assert!(list.allows(&who(None, Some("carol@example.test"), None)));
        assert!(!list.allows(&who(None, Some("carol@example.test"), Some(false))));
    }

    #[test]
    fn the_subject_alone_never_matches() {
        // Forgejo's sub is a number; an allow-list entry "1001" must not let account 1001 in
        // by its id (usernames can be numeric too).
        let list = AllowList::new(["1001"]);
        assert!(!list.allows(&who(None, None, None)));
        assert!(!list.allows(&who(Some("someone"), None, None)));
    }

    #[test]
    fn empty_list_allows_nobody() {
        assert!(!AllowList::default().allows(&who(Some("alice"), Some("a@b"), Some(true))));
    }

    #[test]
    fn display_name_prefers_username() {
        assert_eq!(
            who(Some("alice"), Some("a@b"), None).display_name(),
            "alice"
        );
        assert_eq!(who(None, Some("a@b"), None).display_name(), "a@b");
        assert_eq!(who(None, None, None).display_name(), "1001");
    }
}
