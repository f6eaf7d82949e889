//! How much context a chat completion fills, and whether it carries images.
//!
//! `chat_view` counts while it reads the body; this is what it counts and how routing uses it.

/// What routing needs to know about a chat completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChatFacts {
    /// Characters of all text that fills the context window: the text of every message of every
    /// role (string contents and the text parts of list contents), tool-call names and
    /// arguments, and the tool definitions. When the body is too short for the estimate to pass
    /// the threshold, it is not counted: this is then the body's length, a bound on it.
    pub chars: usize,
    pub has_images: bool,
}

impl ChatFacts {
    /// Estimated tokens at `chars_per_token` characters per token.
    pub fn estimated_tokens(&self, chars_per_token: f64) -> f64 {
        self.chars as f64 / chars_per_token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_divides_by_chars_per_token() {
        let facts = ChatFacts { chars: 204_000, has_images: false };
        assert!((facts.estimated_tokens(1.7) - 120_000.0).abs() < 1e-6);
    }
}
