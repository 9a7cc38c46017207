//! The chat Auth API card (spec: Auth API 1.2): the typed structs the server
//! serialises and the descriptor the mapping compiler checks against.
//!
//! The struct field names and the descriptor must agree; a unit test below
//! serialises a fully populated card and compares its keys with the descriptor.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{ApiVersion, FieldSchema, FieldType, ObjectSchema};

/// The body of a successful answer.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Response {
    /// The client.
    pub client: Option<Client>,
    /// Organisations the client belongs to.
    pub company_list: Option<Vec<Company>>,
    /// An error answer's code (see the error table); absent on a card.
    pub error_code: Option<String>,
    /// An error answer's text; absent on a card.
    pub error_text: Option<String>,
}

/// The client.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Client {
    /// Client id in the CRM.
    pub id: String,
    /// Full name.
    pub name: String,
    /// Last name.
    pub surname: String,
    /// First name.
    pub first_name: String,
    /// Patronymic (middle name).
    pub patronymic: String,
    /// Client type code, "0" or "1".
    #[serde(rename = "type")]
    pub client_type: String,
    /// Whether the bank allows serving this client.
    pub enabled: bool,
    /// Date of birth, `YYYY-MM-DD`.
    pub birthdate: Option<String>,
    /// Client id in the core banking system.
    pub ext_ref: Option<String>,
    /// Client id in the card system.
    pub card_ref: Option<String>,
    /// The client's branch.
    pub branch: Option<Branch>,
    /// Full link that opens the client in the CRM.
    #[serde(rename = "crmURL")]
    pub crm_url: Option<String>,
    /// Taxpayer number (INN).
    pub inn: Option<String>,
    /// Short name (since 1.1).
    pub short_name: Option<String>,
    /// Deprecated: extra information as name → value; `field_list` replaces it.
    pub fields: Option<BTreeMap<String, String>>,
    /// Extra information, in the order the operator sees it (since 1.1).
    pub field_list: Option<Vec<Field>>,
    /// Confirmed contacts, for omnichannel linking (since 1.2).
    pub contacts: Option<Contacts>,
    /// Code word operators and bots use to identify the client by hand (since 1.2).
    pub secret_word: Option<String>,
    /// Client groups, for automatic segmentation (since 1.2).
    pub group: Option<Vec<Group>>,
}

/// The client's branch.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Branch {
    /// Branch id in the external system.
    pub id: Option<i64>,
    /// Id in the master accounting system (e.g. core banking).
    pub ext_ref: Option<String>,
    /// Bank identification code (BIK).
    pub bik: Option<String>,
    /// Branch name.
    pub name: Option<String>,
}

/// An organisation the client belongs to.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Company {
    /// Organisation id in the external system.
    pub id: i64,
    /// Name.
    pub name: Option<String>,
    /// Organisation type code.
    #[serde(rename = "type")]
    pub company_type: Option<String>,
    /// Whether the bank allows serving this organisation.
    pub enabled: Option<bool>,
    /// Code in the master accounting system.
    pub ext_ref: Option<String>,
    /// Taxpayer number (INN).
    pub inn: Option<String>,
    /// Tax registration reason code (KPP).
    pub kpp: Option<String>,
    /// Whether the organisation is resident.
    pub resident: Option<bool>,
    /// Phones.
    pub phone: Option<String>,
    /// Short name.
    pub short_name: Option<String>,
    /// International name.
    pub international_name: Option<String>,
    /// State registration number (OGRN).
    pub ogrn: Option<String>,
    /// OGRN date, `YYYY-MM-DD`.
    pub ogrn_date: Option<String>,
    /// International address.
    pub international_address: Option<String>,
}

/// One line of extra information shown to the operator.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Field {
    /// Label shown to the operator.
    pub name: String,
    /// Value.
    pub value: String,
}

/// Confirmed contacts (since 1.2).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Contacts {
    /// Phone number.
    pub phone: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Telegram user name.
    pub telegram_user_name: Option<String>,
    /// WhatsApp id, as a phone number.
    pub whatsapp_phone: Option<String>,
}

/// A client group (since 1.2).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Group {
    /// Group id in the external system.
    pub id: i64,
    /// Parent group, for tree-shaped groups.
    pub parent_group: Option<Box<Group>>,
    /// Group name (the chat product lets operators set one when absent).
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Default priority of requests from clients of this group.
    pub priority: Option<i64>,
}

const fn f(name: &'static str, ty: FieldType, required: bool, since: ApiVersion) -> FieldSchema {
    FieldSchema {
        name,
        ty,
        required,
        since,
    }
}

use ApiVersion::{V1_0, V1_1, V1_2};
use FieldType::{Boolean, Date, Integer, List, Object, String as Str, StringMap};

/// The mappable part of [`Response`]: the card. `errorCode`/`errorText` belong
/// to error answers and are not mapped.
pub static RESPONSE: ObjectSchema = ObjectSchema {
    name: "Response",
    fields: &[
        f("client", Object(&CLIENT), false, V1_0),
        f("companyList", List(&COMPANY), false, V1_0),
    ],
};

/// [`Client`].
pub static CLIENT: ObjectSchema = ObjectSchema {
    name: "Client",
    fields: &[
        f("id", Str, true, V1_0),
        f("name", Str, true, V1_0),
        f("surname", Str, true, V1_0),
        f("firstName", Str, true, V1_0),
        f("patronymic", Str, true, V1_0),
        f("type", Str, true, V1_0),
        f("enabled", Boolean, true, V1_0),
        f("birthdate", Date, false, V1_0),
        f("extRef", Str, false, V1_0),
        f("cardRef", Str, false, V1_0),
        f("branch", Object(&BRANCH), false, V1_0),
        f("crmURL", Str, false, V1_0),
        f("inn", Str, false, V1_0),
        f("shortName", Str, false, V1_1),
        f("fields", StringMap, false, V1_0),
        f("fieldList", List(&FIELD), false, V1_1),
        f("contacts", Object(&CONTACTS), false, V1_2),
        f("secretWord", Str, false, V1_2),
        f("group", List(&GROUP), false, V1_2),
    ],
};

/// [`Branch`].
pub static BRANCH: ObjectSchema = ObjectSchema {
    name: "Branch",
    fields: &[
        f("id", Integer, false, V1_0),
        f("extRef", Str, false, V1_0),
        f("bik", Str, false, V1_0),
        f("name", Str, false, V1_0),
    ],
};

/// [`Company`].
pub static COMPANY: ObjectSchema = ObjectSchema {
    name: "Company",
    fields: &[
        f("id", Integer, true, V1_0),
        f("name", Str, false, V1_0),
        f("type", Str, false, V1_0),
        f("enabled", Boolean, false, V1_0),
        f("extRef", Str, false, V1_0),
        f("inn", Str, false, V1_0),
        f("kpp", Str, false, V1_0),
        f("resident", Boolean, false, V1_0),
        f("phone", Str, false, V1_0),
        f("shortName", Str, false, V1_0),
        f("internationalName", Str, false, V1_0),
        f("ogrn", Str, false, V1_0),
        f("ogrnDate", Date, false, V1_0),
        f("internationalAddress", Str, false, V1_0),
    ],
};

// Fields of Field, Contacts and Group are marked 1.0: the version that
// introduced them is on the Client field that holds them, which is what the
// compiler checks.

/// [`Field`].
pub static FIELD: ObjectSchema = ObjectSchema {
    name: "Field",
    fields: &[f("name", Str, true, V1_0), f("value", Str, true, V1_0)],
};

/// [`Contacts`].
pub static CONTACTS: ObjectSchema = ObjectSchema {
    name: "Contacts",
    fields: &[
        f("phone", Str, false, V1_0),
        f("email", Str, false, V1_0),
        f("telegramUserName", Str, false, V1_0),
        f("whatsappPhone", Str, false, V1_0),
    ],
};

/// [`Group`]; `parentGroup` refers back to this schema.
pub static GROUP: ObjectSchema = ObjectSchema {
    name: "Group",
    fields: &[
        f("id", Integer, true, V1_0),
        f("parentGroup", Object(&GROUP), false, V1_0),
        f("name", Str, false, V1_0),
        f("description", Str, false, V1_0),
        f("priority", Integer, false, V1_0),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    fn full_card() -> Response {
        let group = Group {
            id: 1,
            parent_group: Some(Box::new(Group {
                id: 2,
                ..Default::default()
            })),
            name: Some("g".into()),
            description: Some("d".into()),
            priority: Some(3),
        };
        Response {
            client: Some(Client {
                id: "1".into(),
                birthdate: Some("2000-01-01".into()),
                ext_ref: Some("x".into()),
                card_ref: Some("x".into()),
                branch: Some(Branch {
                    id: Some(1),
                    ext_ref: Some("x".into()),
                    bik: Some("x".into()),
                    name: Some("x".into()),
                }),
                crm_url: Some("x".into()),
                inn: Some("x".into()),
                short_name: Some("x".into()),
                fields: Some(BTreeMap::from([("a".into(), "b".into())])),
                field_list: Some(vec![Field {
                    name: "a".into(),
                    value: "b".into(),
                }]),
                contacts: Some(Contacts {
                    phone: Some("x".into()),
                    email: Some("x".into()),
                    telegram_user_name: Some("x".into()),
                    whatsapp_phone: Some("x".into()),
                }),
                secret_word: Some("x".into()),
                group: Some(vec![group]),
                ..Default::default()
            }),
            company_list: Some(vec![Company {
                id: 1,
                name: Some("x".into()),
                company_type: Some("x".into()),
                enabled: Some(true),
                ext_ref: Some("x".into()),
                inn: Some("x".into()),
                kpp: Some("x".into()),
                resident: Some(true),
                phone: Some("x".into()),
                short_name: Some("x".into()),
                international_name: Some("x".into()),
                ogrn: Some("x".into()),
                ogrn_date: Some("2000-01-01".into()),
                international_address: Some("x".into()),
            }]),
            error_code: None,
            error_text: None,
        }
    }

    /// A JSON value with its objects' keys in document order (serde_json's
    /// own maps sort them).
    enum Ordered {
        Object(Vec<(String, Ordered)>),
        Array(Vec<Ordered>),
        Other,
    }

    impl<'de> serde::Deserialize<'de> for Ordered {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Ordered;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("JSON")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Ordered, A::Error> {
                    let mut out = Vec::new();
                    while let Some(entry) = map.next_entry()? {
                        out.push(entry);
                    }
                    Ok(Ordered::Object(out))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Ordered, A::Error> {
                    let mut out = Vec::new();
                    while let Some(item) = seq.next_element()? {
                        out.push(item);
                    }
                    Ok(Ordered::Array(out))
                }
                fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                    Ok(Ordered::Other)
                }
                fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                    Ok(Ordered::Other)
                }
                fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                    Ok(Ordered::Other)
                }
                fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                    Ok(Ordered::Other)
                }
                fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
                    Ok(Ordered::Other)
                }
                fn visit_unit<E>(self) -> Result<Ordered, E> {
                    Ok(Ordered::Other)
                }
            }
            d.deserialize_any(V)
        }
    }

    fn assert_keys(value: &Ordered, schema: &ObjectSchema) {
        let Ordered::Object(entries) = value else {
            panic!("{} is not an object", schema.name);
        };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        let names: Vec<&str> = schema.fields.iter().map(|f| f.name).collect();
        assert_eq!(
            keys, names,
            "{} keys differ from its descriptor",
            schema.name
        );
        for (field, (_, value)) in schema.fields.iter().zip(entries) {
            match (field.ty, value) {
                (FieldType::Object(inner), _) if field.name != "parentGroup" => {
                    assert_keys(value, inner)
                }
                (FieldType::List(inner), Ordered::Array(items)) => assert_keys(&items[0], inner),
                (FieldType::List(_), _) => panic!("{} is not a list", field.name),
                _ => {}
            }
        }
    }

    #[test]
    fn structs_and_descriptors_agree() {
        // The order the card is written in, as the chat server reads it.
        let text = serde_json::to_string(&full_card()).unwrap();
        let value: Ordered = serde_json::from_str(&text).unwrap();
        assert_keys(&value, &RESPONSE);
    }
}
