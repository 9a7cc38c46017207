//! jq expressions (via the `jaq` crates), the mapping's escape hatch for
//! anything the declarative transforms cannot say.
//!
//! A filter is parsed and compiled once at load; each evaluation converts the
//! input to jaq's value type and takes the filter's first output.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde::Deserialize;
use serde_json::Value;

type Data = data::JustLut<Val>;

/// A compiled jq filter.
pub struct Jq {
    filter: jaq_core::Filter<Data>,
}

impl std::fmt::Debug for Jq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jq")
    }
}

impl Jq {
    /// Parses and compiles `code` with jq's standard library.
    pub fn compile(code: &str) -> Result<Self, String> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errs| {
                format!(
                    "invalid jq expression `{code}`: {}",
                    describe_load(code, &errs)
                )
            })?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| {
                format!(
                    "invalid jq expression `{code}`: {}",
                    describe_compile(&errs)
                )
            })?;
        Ok(Self { filter })
    }

    /// The filter's first output for `input`; `Ok(None)` when it yields
    /// nothing or `null`. Runtime errors are reported without the input.
    pub fn first(&self, input: &Value) -> Result<Option<Value>, String> {
        let input = Val::deserialize(input).map_err(|e| format!("jq input: {e}"))?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let mut out = self.filter.id.run((ctx, input)).map(unwrap_valr);
        match out.next() {
            None => Ok(None),
            Some(Err(_)) => Err("the jq expression failed on this input".into()),
            Some(Ok(val)) => {
                let json: Value = serde_json::from_str(&val.to_string()).map_err(|_| {
                    "the jq expression produced a value that is not JSON".to_owned()
                })?;
                Ok((!json.is_null()).then_some(json))
            }
        }
    }
}

/// Where in `code` a parse error points, for messages.
fn at(code: &str, rest: &str) -> String {
    let offset = code.len().saturating_sub(rest.len());
    if rest.is_empty() {
        "at the end".to_owned()
    } else {
        format!(
            "at character {}",
            code[..offset.min(code.len())].chars().count() + 1
        )
    }
}

fn describe_load(code: &str, errs: &jaq_core::load::Errors<&str, ()>) -> String {
    use jaq_core::load::Error;
    let mut parts = Vec::new();
    for (_, err) in errs {
        match err {
            Error::Io(list) => parts.extend(list.iter().map(|(_, e)| e.clone())),
            Error::Lex(list) => parts.extend(
                list.iter()
                    .map(|(exp, rest)| format!("expected {} {}", exp.as_str(), at(code, rest))),
            ),
            Error::Parse(list) => parts.extend(
                list.iter()
                    .map(|(exp, rest)| format!("expected {} {}", exp.as_str(), at(code, rest))),
            ),
        }
    }
    parts.join("; ")
}

fn describe_compile(errs: &jaq_core::compile::Errors<&str, ()>) -> String {
    use jaq_core::compile::Undefined;
    errs.iter()
        .flat_map(|(_, list)| list.iter())
        .map(|(name, undef)| match undef {
            Undefined::Filter(arity) => format!("undefined function `{name}/{arity}`"),
            Undefined::Var => format!("undefined variable `{name}`"),
            Undefined::Mod => format!("undefined module `{name}`"),
            _ => format!("undefined `{name}`"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_first_output() {
        let jq = Jq::compile(r#".a + " " + (.b | ascii_upcase)"#).unwrap();
        assert_eq!(
            jq.first(&json!({"a": "x", "b": "y"})).unwrap(),
            Some(json!("x Y"))
        );
        let jq = Jq::compile(".items[] | select(.t == \"M\") | .v").unwrap();
        assert_eq!(
            jq.first(&json!({"items": [{"t": "E", "v": 1}, {"t": "M", "v": 2}]}))
                .unwrap(),
            Some(json!(2))
        );
        assert_eq!(
            Jq::compile(".missing").unwrap().first(&json!({})).unwrap(),
            None
        );
    }

    #[test]
    fn rejects_invalid_expressions() {
        assert!(Jq::compile(".a | ").is_err());
        assert!(Jq::compile("nosuchfn(1)").is_err());
    }

    #[test]
    fn is_shareable_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Jq>();
    }
}
