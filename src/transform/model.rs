//! The one rewrite a body gets on its way to an alternative provider: its `model`.

use bytes::Bytes;
use serde_json::{Map, Value};

/// The chat body with another `model`; every other field stays as the client sent it, in order.
/// Only a request that goes to an alternative pays for this parse.
pub fn with_model(body: &Bytes, model: &str) -> Bytes {
    let Ok(mut chat) = serde_json::from_slice::<Map<String, Value>>(body) else {
        // Only text that the lighter read skipped, such as a lone surrogate escape, gets here:
        // the body goes as it is, and the provider judges it.
        return body.clone();
    };
    chat.insert("model".to_owned(), Value::String(model.to_owned()));
    // A map of JSON values always serialises.
    Bytes::from(serde_json::to_vec(&chat).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_model_changes_and_the_field_order_stays() {
        let body = Bytes::from_static(br#"{"stream":true,"model":"llama","messages":[]}"#);
        assert_eq!(with_model(&body, "glm-4.6"), r#"{"stream":true,"model":"glm-4.6","messages":[]}"#);
        let absent = Bytes::from_static(br#"{"messages":[]}"#);
        assert_eq!(with_model(&absent, "glm-4.6"), r#"{"messages":[],"model":"glm-4.6"}"#);
    }
}
