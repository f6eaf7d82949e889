//! Model-name patterns: `*` matches any run of characters (none included); nothing else is
//! special. Matching is linear in the name: each literal piece is found once, left to right.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    /// The pattern split at its stars: one piece means no star at all.
    pieces: Vec<String>,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Self { pieces: pattern.split('*').map(str::to_owned).collect() }
    }

    /// A pattern without a star names exactly one model.
    pub fn is_plain(&self) -> bool {
        self.pieces.len() == 1
    }

    pub fn matches(&self, name: &str) -> bool {
        let (first, rest) = self.pieces.split_first().expect("split yields at least one piece");
        let Some((last, middle)) = rest.split_last() else {
            return name == first;
        };
        let Some(mut left) = name.strip_prefix(first.as_str()) else {
            return false;
        };
        // The last piece is anchored at the end; what precedes it must hold the middle pieces
        // in order, each taken at its first place (the earliest leaves the most room after it).
        if left.len() < last.len() || !left.ends_with(last.as_str()) {
            return false;
        }
        left = &left[..left.len() - last.len()];
        for piece in middle {
            match memchr::memmem::find(left.as_bytes(), piece.as_bytes()) {
                Some(at) => left = &left[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).matches(name)
    }

    #[test]
    fn a_plain_pattern_is_the_name_itself() {
        assert!(matches("glm", "glm"));
        assert!(!matches("glm", "glm-4.7"));
        assert!(Glob::new("glm").is_plain() && !Glob::new("glm*").is_plain());
    }

    #[test]
    fn stars_match_any_run_including_none() {
        assert!(matches("claude-*", "claude-sonnet-4-5"));
        assert!(matches("claude-*", "claude-"));
        assert!(!matches("claude-*", "claude"));
        assert!(matches("claude-*haiku*", "claude-3-5-haiku-20241022"));
        assert!(matches("claude-*haiku*", "claude-haiku"));
        assert!(!matches("claude-*haiku*", "claude-sonnet-4"));
        assert!(matches("*", ""));
        assert!(matches("*-latest", "glm-latest"));
        assert!(!matches("*-latest", "glm-latest-2"));
    }

    #[test]
    fn pieces_may_not_overlap() {
        // "aba*aba" needs two copies of "aba"; "ababa" shares its middle "a".
        assert!(!matches("aba*aba", "ababa"));
        assert!(matches("aba*aba", "abaaba"));
        assert!(!matches("a*b*c", "acb"));
        assert!(matches("a*b*c", "axbxc"));
    }
}
