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
        rpm -> Nullable<BigInt>,
        tpm -> Nullable<BigInt>,
        max_parallel -> Nullable<BigInt>,
        daily_tokens -> Nullable<BigInt>,
        monthly_tokens -> Nullable<BigInt>,
        expires_at -> Nullable<Timestamp>,
        models -> Nullable<Text>,
    }
}

diesel::table! {
    key_usage (key_id, day, model) {
        key_id -> Integer,
        day -> Date,
        model -> Text,
        requests -> BigInt,
        prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
    }
}

diesel::joinable!(key_usage -> api_keys (key_id));
diesel::allow_tables_to_appear_in_same_query!(api_keys, key_usage);
