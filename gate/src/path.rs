//! The request path the gate decides on.
//!
//! The gate and the app behind it must agree on what a path means, or a path that looks public
//! to one is private to the other. Rather than guess how every app decodes paths, the gate
//! refuses any path whose meaning could differ between two decoders: encoded separators
//! (`%2F`, `%5C`), encoded `#`, `?`, `;` or NUL, dot segments (plain or encoded), `;` path
//! parameters, backslashes and empty segments (`//`). What is left is a canonical path, and the
//! gate compares it exactly with its two public paths. The query string never takes part.

use thiserror::Error;

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    /// The path does not start with `/` (an authority-form or asterisk-form request target).
    #[error("the path does not start with a slash")]
    NotAbsolute,
    /// The path holds `//`, an empty segment some servers collapse and others do not.
    #[error("the path holds an empty segment (//)")]
    EmptySegment,
    /// The path holds a `.` or `..` segment, plain or percent-encoded.
    #[error("the path holds a dot segment")]
    DotSegment,
    /// The path holds `;` (path parameters), a backslash, `#`, or a control character.
    #[error("the path holds a character that servers read differently")]
    AmbiguousCharacter,
    /// The path holds a percent-encoded separator or control character (`%2F`, `%5C`, `%23`,
    /// `%3F`, `%3B`, `%00`...).
    #[error("the path holds an encoded separator")]
    EncodedSeparator,
    /// A `%` is not followed by two hexadecimal digits.
    #[error("the path holds a malformed percent-encoding")]
    BadPercentEncoding,
}

/// Checks that `path` (the path of a request target, without the query string) is canonical
/// and returns it unchanged when it is.
///
/// ```
/// assert_eq!(gate::check_path("/apps/planner").unwrap(), "/apps/planner");
/// assert!(gate::check_path("/health/..%2Fsecret").is_err());
/// assert!(gate::check_path("//health").is_err());
/// ```
pub fn check_path(path: &str) -> Result<&str, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(PathError::BadPercentEncoding)?;
            let decoded = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(PathError::BadPercentEncoding)?;
            if matches!(decoded, b'/' | b'\\' | b'#' | b'?' | b';') || decoded.is_ascii_control() {
                return Err(PathError::EncodedSeparator);
            }
            i += 3;
            continue;
        }
        if matches!(b, b';' | b'\\' | b'#') || b.is_ascii_control() {
            return Err(PathError::AmbiguousCharacter);
        }
        i += 1;
    }
    // The first segment is the empty string before the leading slash.
    for segment in path[1..].split('/') {
        let lowered = segment.to_ascii_lowercase();
        let unencoded = lowered.replace("%2e", ".");
        if unencoded == "." || unencoded == ".." {
            return Err(PathError::DotSegment);
        }
    }
    if path.contains("//") {
        return Err(PathError::EmptySegment);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for path in [
            "/",
            "/health",
            "/oauth2/callback",
            "/apps/planner/",
            "/a%20b",
            "/file%25name",
            "/.well-known/x",
            "/a.b/c..d",
            "/caf%C3%A9",
        ] {
            assert_eq!(check_path(path), Ok(path), "{path}");
        }
    }

    #[test]
    fn refuses_path_tricks() {
        let cases = [
            ("health", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
            ("//health", PathError::EmptySegment),
            ("/apps//x", PathError::EmptySegment),
            ("/health/..", PathError::DotSegment),
            ("/health/../secret", PathError::DotSegment),
            ("/./secret", PathError::DotSegment),
            ("/health/%2e%2e/secret", PathError::DotSegment),
            ("/health/.%2E/secret", PathError::DotSegment),
            ("/health%2F..%2Fsecret", PathError::EncodedSeparator),
            ("/health%2fx", PathError::EncodedSeparator),
            ("/health%5Cx", PathError::EncodedSeparator),
            ("/health%23x", PathError::EncodedSeparator),
            ("/health%3Fx", PathError::EncodedSeparator),
            ("/health%3bx", PathError::EncodedSeparator),
            ("/health%00", PathError::EncodedSeparator),
            ("/health;x", PathError::AmbiguousCharacter),
            ("/health\\x", PathError::AmbiguousCharacter),
            ("/health#x", PathError::AmbiguousCharacter),
            ("/health%", PathError::BadPercentEncoding),
            ("/health%2", PathError::BadPercentEncoding),
            ("/health%zz", PathError::BadPercentEncoding),
        ];
        for (path, want) in cases {
            assert_eq!(check_path(path), Err(want), "{path}");
        }
    }
}
