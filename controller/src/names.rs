//! Machine names derived from a tester's account name and UID.
//!
//! Account names follow the identity provider's rules (any case, dots, underscores); grid names
//! and DNS labels do not allow all of that, so every machine name is derived here, once.

use sha2::{Digest, Sha256};

/// The DNS-safe form of an account name: lower case, every run of characters other than letters
/// and digits turned into one `-`, no leading or trailing `-`. `Bob.Smith_2` → `bob-smith-2`.
pub fn slug(account: &str) -> String {
    let mut out = String::with_capacity(account.len());
    for c in account.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Longest gateway name the controller generates (the grid's workload-name limit).
const MAX_GATEWAY_NAME: usize = 36;

/// The `attempt`-th candidate gateway name of a tester: `<slug>-<suffix>`, where the suffix
/// comes from the tester's UID, so it is the same on every pass and across restarts. Attempt 0
/// is the tester's name for life; later attempts are used only when another twin holds it.
pub fn gateway_name(account: &str, uid: &str, attempt: u32) -> String {
    let suffix = &hex::encode(Sha256::digest(format!("{uid}/{attempt}")))[..6];
    let mut base = slug(account);
    if base.len() < 2 {
        base.insert(0, 't');
    }
    base.truncate(MAX_GATEWAY_NAME - suffix.len() - 1);
    format!("{}-{suffix}", base.trim_end_matches('-'))
}

/// A stable hex string of `bytes` bytes derived from the tester's UID and a purpose.
pub fn derived_hex(uid: &str, purpose: &str, bytes: usize) -> String {
    hex::encode(&Sha256::digest(format!("{uid}/{purpose}"))[..bytes])
}

/// The identity a tester's machine presents to the shared engines: readable (namespace and
/// account) and unique per Tester (a suffix from its UID), so two accounts whose names slug
/// alike (`Bob.Smith`, `bob_smith`) never share a token, and the identity stays the same for
/// the Tester's whole life.
pub fn engine_identity(namespace: &str, account: &str, uid: &str) -> String {
    format!(
        "{namespace}.{}-{}",
        slug(account),
        derived_hex(uid, "engine-identity", 4)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_dns_safe() {
        assert_eq!(slug("Bob.Smith_2"), "bob-smith-2");
        assert_eq!(slug("alice-B"), "alice-b");
        assert_eq!(slug("a..b__c"), "a-b-c");
        assert_eq!(slug("X"), "x");
    }

    #[test]
    fn engine_identities_are_unique_per_tester_and_stable() {
        let (a, b) = (
            "2f1c7e0a-0000-4000-8000-000000000001",
            "2f1c7e0a-0000-4000-8000-000000000002",
        );
        // Two valid accounts that slug alike must not share an identity.
        assert_eq!(slug("Bob.Smith"), slug("bob_smith"));
        assert_ne!(
            engine_identity("team", "Bob.Smith", a),
            engine_identity("team", "bob_smith", b)
        );
        assert_eq!(
            engine_identity("team", "Bob.Smith", a),
            engine_identity("team", "Bob.Smith", a)
        );
        assert!(engine_identity("team", "Bob.Smith", a).starts_with("team.bob-smith-"));
    }

    #[test]
    fn gateway_names_follow_the_grid_rules_and_are_stable() {
        let uid = "2f1c7e0a-0000-4000-8000-000000000001";
        let n0 = gateway_name("Bob.Smith_2", uid, 0);
        assert!(n0.starts_with("bob-smith-2-"), "{n0}");
        assert_eq!(n0, gateway_name("Bob.Smith_2", uid, 0));
        assert_ne!(n0, gateway_name("Bob.Smith_2", uid, 1));
        let long = gateway_name(&"A".repeat(40), uid, 0);
        assert!(long.len() <= 36, "{long}");
        assert!(gridapi::chain::check_name(&long).is_none());
        assert!(gridapi::chain::check_name(&gateway_name("x", uid, 0)).is_none());
        for n in [n0, long] {
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
        }
    }
}
