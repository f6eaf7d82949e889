//! A JSON setting's syntax error as the operator is told it: what kind and where (line and
//! column), never serde's own message, which can quote the text, and a key with it.

use serde_json::error::Category;

/// `cut short at line 1, column 18`, `not valid JSON at line 3, column 7`, or for JSON of
/// another shape than `expected`, `JSON, but not an object at …`.
pub fn problem(error: &serde_json::Error, expected: &str) -> String {
    let what = match error.classify() {
        Category::Eof => "cut short".to_owned(),
        Category::Syntax => "not valid JSON".to_owned(),
        Category::Data => format!("JSON, but not {expected}"),
        Category::Io => "not readable".to_owned(),
    };
    format!("{what} at line {}, column {}", error.line(), error.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> String {
        problem(&serde_json::from_str::<serde_json::Map<_, _>>(text).unwrap_err(), "an object")
    }

    #[test]
    fn a_problem_says_where_and_never_what() {
        assert_eq!(of(r#"{"a":"sk-secret""#), "cut short at line 1, column 16");
        assert_eq!(of("{\n  \"a\": sk-secret}"), "not valid JSON at line 2, column 8");
        assert_eq!(of(r#"["sk-secret"]"#), "JSON, but not an object at line 1, column 0");
        assert!(!of(r#"{"a": sk-secret}"#).contains("sk-"));
    }
}
