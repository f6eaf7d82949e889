// @generated automatically by Diesel CLI.

diesel::table! {
    api_keys (id) {
        id -> Integer,
        key_hash -> Text,
        key_prefix -> Text,
        name -> Text,
        created_at -> Timestamp,
        revoked -> Bool,
        revoked_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        request_count -> BigInt,
    }
}
