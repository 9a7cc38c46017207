//! Date parsing: the forms CRMs send, to the Auth API's `YYYY-MM-DD` or,
//! for a timestamp field (an order's `createdOn`), to Unix seconds.
//!
//! Formats are `chrono` strftime patterns (`%d.%m.%Y`) or the names `iso`
//! (ISO 8601 date or date-time, any offset; the date is taken in the value's
//! own offset), `epoch_seconds`, `epoch_millis` (UTC) and `dotnet` (Microsoft
//! JSON's `/Date(ms±hhmm)/`, the date taken in its offset, as for `iso`).
//! One list of formats
//! serves both outputs, so a mapping names the CRM's forms the same way
//! whatever the field wants.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

/// One accepted input form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateFormat {
    Pattern(String),
    Iso,
    EpochSeconds,
    EpochMillis,
    /// `/Date(1700000000000+0300)/`: milliseconds since the epoch (UTC), and
    /// optionally the offset of the sender's clock.
    Dotnet,
}

impl DateFormat {
    /// Parses a format name or strftime pattern, rejecting invalid patterns.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "iso" => Ok(DateFormat::Iso),
            "epoch_seconds" => Ok(DateFormat::EpochSeconds),
            "epoch_millis" => Ok(DateFormat::EpochMillis),
            "dotnet" => Ok(DateFormat::Dotnet),
            pattern => {
                if !pattern.contains('%') {
                    return Err(format!(
                        "`{pattern}` is not a date format: use a strftime pattern like \"%d.%m.%Y\", or iso, epoch_seconds, epoch_millis, dotnet"
                    ));
                }
                if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
                    return Err(format!("invalid date pattern `{pattern}`"));
                }
                Ok(DateFormat::Pattern(pattern.to_owned()))
            }
        }
    }

    /// The format as a mapping writes it.
    pub fn name(&self) -> &str {
        match self {
            DateFormat::Pattern(p) => p,
            DateFormat::Iso => "iso",
            DateFormat::EpochSeconds => "epoch_seconds",
            DateFormat::EpochMillis => "epoch_millis",
            DateFormat::Dotnet => "dotnet",
        }
    }

    fn apply(&self, value: &Value) -> Option<NaiveDate> {
        self.read(value).map(Moment::date)
    }

    /// The instant `value` names. A value without an offset (a bare date, a
    /// local date-time) is read as UTC: the CRM's wall clock is not known
    /// here, and a mapping can add the offset with a `template`.
    fn instant(&self, value: &Value) -> Option<DateTime<Utc>> {
        self.read(value)?.instant()
    }

    /// What `value` says in this format, as precisely as it says it.
    fn read(&self, value: &Value) -> Option<Moment> {
        let zoned = |d: DateTime<Utc>| Moment::Zoned(d.fixed_offset());
        match self {
            DateFormat::Pattern(p) => Moment::parse(value, p, p, p),
            DateFormat::Iso => {
                let s = value.as_str()?.trim();
                DateTime::parse_from_rfc3339(s)
                    .ok()
                    .map(Moment::Zoned)
                    .or_else(|| {
                        Moment::parse(
                            value,
                            "%Y-%m-%dT%H:%M:%S%.f%z",
                            "%Y-%m-%dT%H:%M:%S%.f",
                            "%Y-%m-%d",
                        )
                    })
            }
            DateFormat::EpochSeconds => epoch(value)
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .map(zoned),
            DateFormat::EpochMillis => epoch(value)
                .and_then(DateTime::from_timestamp_millis)
                .map(zoned),
            DateFormat::Dotnet => dotnet(value).map(Moment::Zoned),
        }
    }
}

/// A CRM value read as a date or time: with its offset, a wall-clock time,
/// or a bare day. The date is the one the value's own clock shows; the
/// instant reads the offset-less ones as UTC.
enum Moment {
    Zoned(DateTime<FixedOffset>),
    Local(NaiveDateTime),
    Day(NaiveDate),
}

impl Moment {
    /// The first of the three patterns `value` (a string) matches.
    fn parse(value: &Value, zoned: &str, local: &str, day: &str) -> Option<Moment> {
        let s = value.as_str()?.trim();
        DateTime::parse_from_str(s, zoned)
            .ok()
            .map(Moment::Zoned)
            .or_else(|| {
                NaiveDateTime::parse_from_str(s, local)
                    .ok()
                    .map(Moment::Local)
            })
            .or_else(|| NaiveDate::parse_from_str(s, day).ok().map(Moment::Day))
    }

    fn date(self) -> NaiveDate {
        match self {
            Moment::Zoned(d) => d.date_naive(),
            Moment::Local(d) => d.date(),
            Moment::Day(d) => d,
        }
    }

    fn instant(self) -> Option<DateTime<Utc>> {
        match self {
            Moment::Zoned(d) => Some(d.to_utc()),
            Moment::Local(d) => Some(d.and_utc()),
            Moment::Day(d) => d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
        }
    }
}

/// `/Date(ms)/` or `/Date(ms±hhmm)/` (the slashes optional): the instant is
/// `ms` after the epoch in UTC whatever the offset; the offset only says in
/// which zone the sender's clock was, so the date is taken there.
fn dotnet(value: &Value) -> Option<DateTime<FixedOffset>> {
    let s = value.as_str()?.trim();
    let s = s.strip_prefix('/').unwrap_or(s);
    let s = s.strip_suffix('/').unwrap_or(s);
    let inner = s.strip_prefix("Date(")?.strip_suffix(')')?;
    // The sign of the millis may be `-` too: look for the offset after it.
    let split = inner.get(1..)?.find(['+', '-']).map(|i| i + 1);
    let (millis, offset) = match split {
        Some(i) => (&inner[..i], Some(&inner[i..])),
        None => (inner, None),
    };
    let instant = DateTime::from_timestamp_millis(millis.parse().ok()?)?;
    let offset = match offset {
        None => FixedOffset::east_opt(0)?,
        Some(o) => {
            let (sign, digits) = o.split_at(1);
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let hours: i32 = digits[..2].parse().ok()?;
            let minutes: i32 = digits[2..].parse().ok()?;
            let seconds = (hours * 60 + minutes) * 60;
            FixedOffset::east_opt(if sign == "-" { -seconds } else { seconds })?
        }
    };
    Some(instant.with_timezone(&offset))
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

/// Tries each format in order; Unix seconds as a string of digits (the form
/// the commerce platform's order history shows) on success.
pub fn parse_timestamp(value: &Value, formats: &[DateFormat]) -> Result<Value, String> {
    formats
        .iter()
        .find_map(|f| f.instant(value))
        .map(|t| Value::String(t.timestamp().to_string()))
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

    /// Asserts what each parser makes of each `(formats, CRM value, date,
    /// timestamp)`: one list of formats serves both outputs, so every form
    /// is read by both.
    #[track_caller]
    fn assert_parsed(cases: &[(&[&str], Value, &str, &str)]) {
        for (formats, value, date, timestamp) in cases {
            let formats = fmt(formats);
            assert_eq!(
                parse_date(value, &formats).unwrap(),
                json!(date),
                "{value} with {formats:?}"
            );
            assert_eq!(
                parse_timestamp(value, &formats).unwrap(),
                json!(timestamp),
                "{value} with {formats:?}"
            );
        }
    }

    #[test]
    fn common_crm_forms() {
        let (day, midnight) = ("1973-09-02", "115776000");
        assert_parsed(&[
            (&["%d.%m.%Y"], json!("02.09.1973"), day, midnight),
            // The date in the value's own offset; the instant in UTC.
            (
                &["iso"],
                json!("1973-09-02T23:30:00+03:00"),
                day,
                "115849800",
            ),
            (&["iso"], json!("1973-09-02"), day, midnight),
            (
                &["iso"],
                json!("1973-09-02T10:00:00.000Z"),
                day,
                "115812000",
            ),
            (&["epoch_seconds"], json!(115_776_000), day, midnight),
            (&["epoch_millis"], json!("115776000000"), day, midnight),
            (&["%d.%m.%Y", "iso"], json!("1973-09-02"), day, midnight),
        ]);
        assert!(parse_date(&json!("31.02.1973"), &fmt(&["%d.%m.%Y"])).is_err());
    }

    #[test]
    fn timestamps_from_every_form_name_the_same_instant() {
        let (day, at, midnight) = ("2020-07-27", "1595872396", "1595808000");
        assert_parsed(&[
            (&["iso"], json!("2020-07-27T20:53:16+03:00"), day, at),
            (&["iso"], json!("2020-07-27T17:53:16Z"), day, at),
            (&["iso"], json!("2020-07-27T17:53:16.250Z"), day, at),
            (&["iso"], json!("2020-07-27T20:53:16+0300"), day, at),
            // No offset: read as UTC.
            (&["iso"], json!("2020-07-27T17:53:16"), day, at),
            (&["iso"], json!("2020-07-27"), day, midnight),
            (&["epoch_seconds"], json!(1_595_872_396), day, at),
            (&["epoch_millis"], json!("1595872396123"), day, at),
            (
                &["%d.%m.%Y %H:%M:%S %z"],
                json!("27.07.2020 20:53:16 +0300"),
                day,
                at,
            ),
            (&["%d.%m.%Y"], json!("27.07.2020"), day, midnight),
        ]);
        let err = parse_timestamp(&json!("yesterday-42"), &fmt(&["iso"])).unwrap_err();
        assert!(!err.contains("42"), "{err}");
    }

    #[test]
    fn dotnet_dates_name_the_instant_and_take_the_date_in_their_offset() {
        let dotnet: &[&str] = &["dotnet"];
        // 2023-11-14T22:13:20Z; at +0300 it is already the 15th.
        let at = "1700000000";
        assert_parsed(&[
            (dotnet, json!("/Date(1700000000000)/"), "2023-11-14", at),
            (
                dotnet,
                json!("/Date(1700000000000+0300)/"),
                "2023-11-15",
                at,
            ),
            (
                dotnet,
                json!("/Date(1700000000000-0500)/"),
                "2023-11-14",
                at,
            ),
            (dotnet, json!("/Date(-86400000)/"), "1969-12-31", "-86400"),
        ]);
        for bad in [
            "/Date()/",
            "/Date(17x)/",
            "/Date(1+03)/",
            "Date",
            "1700000000000",
        ] {
            assert!(parse_date(&json!(bad), &fmt(dotnet)).is_err(), "{bad}");
        }
    }

    #[test]
    fn invalid_formats_are_rejected() {
        assert!(DateFormat::parse("%Q").is_err());
        assert!(DateFormat::parse("dd.mm.yyyy").is_err());
    }
}
