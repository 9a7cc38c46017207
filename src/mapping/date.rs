//! Date parsing: the forms CRMs send, to the Auth API's `YYYY-MM-DD`.
//!
//! Formats are `chrono` strftime patterns (`%d.%m.%Y`) or the names `iso`
//! (ISO 8601 date or date-time, any offset; the date is taken in the value's
//! own offset), `epoch_seconds` and `epoch_millis` (UTC).

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::Value;

/// One accepted input form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateFormat {
    Pattern(String),
    Iso,
    EpochSeconds,
    EpochMillis,
}

impl DateFormat {
    /// Parses a format name or strftime pattern, rejecting invalid patterns.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "iso" => Ok(DateFormat::Iso),
            "epoch_seconds" => Ok(DateFormat::EpochSeconds),
            "epoch_millis" => Ok(DateFormat::EpochMillis),
            pattern => {
                if !pattern.contains('%') {
                    return Err(format!(
                        "`{pattern}` is not a date format: use a strftime pattern like \"%d.%m.%Y\", or iso, epoch_seconds, epoch_millis"
                    ));
                }
                if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
                    return Err(format!("invalid date pattern `{pattern}`"));
                }
                Ok(DateFormat::Pattern(pattern.to_owned()))
            }
        }
    }

    fn apply(&self, value: &Value) -> Option<NaiveDate> {
        match self {
            DateFormat::Pattern(p) => {
                let s = value.as_str()?.trim();
                NaiveDate::parse_from_str(s, p)
                    .ok()
                    .or_else(|| NaiveDateTime::parse_from_str(s, p).ok().map(|d| d.date()))
                    .or_else(|| DateTime::parse_from_str(s, p).ok().map(|d| d.date_naive()))
            }
            DateFormat::Iso => {
                let s = value.as_str()?.trim();
                DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(|d| d.date_naive())
                    .or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                    .or_else(|| {
                        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                            .ok()
                            .map(|d| d.date())
                    })
                    .or_else(|| {
                        DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
                            .ok()
                            .map(|d| d.date_naive())
                    })
            }
            DateFormat::EpochSeconds => epoch(value)
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .map(|d| d.date_naive()),
            DateFormat::EpochMillis => epoch(value)
                .and_then(DateTime::from_timestamp_millis)
                .map(|d| d.date_naive()),
        }
    }
}

fn epoch(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Tries each format in order; `YYYY-MM-DD` on success.
pub fn parse_date(value: &Value, formats: &[DateFormat]) -> Result<Value, String> {
    formats
        .iter()
        .find_map(|f| f.apply(value))
        .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
        .ok_or_else(|| {
            format!(
                "{} does not match the date format(s) of this field",
                super::coerce::kind(value)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fmt(list: &[&str]) -> Vec<DateFormat> {
        list.iter().map(|f| DateFormat::parse(f).unwrap()).collect()
    }

    #[test]
    fn common_crm_forms() {
        let f = fmt(&["%d.%m.%Y"]);
        assert_eq!(
            parse_date(&json!("02.09.1973"), &f).unwrap(),
            json!("1973-09-02")
        );
        let f = fmt(&["iso"]);
        assert_eq!(
            parse_date(&json!("1973-09-02T23:30:00+03:00"), &f).unwrap(),
            json!("1973-09-02")
        );
        assert_eq!(
            parse_date(&json!("1973-09-02"), &f).unwrap(),
            json!("1973-09-02")
        );
        assert_eq!(
            parse_date(&json!("1973-09-02T10:00:00.000Z"), &f).unwrap(),
            json!("1973-09-02")
        );
        assert_eq!(
            parse_date(&json!(115_776_000), &fmt(&["epoch_seconds"])).unwrap(),
            json!("1973-09-02")
        );
        assert_eq!(
            parse_date(&json!("115776000000"), &fmt(&["epoch_millis"])).unwrap(),
            json!("1973-09-02")
        );
        let f = fmt(&["%d.%m.%Y", "iso"]);
        assert_eq!(
            parse_date(&json!("1973-09-02"), &f).unwrap(),
            json!("1973-09-02")
        );
        assert!(parse_date(&json!("31.02.1973"), &fmt(&["%d.%m.%Y"])).is_err());
    }

    #[test]
    fn invalid_formats_are_rejected() {
        assert!(DateFormat::parse("%Q").is_err());
        assert!(DateFormat::parse("dd.mm.yyyy").is_err());
    }
}
