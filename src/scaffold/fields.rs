//! What the scaffold looks for: for each card field, the names CRMs give it
//! (English and Russian, each with a weight) and the shape its value must
//! have; and the score of a sample leaf as that field.
//!
//! A name alone misleads (`name` is a full name in one CRM, a first name in
//! another), a shape alone too (any 10 digits are not an INN): the score is
//! their product, so both must fit.

use serde_json::Value;

use super::sample::{Leaf, Seg, leaf_name};

/// The shape a field's value must have in the sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// A non-empty string or an integer.
    Id,
    /// An integer or a string of digits (Company, Group and Branch ids).
    IntId,
    Text,
    /// One word of a name: text without inner spaces (a full name in a
    /// `name` key is not a first name).
    Word,
    Bool,
    /// A value one of the `date` formats reads; see [`date_format`].
    Date,
    /// 10 or 12 digits (a Russian tax number).
    Inn,
    Email,
    Phone,
    Url,
    /// A code such as `0`/`1` (the client type).
    Code,
}

/// One card field the scaffold fills from a leaf.
pub struct Target {
    /// The field's key in its mapping table.
    pub field: &'static str,
    /// Normalized names (see `sample::normalize`) and how sure each is.
    pub names: &'static [(&'static str, f64)],
    pub shape: Shape,
}

const fn t(field: &'static str, names: &'static [(&'static str, f64)], shape: Shape) -> Target {
    Target {
        field,
        names,
        shape,
    }
}

/// Client fields found by name, most specific first: a leaf taken by one is
/// not offered to the next (`surname` before the ambiguous `name`).
pub static CLIENT: &[Target] = &[
    t(
        "id",
        &[
            ("id", 0.9),
            ("clientid", 1.0),
            ("customerid", 1.0),
            ("contactid", 1.0),
            ("personid", 1.0),
            ("guid", 0.7),
            ("uid", 0.7),
        ],
        Shape::Id,
    ),
    t(
        "surname",
        &[
            ("surname", 1.0),
            ("lastname", 1.0),
            ("familyname", 1.0),
            ("фамилия", 1.0),
        ],
        Shape::Word,
    ),
    t(
        "firstName",
        &[
            ("firstname", 1.0),
            ("givenname", 1.0),
            ("forename", 1.0),
            ("имя", 1.0),
            ("name", 0.55),
        ],
        Shape::Word,
    ),
    t(
        "patronymic",
        &[
            ("patronymic", 1.0),
            ("middlename", 1.0),
            ("secondname", 0.9),
            ("отчество", 1.0),
        ],
        Shape::Word,
    ),
    t(
        "name",
        &[
            ("fullname", 1.0),
            ("displayname", 0.9),
            ("fio", 1.0),
            ("фио", 1.0),
            ("полноеимя", 1.0),
            ("name", 0.6),
        ],
        Shape::Text,
    ),
    t(
        "birthdate",
        &[
            ("birthdate", 1.0),
            ("birthday", 1.0),
            ("dateofbirth", 1.0),
            ("dob", 0.9),
            ("born", 0.8),
            ("bdate", 0.9),
            ("датарождения", 1.0),
            ("деньрождения", 1.0),
        ],
        Shape::Date,
    ),
    t(
        "inn",
        &[
            ("inn", 1.0),
            ("taxid", 1.0),
            ("tin", 0.9),
            ("taxnumber", 1.0),
            ("инн", 1.0),
            ("vatnumber", 0.7),
        ],
        Shape::Inn,
    ),
    t(
        "extRef",
        &[
            ("extref", 1.0),
            ("externalid", 1.0),
            ("externalref", 1.0),
            ("absid", 1.0),
            ("abscode", 0.9),
            ("originid", 0.8),
            ("xmlid", 0.7),
        ],
        Shape::Id,
    ),
    t(
        "cardRef",
        &[("cardref", 1.0), ("cardid", 0.9), ("cardsystemid", 1.0)],
        Shape::Id,
    ),
    t(
        "crmURL",
        &[
            ("crmurl", 1.0),
            ("url", 0.8),
            ("weburl", 0.8),
            ("link", 0.6),
            ("href", 0.6),
        ],
        Shape::Url,
    ),
    t(
        "shortName",
        &[("shortname", 1.0), ("короткоеимя", 1.0)],
        Shape::Text,
    ),
    t(
        "secretWord",
        &[
            ("secretword", 1.0),
            ("codeword", 1.0),
            ("кодовоеслово", 1.0),
        ],
        Shape::Text,
    ),
    t(
        "type",
        &[
            ("typecode", 1.0),
            ("clienttype", 1.0),
            ("clienttypecode", 1.0),
            ("type", 0.7),
        ],
        Shape::Code,
    ),
    t(
        "enabled",
        &[
            ("enabled", 1.0),
            ("active", 1.0),
            ("isactive", 1.0),
            ("isenabled", 1.0),
        ],
        Shape::Bool,
    ),
];

/// `[client.contacts]`.
pub static CONTACTS: &[Target] = &[
    t(
        "phone",
        &[
            ("mobile", 1.0),
            ("mobilephone", 1.0),
            ("cellphone", 1.0),
            ("phone", 0.9),
            ("telephone", 0.85),
            ("phonenumber", 0.9),
            ("tel", 0.8),
            ("телефон", 0.9),
            ("мобильный", 1.0),
        ],
        Shape::Phone,
    ),
    t(
        "email",
        &[
            ("email", 1.0),
            ("emailaddress", 1.0),
            ("mail", 0.9),
            ("почта", 0.9),
        ],
        Shape::Email,
    ),
    t(
        "telegramUserName",
        &[("telegram", 1.0), ("telegramusername", 1.0), ("tg", 0.8)],
        Shape::Text,
    ),
    t(
        "whatsappPhone",
        &[("whatsapp", 1.0), ("whatsappphone", 1.0)],
        Shape::Phone,
    ),
];

/// `[client.branch]`, looked for under a branch-like key only.
pub static BRANCH: &[Target] = &[
    t("id", &[("id", 1.0), ("branchid", 1.0)], Shape::IntId),
    t(
        "extRef",
        &[
            ("extref", 1.0),
            ("abscode", 1.0),
            ("code", 0.8),
            ("externalid", 1.0),
        ],
        Shape::Id,
    ),
    t(
        "bik",
        &[("bik", 1.0), ("бик", 1.0), ("bic", 0.9)],
        Shape::Text,
    ),
    t(
        "name",
        &[("name", 1.0), ("title", 0.9), ("fullname", 0.9)],
        Shape::Text,
    ),
];

/// A Company, relative to its item.
pub static COMPANY: &[Target] = &[
    t(
        "id",
        &[
            ("id", 1.0),
            ("companyid", 1.0),
            ("accountid", 1.0),
            ("orgid", 1.0),
            ("accountnumber", 0.8),
        ],
        Shape::IntId,
    ),
    t(
        "name",
        &[
            ("fullname", 1.0),
            ("name", 0.95),
            ("title", 0.9),
            ("наименование", 1.0),
        ],
        Shape::Text,
    ),
    t("shortName", &[("shortname", 1.0)], Shape::Text),
    t(
        "inn",
        &[("inn", 1.0), ("taxid", 1.0), ("tin", 0.9), ("инн", 1.0)],
        Shape::Inn,
    ),
    t("kpp", &[("kpp", 1.0), ("кпп", 1.0)], Shape::Text),
    t("ogrn", &[("ogrn", 1.0), ("огрн", 1.0)], Shape::Text),
    t("ogrnDate", &[("ogrndate", 1.0)], Shape::Date),
    t(
        "phone",
        &[("phone", 1.0), ("telephone", 0.9), ("телефон", 1.0)],
        Shape::Phone,
    ),
    t(
        "extRef",
        &[("extref", 1.0), ("abscode", 1.0), ("externalid", 1.0)],
        Shape::Id,
    ),
    t("type", &[("typecode", 1.0), ("type", 0.7)], Shape::Code),
    t(
        "enabled",
        &[("active", 1.0), ("enabled", 1.0), ("isactive", 1.0)],
        Shape::Bool,
    ),
    t(
        "resident",
        &[("resident", 1.0), ("isresident", 1.0)],
        Shape::Bool,
    ),
    t(
        "internationalName",
        &[("internationalname", 1.0), ("intlname", 1.0)],
        Shape::Text,
    ),
    t(
        "internationalAddress",
        &[("internationaladdress", 1.0), ("intladdress", 1.0)],
        Shape::Text,
    ),
];

/// A Group, relative to its item.
pub static GROUP: &[Target] = &[
    t(
        "id",
        &[("id", 1.0), ("groupid", 1.0), ("tagid", 1.0)],
        Shape::IntId,
    ),
    t("name", &[("name", 1.0), ("title", 0.9)], Shape::Text),
];

/// Keys of a company, an array of them, or the object holding one.
pub fn company_like(key: &str) -> bool {
    [
        "compan",
        "account",
        "organi",
        "компан",
        "организ",
        "employer",
    ]
    .iter()
    .any(|w| key.contains(w))
        || matches!(key, "org" | "orgs")
}

/// Keys of a branch.
pub fn branch_like(key: &str) -> bool {
    ["branch", "office", "filial", "филиал", "отделени"]
        .iter()
        .any(|w| key.contains(w))
}

/// Keys of a list of groups.
pub fn group_like(key: &str) -> bool {
    [
        "tag",
        "group",
        "segment",
        "группы",
        "групп",
        "теги",
        "категор",
    ]
    .iter()
    .any(|w| key.contains(w))
}

/// How well `leaf` fits `target`, 0 (not at all) to about 1.
pub fn score(target: &Target, leaf: &Leaf) -> f64 {
    let name = leaf_name(&leaf.segs);
    let by_name = target
        .names
        .iter()
        .map(|(word, weight)| {
            if name == *word {
                *weight
            } else {
                let sim = strsim::jaro_winkler(&name, word);
                if sim >= 0.9 { 0.8 * weight * sim } else { 0.0 }
            }
        })
        .fold(0.0, f64::max);
    // An address or a phone number says what it is wherever it sits.
    let by_name = match target.shape {
        Shape::Email if by_name == 0.0 => 0.5,
        _ => by_name,
    };
    let depth = leaf.segs.len() as f64 * 0.01;
    by_name * fits(target.shape, &leaf.value) - depth
}

/// How well `value` has `shape`: 0, a half, or 1.
pub fn fits(shape: Shape, value: &Value) -> f64 {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return 0.0,
    };
    let digits = !text.is_empty() && text.chars().all(|c| c.is_ascii_digit());
    match shape {
        Shape::Id => f64::from(!text.is_empty() && !value.is_boolean()),
        Shape::IntId => f64::from((value.is_i64() || value.is_u64() || digits) && text.len() <= 18),
        Shape::Text => match value {
            Value::String(s) if !s.trim().is_empty() => 1.0,
            Value::Number(_) => 0.5,
            _ => 0.0,
        },
        Shape::Word => match value {
            Value::String(_) if text.contains(char::is_whitespace) => 0.4,
            Value::String(_) if !text.is_empty() => 1.0,
            _ => 0.0,
        },
        Shape::Bool => match value {
            Value::Bool(_) => 1.0,
            _ if matches!(
                text.to_ascii_lowercase().as_str(),
                "y" | "n" | "yes" | "no" | "true" | "false" | "0" | "1"
            ) =>
            {
                0.8
            }
            _ => 0.0,
        },
        Shape::Date => f64::from(date_format(value).is_some()),
        Shape::Inn if digits && matches!(text.len(), 10 | 12) => 1.0,
        Shape::Inn if digits && (9..=12).contains(&text.len()) => 0.5,
        Shape::Inn => 0.0,
        Shape::Email => f64::from(text.contains('@') && !text.contains(' ')),
        Shape::Phone => {
            let n = text.chars().filter(char::is_ascii_digit).count();
            f64::from(
                (7..=15).contains(&n)
                    && text
                        .chars()
                        .all(|c| c.is_ascii_digit() || " +-()".contains(c)),
            )
        }
        Shape::Url => f64::from(text.starts_with("http://") || text.starts_with("https://")),
        Shape::Code => f64::from(digits && text.len() <= 2),
    }
}

/// The `date` format that reads `value`, if it looks like a date: ISO 8601,
/// dotted `DD.MM.YYYY`, slashed (month first unless the first number is over
/// 12), compact `YYYYMMDD`, or Unix seconds / milliseconds.
pub fn date_format(value: &Value) -> Option<&'static str> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        _ => return None,
    };
    let b = text.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let all = |r: std::ops::Range<usize>| r.clone().all(d);
    if b.len() >= 10 && all(0..4) && b[4] == b'-' && all(5..7) && b[7] == b'-' && all(8..10) {
        return Some("iso");
    }
    if b.len() == 10 && all(0..2) && b[2] == b'.' && all(3..5) && b[5] == b'.' && all(6..10) {
        return Some("%d.%m.%Y");
    }
    if b.len() == 10 && all(0..2) && b[2] == b'/' && all(3..5) && b[5] == b'/' && all(6..10) {
        let first: u32 = text[..2].parse().ok()?;
        return Some(if first > 12 { "%d/%m/%Y" } else { "%m/%d/%Y" });
    }
    if b.len() == 8 && all(0..8) && matches!(&text[..2], "19" | "20") {
        return Some("%Y%m%d");
    }
    if all(0..b.len()) && matches!(b.len(), 9 | 10) {
        return Some("epoch_seconds");
    }
    if all(0..b.len()) && matches!(b.len(), 12 | 13) {
        return Some("epoch_millis");
    }
    None
}

/// Whether any key along `segs` (the leaf's own excluded) passes `like`.
pub fn under(segs: &[Seg], like: fn(&str) -> bool) -> bool {
    let keys: Vec<String> = super::sample::keys(segs)
        .map(super::sample::normalize)
        .collect();
    let n = keys.len().saturating_sub(1);
    keys[..n].iter().any(|k| like(k))
}
