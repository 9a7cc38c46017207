//! Coercion of a CRM value to the JSON type the target field takes.
//!
//! CRMs send ids as numbers or strings, flags as `"Y"`, `1` or `true`, dates
//! with or without a time. Coercion accepts the lossless forms and fails with a
//! message naming the types only — never the value, which is personal data.

use serde_json::Value;

use crate::schema::FieldType;

/// Converts `value` to `ty`, or says why it cannot.
pub fn coerce(value: &Value, ty: FieldType) -> Result<Value, String> {
    match ty {
        FieldType::String => to_string(value).map(Value::String),
        FieldType::Integer => to_integer(value).map(Value::from),
        FieldType::Number => to_number(value).map(Value::Number),
        FieldType::Boolean => to_boolean(value).map(Value::Bool),
        FieldType::Date => to_date(value).map(Value::String),
        FieldType::Timestamp => to_timestamp(value).map(Value::String),
        FieldType::StringList => to_string_list(value),
        FieldType::StringMap | FieldType::Object(_) | FieldType::List(_) => {
            Err(format!("expected {}, got {}", ty.describe(), kind(value)))
        }
    }
}

/// The JSON kind of `value`, for messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn to_string(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a string, got {}", kind(other))),
    }
}

/// An array of scalars as strings (nulls and empty strings dropped); a single
/// scalar as a one-item list.
fn to_string_list(value: &Value) -> Result<Value, String> {
    let items: Vec<&Value> = match value {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            scalar => out.push(Value::String(to_string(scalar).map_err(|_| {
                format!(
                    "expected a list of strings, got a list holding {}",
                    kind(scalar)
                )
            })?)),
        }
    }
    Ok(Value::Array(out))
}

fn to_integer(value: &Value) -> Result<i64, String> {
    let fail = || format!("expected an integer, got {} that is not one", kind(value));
    // Digits that do not fit say so: "not an integer" would send the
    // integrator looking for a typo in an id that is only too long.
    let out_of_range = || {
        format!(
            "expected an integer, got {} out of range for a 64-bit integer",
            kind(value)
        )
    };
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.is_u64() {
                Err(out_of_range())
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                    Some(f) if f.fract() == 0.0 => Err(out_of_range()),
                    _ => Err(fail()),
                }
            }
        }
        Value::String(s) => {
            let t = s.trim();
            t.parse::<i64>().map_err(|_| {
                let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    out_of_range()
                } else {
                    fail()
                }
            })
        }
        other => Err(format!("expected an integer, got {}", kind(other))),
    }
}

/// A number as the CRM sent it (an integer stays an integer, an integral
/// fraction becomes one), or a string holding one (`"1003.33"`).
fn to_number(value: &Value) -> Result<serde_json::Number, String> {
    let fail = || format!("expected a number, got {} that is not one", kind(value));
    let n = match value {
        Value::Number(n) => n.clone(),
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(i) => i.into(),
                Err(_) => s
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .ok_or_else(fail)?,
            }
        }
        other => return Err(format!("expected a number, got {}", kind(other))),
    };
    // 29336.0 is sent as 29336, as the platform's examples write prices.
    Ok(match n.as_f64() {
        Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            (f as i64).into()
        }
        _ => n,
    })
}

/// Unix seconds, from a number or a string of digits. Other date forms need
/// a `date` format on the rule, as for date fields.
fn to_timestamp(value: &Value) -> Result<String, String> {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Value::String(s) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().to_owned()),
        Value::Number(_) | Value::String(_) => Err(format!(
            "expected Unix seconds, got {} that is not a whole number (add a `date` format to parse other forms)",
            kind(value)
        )),
        other => Err(format!("expected Unix seconds, got {}", kind(other))),
    }
}

fn to_boolean(value: &Value) -> Result<bool, String> {
    let fail = || {
        format!(
            "expected a boolean, got {} that is not one of true/false, 1/0, yes/no, y/n",
            kind(value)
        )
    };
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Ok(true),
            Some(0) => Ok(false),
            _ => Err(fail()),
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" => Ok(true),
            "false" | "0" | "no" | "n" => Ok(false),
            _ => Err(fail()),
        },
        other => Err(format!("expected a boolean, got {}", kind(other))),
    }
}

/// Accepts `YYYY-MM-DD`, optionally followed by an ISO time (`T...`), and
/// checks that the date exists.
fn to_date(value: &Value) -> Result<String, String> {
    let Value::String(s) = value else {
        return Err(format!(
            "expected a date string YYYY-MM-DD, got {}",
            kind(value)
        ));
    };
    let s = s.trim();
    let date = s.get(..10).unwrap_or(s);
    let rest = s.get(10..).unwrap_or("");
    if (rest.is_empty() || rest.starts_with(['T', ' ']))
        && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
        && date.len() == 10
    {
        Ok(date.to_owned())
    } else {
        Err("expected a date YYYY-MM-DD, got a string that is not one (add a `date` format to parse other forms)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_from_scalars() {
        assert_eq!(coerce(&json!(12), FieldType::String).unwrap(), json!("12"));
        assert_eq!(
            coerce(&json!(true), FieldType::String).unwrap(),
            json!("true")
        );
        assert!(coerce(&json!([1]), FieldType::String).is_err());
    }

    #[test]
    fn integers_from_numbers_and_strings() {
        assert_eq!(coerce(&json!("42"), FieldType::Integer).unwrap(), json!(42));
        assert_eq!(coerce(&json!(42.0), FieldType::Integer).unwrap(), json!(42));
        assert!(coerce(&json!("4x2"), FieldType::Integer).is_err());
        assert!(coerce(&json!(4.5), FieldType::Integer).is_err());
    }

    #[test]
    fn integers_too_long_say_out_of_range() {
        for v in [
            json!("9223372036854775808"),
            json!(9_223_372_036_854_775_808_u64),
            json!(" -99999999999999999999 "),
        ] {
            let err = coerce(&v, FieldType::Integer).unwrap_err();
            assert!(err.contains("out of range for a 64-bit integer"), "{err}");
        }
        let err = coerce(&json!("12a"), FieldType::Integer).unwrap_err();
        assert!(err.contains("that is not one"), "{err}");
    }

    #[test]
    fn numbers_keep_fractions_and_drop_integral_ones() {
        assert_eq!(
            coerce(&json!(1003.33), FieldType::Number).unwrap(),
            json!(1003.33)
        );
        assert_eq!(
            coerce(&json!("1003.33"), FieldType::Number).unwrap(),
            json!(1003.33)
        );
        assert_eq!(
            coerce(&json!(29336.0), FieldType::Number).unwrap(),
            json!(29336)
        );
        assert_eq!(coerce(&json!("7"), FieldType::Number).unwrap(), json!(7));
        assert!(coerce(&json!("12 руб"), FieldType::Number).is_err());
        assert!(coerce(&json!(true), FieldType::Number).is_err());
    }

    #[test]
    fn timestamps_are_whole_seconds_as_strings() {
        assert_eq!(
            coerce(&json!(1_595_872_396), FieldType::Timestamp).unwrap(),
            json!("1595872396")
        );
        assert_eq!(
            coerce(&json!(" 1595872396 "), FieldType::Timestamp).unwrap(),
            json!("1595872396")
        );
        assert!(coerce(&json!("2020-07-27"), FieldType::Timestamp).is_err());
        assert!(coerce(&json!(1.5), FieldType::Timestamp).is_err());
    }

    #[test]
    fn booleans_from_common_flags() {
        for t in [json!("Y"), json!("true"), json!(1), json!("yes")] {
            assert_eq!(coerce(&t, FieldType::Boolean).unwrap(), json!(true));
        }
        for f in [json!("N"), json!("false"), json!(0), json!("no")] {
            assert_eq!(coerce(&f, FieldType::Boolean).unwrap(), json!(false));
        }
        assert!(coerce(&json!("maybe"), FieldType::Boolean).is_err());
    }

    #[test]
    fn dates_must_exist() {
        assert_eq!(
            coerce(&json!("1973-09-02"), FieldType::Date).unwrap(),
            json!("1973-09-02")
        );
        assert_eq!(
            coerce(&json!("1973-09-02T00:00:00+03:00"), FieldType::Date).unwrap(),
            json!("1973-09-02")
        );
        assert!(coerce(&json!("1973-02-30"), FieldType::Date).is_err());
        assert!(coerce(&json!("02.09.1973"), FieldType::Date).is_err());
    }

    #[test]
    fn messages_never_carry_the_value() {
        let err = coerce(&json!("secret-42x"), FieldType::Integer).unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }
}
