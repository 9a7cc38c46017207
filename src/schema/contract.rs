//! One declaration per contract object: [`contract!`] writes the typed struct
//! the server serialises and the descriptor the mapping compiler checks
//! against from the same field list, so the two cannot drift apart.
//!
//! A field reads `rust_name: Type => "jsonName" Kind;` where `Kind` is a
//! [`FieldType`](super::FieldType) variant (`Object(SCHEMA)` and
//! `List(SCHEMA)` name another object's descriptor), optionally followed by
//! `since V1_1` (the default is 1.0). A field written without a `Kind` is
//! serialised but not mappable (an error answer's `errorCode`). Whether a
//! mapping must fill a field follows its Rust type: see [`Presence`].

/// Whether a valid object must carry a field of this Rust type: an `Option`
/// may be absent, and a string table may be empty; everything else is required.
pub trait Presence {
    /// True when the mapping must produce the field.
    const REQUIRED: bool = true;
}

impl<T> Presence for Option<T> {
    const REQUIRED: bool = false;
}

impl<K, V> Presence for std::collections::BTreeMap<K, V> {
    const REQUIRED: bool = false;
}

impl Presence for String {}
impl Presence for bool {}
impl Presence for i64 {}
impl Presence for serde_json::Number {}
impl<T> Presence for Vec<T> {}

/// Declares a contract object: the struct (with `Debug`, `Clone`,
/// `PartialEq`, serde and `skip_serializing_none`; further attributes such as
/// `#[derive(Default)]` or `#[serde(deny_unknown_fields)]` pass through) and
/// a `pub static` [`ObjectSchema`](super::ObjectSchema) of its mappable
/// fields, in the struct's order, which is the order the card is written in.
macro_rules! contract {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident as $schema:ident {
            $(
                $(#[$field_meta:meta])*
                $field:ident : $ty:ty => $json:literal
                    $($kind:ident $(($inner:ident))? $(since $since:ident)?)?;
            )*
        }
    )*) => {$(
        #[serde_with::skip_serializing_none]
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        $(#[$meta])*
        pub struct $name {
            $(
                $(#[$field_meta])*
                #[serde(rename = $json)]
                pub $field: $ty,
            )*
        }

        // Held directly (not in an `Option`), an object is required.
        impl $crate::schema::contract::Presence for $name {}

        #[doc = concat!("The mapping compiler's descriptor of [`", stringify!($name), "`].")]
        pub static $schema: $crate::schema::ObjectSchema = $crate::schema::ObjectSchema {
            name: stringify!($name),
            fields: &[$($(
                $crate::schema::FieldSchema {
                    name: $json,
                    ty: $crate::schema::FieldType::$kind $((&$inner))?,
                    required: <$ty as $crate::schema::contract::Presence>::REQUIRED,
                    since: contract!(@since $($since)?),
                },
            )?)*],
        };
    )*};
    (@since) => { $crate::schema::ApiVersion::V1_0 };
    (@since $since:ident) => { $crate::schema::ApiVersion::$since };
}

pub(crate) use contract;
