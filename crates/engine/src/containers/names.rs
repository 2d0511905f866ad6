//! Container names: validation, and generated names like `eager_lovelace` for containers created without one.

use crate::error::{Error, Result};

// Berth's own word lists (Docker's idea, our words): an adjective and a pioneer of computing or science.
const LEFT: &[&str] = &[
    "amber", "bold", "brave", "bright", "calm", "clever", "cosmic", "crisp", "daring", "eager",
    "fancy", "gentle", "glad", "golden", "happy", "humble", "jolly", "keen", "kind", "lively",
    "lucid", "merry", "misty", "nimble", "noble", "patient", "plucky", "polite", "proud", "quick",
    "quiet", "rapid", "serene", "sharp", "shiny", "silent", "steady", "stoic", "sunny", "swift",
    "tender", "tidy", "vivid", "warm", "wise", "witty", "zealous",
];

const RIGHT: &[&str] = &[
    "babbage", "bell", "boole", "cerf", "curie", "darwin", "dijkstra", "einstein", "euler",
    "faraday", "fermat", "feynman", "gauss", "goodall", "hamilton", "hopper", "hypatia", "johnson",
    "kepler", "knuth", "lamarr", "lamport", "liskov", "lovelace", "maxwell", "meitner", "mendel",
    "newton", "noether", "pascal", "planck", "ritchie", "shannon", "sinoussi", "tesla", "thompson",
    "torvalds", "turing", "wilkes", "wozniak", "yalow",
];

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, with an optional leading `/`.
pub fn validate(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok =
        bare.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(bare.to_owned())
    } else {
        Err(Error::InvalidParameter(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

/// A random `adjective_name`, retried by the caller while taken; `attempt` > 0 appends a digit as Docker does.
pub fn generate(random: u64, attempt: u32) -> String {
    let left = LEFT[(random % LEFT.len() as u64) as usize];
    let right = RIGHT[((random >> 32) % RIGHT.len() as u64) as usize];
    if attempt == 0 {
        format!("{left}_{right}")
    } else {
        format!("{left}_{right}{}", random % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert_eq!(validate("/web").unwrap(), "web");
        assert_eq!(validate("a.b-c_d").unwrap(), "a.b-c_d");
        assert!(validate("-x").is_err());
        assert!(validate("a").is_err());
        assert!(validate("bad name").is_err());
    }

    #[test]
    fn generated_names_are_valid() {
        for r in [0u64, 1, u64::MAX, 0xdead_beef_1234_5678] {
            assert!(validate(&generate(r, 0)).is_ok());
            assert!(validate(&generate(r, 3)).is_ok());
        }
    }
}
