//! The OpenAI wire, written once for every front door and the logs: the chat completion's
//! answer types (`chat`), the chat request as the translating doors write it (`chat_writer`),
//! server-sent events read and written (`sse`), and JSON text scanned
//! without a parse (`json_scan`).

pub mod chat;
pub mod chat_writer;
pub mod json_scan;
pub mod sse;

/// A serde visitor that is its own seed: it is handed to the deserializer as it is.
#[macro_export]
macro_rules! its_own_seed {
    ($visitor:ty, $value:ty, $deserialize:ident) => {
        impl<'de> serde::de::DeserializeSeed<'de> for $visitor {
            type Value = $value;

            fn deserialize<D: serde::de::Deserializer<'de>>(self, deserializer: D) -> Result<$value, D::Error> {
                deserializer.$deserialize(self)
            }
        }
    };
}
