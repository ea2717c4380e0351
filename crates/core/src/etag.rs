//! The state token: a strong entity tag derived from the user's cursor sequence, which
//! changes exactly when the user's data does (contract §2), and RFC 9110 matching of
//! `If-None-Match` against it.

/// The quoted tag for a user whose sequence is at `seq`.
pub fn state_tag(seq: i64) -> String {
    format!("\"s{seq}\"")
}

/// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2): `W/` prefixes are
/// ignored, any tag of a comma-separated list may match, and `*` matches any
/// current representation.
pub fn none_match(header: &str, tag: &str) -> bool {
    let want = opaque(tag);
    header.split(',').map(str::trim).any(|t| t == "*" || (!t.is_empty() && opaque(t) == want))
}

fn opaque(t: &str) -> &str {
    t.strip_prefix("W/").unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let tag = state_tag(42);
        assert_eq!(tag, "\"s42\"");
        assert!(none_match("\"s42\"", &tag));
        assert!(none_match("W/\"s42\"", &tag));
        assert!(none_match("\"x\", \"s42\"", &tag));
        assert!(none_match("*", &tag));
        assert!(!none_match("\"s41\"", &tag));
        assert!(!none_match("\"s4\"", &tag));
        assert!(!none_match("s42", &tag), "unquoted is not the same tag");
        assert!(!none_match("", &tag));
        assert!(!none_match(" , ", &tag));
    }

    #[test]
    fn tags_differ_per_state() {
        assert_ne!(state_tag(1), state_tag(10));
    }
}
