//! The chat Auth API card (spec: Auth API 1.2): the typed structs the server
//! serialises and the descriptors the mapping compiler checks against, both
//! from one [`contract!`] declaration per object. A unit test below
//! serialises a fully populated card and compares its keys, in order, with
//! the descriptors.

use std::collections::BTreeMap;

use super::contract::contract;

contract! {
    /// The body of a successful answer. Its descriptor is the mappable part,
    /// the card: `errorCode`/`errorText` belong to error answers.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct Response as RESPONSE {
        /// The client.
        client: Option<Client> => "client" Object(CLIENT);
        /// Organisations the client belongs to.
        company_list: Option<Vec<Company>> => "companyList" List(COMPANY);
        /// An error answer's code (see the error table); absent on a card.
        error_code: Option<String> => "errorCode";
        /// An error answer's text; absent on a card.
        error_text: Option<String> => "errorText";
    }

    /// The client.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct Client as CLIENT {
        /// Client id in the CRM.
        id: String => "id" String;
        /// Full name.
        name: String => "name" String;
        /// Last name.
        surname: String => "surname" String;
        /// First name.
        first_name: String => "firstName" String;
        /// Patronymic (middle name).
        patronymic: String => "patronymic" String;
        /// Client type code, "0" or "1".
        client_type: String => "type" String;
        /// Whether the bank allows serving this client.
        enabled: bool => "enabled" Boolean;
        /// Date of birth, `YYYY-MM-DD`.
        birthdate: Option<String> => "birthdate" Date;
        /// Client id in the core banking system.
        ext_ref: Option<String> => "extRef" String;
        /// Client id in the card system.
        card_ref: Option<String> => "cardRef" String;
        /// The client's branch.
        branch: Option<Branch> => "branch" Object(BRANCH);
        /// Full link that opens the client in the CRM.
        crm_url: Option<String> => "crmURL" String;
        /// Taxpayer number (INN).
        inn: Option<String> => "inn" String;
        /// Short name.
        short_name: Option<String> => "shortName" String since V1_1;
        /// Deprecated: extra information as name → value; `field_list` replaces it.
        fields: Option<BTreeMap<String, String>> => "fields" StringMap;
        /// Extra information, in the order the operator sees it.
        field_list: Option<Vec<Field>> => "fieldList" List(FIELD) since V1_1;
        /// Confirmed contacts, for omnichannel linking.
        contacts: Option<Contacts> => "contacts" Object(CONTACTS) since V1_2;
        /// Code word operators and bots use to identify the client by hand.
        secret_word: Option<String> => "secretWord" String since V1_2;
        /// Client groups, for automatic segmentation.
        group: Option<Vec<Group>> => "group" List(GROUP) since V1_2;
    }

    /// The client's branch.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct Branch as BRANCH {
        /// Branch id in the external system.
        id: Option<i64> => "id" Integer;
        /// Id in the master accounting system (e.g. core banking).
        ext_ref: Option<String> => "extRef" String;
        /// Bank identification code (BIK).
        bik: Option<String> => "bik" String;
        /// Branch name.
        name: Option<String> => "name" String;
    }

    /// An organisation the client belongs to.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct Company as COMPANY {
        /// Organisation id in the external system.
        id: i64 => "id" Integer;
        /// Name.
        name: Option<String> => "name" String;
        /// Organisation type code.
        company_type: Option<String> => "type" String;
        /// Whether the bank allows serving this organisation.
        enabled: Option<bool> => "enabled" Boolean;
        /// Code in the master accounting system.
        ext_ref: Option<String> => "extRef" String;
        /// Taxpayer number (INN).
        inn: Option<String> => "inn" String;
        /// Tax registration reason code (KPP).
        kpp: Option<String> => "kpp" String;
        /// Whether the organisation is resident.
        resident: Option<bool> => "resident" Boolean;
        /// Phones.
        phone: Option<String> => "phone" String;
        /// Short name.
        short_name: Option<String> => "shortName" String;
        /// International name.
        international_name: Option<String> => "internationalName" String;
        /// State registration number (OGRN).
        ogrn: Option<String> => "ogrn" String;
        /// OGRN date, `YYYY-MM-DD`.
        ogrn_date: Option<String> => "ogrnDate" Date;
        /// International address.
        international_address: Option<String> => "internationalAddress" String;
    }

    // The fields of Field, Contacts and Group are 1.0: the version that
    // introduced them is on the Client field that holds them, which is what
    // the compiler checks.

    /// One line of extra information shown to the operator (since 1.1).
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct Field as FIELD {
        /// Label shown to the operator.
        name: String => "name" String;
        /// Value.
        value: String => "value" String;
    }

    /// Confirmed contacts (since 1.2).
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct Contacts as CONTACTS {
        /// Phone number.
        phone: Option<String> => "phone" String;
        /// E-mail.
        email: Option<String> => "email" String;
        /// Telegram user name.
        telegram_user_name: Option<String> => "telegramUserName" String;
        /// WhatsApp id, as a phone number.
        whatsapp_phone: Option<String> => "whatsappPhone" String;
    }

    /// A client group (since 1.2); `parentGroup` refers back to this object.
    #[derive(Default)]
    #[serde(deny_unknown_fields)]
    pub struct Group as GROUP {
        /// Group id in the external system.
        id: i64 => "id" Integer;
        /// Parent group, for tree-shaped groups.
        parent_group: Option<Box<Group>> => "parentGroup" Object(GROUP);
        /// Group name (the chat product lets operators set one when absent).
        name: Option<String> => "name" String;
        /// Description.
        description: Option<String> => "description" String;
        /// Default priority of requests from clients of this group.
        priority: Option<i64> => "priority" Integer;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{FieldType, ObjectSchema};

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
