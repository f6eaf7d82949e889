//! An OpenAI chat completion as the providers answer it, whole or one chunk of a stream: the
//! one set of types that every front door and the request log read answers with. A chunk has
//! the shape of a whole completion, its message's piece under `delta` instead of `message`.
//! Text is borrowed from the bytes where it holds no escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct Completion<'a> {
    #[serde(borrow)]
    pub choices: Vec<Choice<'a>>,
    pub usage: Option<Usage>,
    /// A stream's error event: the relay's own when the upstream broke, or a provider's.
    pub error: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct Choice<'a> {
    #[serde(borrow, alias = "delta")]
    pub message: Message<'a>,
    #[serde(borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
    /// The stop sequence that ended the answer, where a provider says (vLLM does).
    pub stop_reason: Option<Value>,
}

/// The assistant's message, or a chunk's piece of it.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct Message<'a> {
    #[serde(borrow, deserialize_with = "text")]
    pub content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub reasoning: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
}

impl<'a> Message<'a> {
    /// The reasoning, under whichever name the provider gives it.
    pub fn reasoning(&self) -> Option<&str> {
        self.reasoning_content.as_deref().or(self.reasoning.as_deref()).filter(|text| !text.is_empty())
    }

    pub fn text(&self) -> Option<&str> {
        self.content.as_deref().filter(|text| !text.is_empty())
    }

    pub fn calls(&self) -> &[ToolCall<'a>] {
        self.tool_calls.as_deref().unwrap_or_default()
    }
}

/// A tool call, or a chunk's piece of one (its `index` says which).
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct ToolCall<'a> {
    pub index: Option<usize>,
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub function: Option<Function<'a>>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct Function<'a> {
    #[serde(borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

impl ToolCall<'_> {
    pub fn name(&self) -> &str {
        self.function.as_ref().and_then(|f| f.name.as_deref()).unwrap_or_default()
    }

    pub fn arguments(&self) -> &str {
        self.function.as_ref().and_then(|f| f.arguments.as_deref()).unwrap_or_default()
    }
}

/// Tokens an answer reports having used.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub prompt_tokens_details: Option<PromptDetails>,
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(default)]
pub struct PromptDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(default)]
pub struct CompletionDetails {
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self { prompt_tokens, completion_tokens, ..Self::default() }
    }

    /// Prompt tokens read from the provider's cache (counted in `prompt_tokens` too).
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details.map_or(0, |details| details.cached_tokens)
    }

    /// Completion tokens spent reasoning (counted in `completion_tokens` too).
    pub fn reasoning_tokens(&self) -> u64 {
        self.completion_tokens_details.map_or(0, |details| details.reasoning_tokens)
    }
}

/// The message of an error answer: OpenAI's `error.message`, another JSON's `message`,
/// `error` or `detail`, or its text (cut at 2000 characters).
pub fn error_message(status: u16, answer: &[u8]) -> String {
    const SHOWN: usize = 2000;
    let message = match serde_json::from_slice::<Value>(answer) {
        Ok(json) => [&json["error"]["message"], &json["message"], &json["error"], &json["detail"]]
            .into_iter()
            .find_map(|field| field.as_str().map(str::to_owned)),
        Err(_) => None,
    };
    message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(answer);
        let text = text.trim();
        match text.char_indices().nth(SHOWN) {
            Some((end, _)) => format!("{}…", &text[..end]),
            None if text.is_empty() => format!("the upstream answered {status}"),
            None => text.to_owned(),
        }
    })
}

/// A message's content: a string, or the text of its parts joined; `null` is none.
fn text<'de: 'a, 'a, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct Text;

    impl<'de> Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a string, a list of parts, or null")
        }

        fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(text)))
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(text.to_owned())))
        }

        fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(text)))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut parts: A) -> Result<Self::Value, A::Error> {
            #[derive(Deserialize)]
            struct Part<'a> {
                #[serde(borrow)]
                text: Option<Cow<'a, str>>,
            }
            let mut joined = String::new();
            while let Some(part) = parts.next_element::<Part>()? {
                joined.push_str(part.text.as_deref().unwrap_or_default());
            }
            Ok(Some(Cow::Owned(joined)))
        }
    }

    deserializer.deserialize_any(Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_completion_and_a_chunk_read_alike() {
        let whole = br#"{"choices":[{"message":{"content":"Hi","reasoning_content":"think","tool_calls":[
            {"id":"c1","function":{"name":"ls","arguments":"{}"}}]},"finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":9,"completion_tokens":6,"prompt_tokens_details":{"cached_tokens":4},
            "completion_tokens_details":{"reasoning_tokens":2}}}"#;
        let completion: Completion = serde_json::from_slice(whole).unwrap();
        let choice = &completion.choices[0];
        assert_eq!((choice.message.text(), choice.message.reasoning()), (Some("Hi"), Some("think")));
        assert_eq!((choice.message.calls()[0].name(), choice.message.calls()[0].arguments()), ("ls", "{}"));
        assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
        let usage = completion.usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.cached_tokens(), usage.reasoning_tokens()), (9, 4, 2));

        let chunk = br#"{"choices":[{"delta":{"reasoning":"r","tool_calls":[{"index":1,"function":{"arguments":"{\"a"}}]}}],"usage":null}"#;
        let chunk: Completion = serde_json::from_slice(chunk).unwrap();
        let delta = &chunk.choices[0].message;
        assert_eq!(
            (delta.reasoning(), delta.calls()[0].index, delta.calls()[0].arguments()),
            (Some("r"), Some(1), "{\"a")
        );
        assert!(matches!(delta.calls()[0].function.as_ref().unwrap().arguments, Some(Cow::Owned(_))), "escaped");
        assert_eq!(chunk.usage, None);
    }

    #[test]
    fn content_may_be_parts_or_null() {
        let parts: Message =
            serde_json::from_str(r#"{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}"#).unwrap();
        assert_eq!(parts.text(), Some("ab"));
        let none: Message = serde_json::from_str(r#"{"content":null,"tool_calls":null}"#).unwrap();
        assert_eq!((none.text(), none.calls().len()), (None, 0));
    }
}
