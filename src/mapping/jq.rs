//! jq expressions (via the `jaq` crates), the mapping's escape hatch for
//! anything the declarative transforms cannot say.
//!
//! A filter is parsed and compiled once at load; each evaluation converts the
//! input to jaq's value type and takes the filter's first output.
//!
//! Evaluation is metered (see [`super::budget`]): jaq clones its per-run
//! data on every function call and every context copy, so that clone is
//! where a step is charged — it catches loops that never touch a value
//! (`def f: f; f`) as well as `repeat`, `recurse`, `limit`, `reduce` bodies.
//! `range/3` loops natively without such a clone: it is replaced by a copy
//! that charges a step per output. Deep non-tail recursion is stopped before
//! it overflows the thread's stack. jaq has no way to return an error from
//! those places, so an exceeded budget unwinds (`resume_unwind`, no panic
//! hook, nothing printed) to [`Jq::first`], which catches exactly that
//! payload; jq's own `try` cannot swallow it.
//!
//! `halt`/`halt_error` fail like any error instead of exiting the server
//! process, and `env` is removed (it would read the server's environment,
//! secrets included).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use jaq_core::data::{DataT, HasLut};
use jaq_core::load::{Arena, File, Loader};
use jaq_core::native::{Filter, Fun, run, v};
use jaq_core::{Compiler, Ctx, Exn, Lut, RunPtr, Vars};
use jaq_json::Val;
use serde::Deserialize;
use serde_json::Value;

use super::budget::{self, Exceeded};

/// jaq's data for one run: the filter table, metered on every clone.
struct Data;

impl DataT for Data {
    type V<'a> = Val;
    type Data<'a> = Metered<'a>;
}

struct Metered<'a>(&'a Lut<Data>);

impl Clone for Metered<'_> {
    #[inline]
    fn clone(&self) -> Self {
        tick(1);
        Metered(self.0)
    }
}

impl<'a> HasLut<'a, Data> for Metered<'a> {
    fn lut(&self) -> &'a Lut<Data> {
        self.0
    }
}

/// Native stack jq may use below [`Jq::first`]: about 190 levels of
/// non-tail recursion (jaq takes ~2.7 KB per level), well inside the 2 MiB
/// of a worker or pool thread.
const STACK_BYTES: usize = 512 * 1024;

thread_local! {
    /// The lowest stack address jq may reach in the current evaluation.
    static STACK_FLOOR: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[inline(always)]
fn stack_pointer() -> usize {
    let here = 0u8;
    std::ptr::from_ref(std::hint::black_box(&here)) as usize
}

/// Charges `n` steps; unwinds to [`Jq::first`] when the budget is spent or
/// the stack is too deep.
#[inline]
fn tick(n: u64) {
    if let Err(e) = budget::charge(n) {
        resume_unwind(Box::new(e));
    }
    if stack_pointer() < STACK_FLOOR.with(std::cell::Cell::get) {
        resume_unwind(Box::new(Exceeded(format!(
            "jq recursion deeper than {} KiB of stack",
            STACK_BYTES / 1024
        ))));
    }
}

/// jaq-core's `range/3`, charging a step per output (it loops natively,
/// without a metered clone), and `halt/1` as a plain error (jaq-std's would
/// exit the process; its definitions use it, so it cannot simply go).
fn overrides() -> impl Iterator<Item = Fun<Data>> {
    let funs: Box<[Filter<RunPtr<Data>>]> = Box::new([
        ("halt", v(1), |_| {
            jaq_core::native::bome(Err(jaq_core::Error::str(
                "halt is not available in a mapping",
            )))
        }),
        ("range", v(3), |mut cv| {
            use core::cmp::Ordering::{Equal, Greater, Less};
            let by = cv.0.pop_var();
            let to = cv.0.pop_var();
            let mut from: Result<Val, Exn<Val>> = Ok(cv.0.pop_var());
            let direction = by.partial_cmp(&Val::from(0isize)).unwrap_or(Equal);
            Box::new(core::iter::from_fn(move || match from.clone() {
                Ok(x) => {
                    tick(1);
                    match direction {
                        Greater => x < to,
                        Less => x > to,
                        Equal => x != to,
                    }
                    .then(|| core::mem::replace(&mut from, (x + by.clone()).map_err(Exn::from)))
                }
                e @ Err(_) => {
                    from = Ok(to.clone());
                    Some(e)
                }
            }))
        }),
    ]);
    funs.into_vec().into_iter().map(run::<Data>)
}

/// Natives a mapping must not reach: the server's environment.
const REMOVED: &[&str] = &["env"];

/// A compiled jq filter.
pub struct Jq {
    filter: jaq_core::Filter<Data>,
    /// The expression as written (for `map --explain`'s source chains).
    code: Box<str>,
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
        // Natives resolve first-match: the overrides shadow jaq's.
        let funs = overrides()
            .chain(jaq_core::funs::<Data>())
            .chain(jaq_std::funs::<Data>())
            .chain(jaq_json::funs::<Data>())
            .filter(|(name, _, _)| !REMOVED.contains(name));
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
        Ok(Self {
            filter,
            code: code.into(),
        })
    }

    /// The expression as written in the mapping.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The filter's first output for `input`; `Ok(None)` when it yields
    /// nothing or `null`. Runtime errors are reported without the input.
    pub fn first(&self, input: &Value) -> Result<Option<Value>, String> {
        let input = Val::deserialize(input).map_err(|e| format!("jq input: {e}"))?;
        let floor = stack_pointer().saturating_sub(STACK_BYTES);
        let outer = STACK_FLOOR.with(|f| f.replace(floor));
        let result = catch_unwind(AssertUnwindSafe(|| {
            budget::metered_or_default(|| {
                let ctx = Ctx::<Data>::new(Metered(&self.filter.lut), Vars::new([]));
                let mut out = self.filter.id.run((ctx, input));
                match out.next() {
                    None => Ok(None),
                    // An error or a `halt` exception (the native is removed, but
                    // its exception type exists): a failure, never an exit.
                    Some(Err(_)) => Err("the jq expression failed on this input".to_owned()),
                    Some(Ok(val)) => {
                        let json: Value = serde_json::from_str(&val.to_string()).map_err(|_| {
                            "the jq expression produced a value that is not JSON".to_owned()
                        })?;
                        let (items, bytes) = match &json {
                            Value::Array(a) => (a.len(), 0),
                            Value::Object(o) => (o.len(), 0),
                            Value::String(t) => (0, t.len()),
                            _ => (0, 0),
                        };
                        if let Err(e) = budget::check_size(items, bytes) {
                            return Err(format!("the jq expression {e}"));
                        }
                        Ok((!json.is_null()).then_some(json))
                    }
                }
            })
        }));
        STACK_FLOOR.with(|f| f.set(outer));
        match result {
            Ok(r) => r,
            Err(payload) => match payload.downcast::<Exceeded>() {
                Ok(e) => Err(format!("the jq expression {e}")),
                // A real panic inside jaq: not ours to swallow.
                Err(other) => resume_unwind(other),
            },
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
    fn runaway_expressions_stop_within_the_budget() {
        for code in [
            "[range(100000000)] | length",
            "def f: f; f",
            "reduce range(1000000000) as $x (0; . + 1)",
            "[limit(1000000000; repeat(1))] | length",
            "[0 | recurse(if . < 1000000000 then . + 1 else empty end)] | length",
            "def f: 1 + f; f",
            "def f: [f]; f",
            "try ([range(100000000)] | length) catch \"swallowed\"",
        ] {
            let jq = Jq::compile(code).unwrap();
            let err = jq.first(&json!({})).unwrap_err();
            assert!(err.contains("exceeded its budget"), "{code}: {err}");
        }
    }

    #[test]
    fn a_value_over_the_size_limits_is_refused() {
        let budget = budget::Budget {
            max_items: 10,
            max_string_bytes: 10,
            ..budget::Budget::default()
        };
        budget::metered(budget, || {
            let err = Jq::compile("[range(11)]")
                .unwrap()
                .first(&json!(null))
                .unwrap_err();
            assert!(err.contains("more than 10 items"), "{err}");
            let err = Jq::compile("\"x\" * 11")
                .unwrap()
                .first(&json!(null))
                .unwrap_err();
            assert!(err.contains("more than 10 bytes"), "{err}");
            assert!(
                Jq::compile("[range(10)]")
                    .unwrap()
                    .first(&json!(null))
                    .is_ok()
            );
        });
    }

    #[test]
    fn halt_fails_and_env_is_not_available() {
        for code in ["env", "env.HOME"] {
            assert!(Jq::compile(code).is_err(), "{code} compiled");
        }
        for code in ["halt", "halt_error", "halt_error(1)", "\"x\" | halt_error"] {
            let err = Jq::compile(code).unwrap().first(&json!(1)).unwrap_err();
            assert!(err.contains("failed"), "{code}: {err}");
        }
        // The rest of the standard library still compiles and runs.
        let jq = Jq::compile("[range(3)] | map(. * 2) | add | tostring").unwrap();
        assert_eq!(jq.first(&json!(null)).unwrap(), Some(json!("6")));
    }

    #[test]
    fn is_shareable_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Jq>();
    }
}
