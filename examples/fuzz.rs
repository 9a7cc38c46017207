//! Fuzzing beyond proptest's 256 cases: millions of generated inputs, seeded
//! and reproducible, against what a hostile caller or a broken CRM can reach.
//!
//! Targets (each case goes to one, round-robin):
//! - `map:NAME` — every shipped mapping (`mappings/*.toml`, `mappings/users/*.toml`)
//!   through the card producer the server runs on a CRM answer. Inputs are
//!   mostly mutations of the golden fixtures (drop, duplicate, retype fields;
//!   huge, empty and unicode strings; numbers at their edges; nesting up to
//!   serde_json's parser limit; parts of other fixtures), sometimes byte-level
//!   mutations of their text that still parse, sometimes random JSON. A card
//!   that comes out must be valid JSON of the front's schema.
//! - `token` — the Auth API's path as a client may send it: URI parse,
//!   axum's percent-decoding of the catch-all, `check_token` under several
//!   limits, then the first CRM requests of every shipped pipeline (and of a
//!   `[upstream]` with SOQL/OData/body templates). A token must stay in its
//!   path segment, query value or JSON string and never change the CRM host.
//! - `users-body` — the users front's checks before forwarding (content type,
//!   JSON object, API key, required fields) on generated bodies and headers.
//!
//! A panic is caught (`catch_unwind`); the panic hook prints nothing, so no
//! generated input — a stand-in for tokens and personal data — reaches the
//! terminal. Each failure is written to `target/fuzz-crashes/`, with the seed
//! and case number that reproduce it (`--replay CASE`).
//!
//! Run: `cargo run --release --example fuzz -- --cases 1000000 --seed 1`
//! (options: `--cases N`, `--seed S`, `--only TARGET-PREFIX`, `--replay CASE`).

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authbridge::config::{AuthApiSettings, UpstreamSettings};
use authbridge::front::auth_api::card::CardBuilder;
use authbridge::front::auth_api::check_token;
use authbridge::front::users_api::card::UsersCardBuilder;
use authbridge::front::users_api::precheck;
use authbridge::lookup::{CardProducer, Limits};
use authbridge::tools::{Target, mapping_files};
use authbridge::upstream::{Pipeline, Transport};
use axum::http::{HeaderMap, HeaderValue, Uri};
use fastrand::Rng;
use serde_json::{Map, Number, Value, json};

/// serde_json refuses deeper documents, so no CRM answer nests deeper.
const PARSER_DEPTH: usize = 128;
const ROUTE: &str = "/rest/chat/client/id/";
const BASE_URL: &str = "http://127.0.0.1:9/api";
const USERS_KEY: &str = "fuzz-platform-key";
/// A case slower than this is reported: an input that stalls a worker is a
/// finding even if it does not panic.
const SLOW: Duration = Duration::from_millis(250);

/// The last panic's message and place, kept for the crash file only.
static PANIC: Mutex<Option<String>> = Mutex::new(None);
/// Set while a case runs: only those panics are silenced.
static IN_CASE: AtomicBool = AtomicBool::new(false);

fn main() {
    let args = Args::parse();
    // Same stack as the server's worker threads (std's 2 MiB default), so a
    // recursion the server would overflow overflows here too.
    let worker = std::thread::Builder::new()
        .name("fuzz".into())
        .stack_size(2 << 20)
        .spawn(move || run(&args))
        .expect("spawn the fuzz thread");
    let failed = worker.join().expect("the fuzz thread itself never panics");
    std::process::exit(i32::from(failed));
}

struct Args {
    cases: u64,
    seed: u64,
    only: Option<String>,
    replay: Option<u64>,
}

impl Args {
    fn parse() -> Self {
        let mut args = Args {
            cases: 1_000_000,
            seed: 1,
            only: None,
            replay: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().unwrap_or_else(|| usage(&flag));
            match flag.as_str() {
                "--cases" => args.cases = value().parse().unwrap_or_else(|_| usage("--cases")),
                "--seed" => args.seed = value().parse().unwrap_or_else(|_| usage("--seed")),
                "--only" => args.only = Some(value()),
                "--replay" => {
                    args.replay = Some(value().parse().unwrap_or_else(|_| usage("--replay")));
                }
                other => usage(other),
            }
        }
        args
    }
}

fn usage(bad: &str) -> ! {
    eprintln!(
        "fuzz: bad argument {bad}\nusage: fuzz [--cases N] [--seed S] [--only TARGET-PREFIX] [--replay CASE]"
    );
    std::process::exit(2)
}

/// One thing under test and its tallies.
struct Fuzzed {
    name: String,
    kind: Kind,
    cases: u64,
    ok: u64,
    failures: u64,
    slowest: Duration,
}

enum Kind {
    Mapping {
        producer: Box<dyn CardProducer>,
        users: bool,
        fixtures: Vec<Value>,
    },
    Token,
    UsersBody,
}

/// What the targets share: every fixture (for cross-over), the pipelines
/// whose requests carry the token, and the token limits to check under.
struct World {
    all_fixtures: Vec<Value>,
    transport: Transport,
    pipelines: Vec<(String, Pipeline)>,
    limits: Vec<Limits>,
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn fixtures(dir: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.to_string_lossy().ends_with(".input.json"));
    files.sort();
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("read a fixture");
            serde_json::from_str(&text).expect("fixtures are JSON")
        })
        .collect()
}

fn setup() -> (Vec<Fuzzed>, World) {
    let upstream = UpstreamSettings {
        base_url: Some(BASE_URL.parse().unwrap()),
        ..Default::default()
    };
    let transport = Transport::new(&upstream, authbridge::metrics::Metrics::new())
        .expect("a transport for 127.0.0.1");
    let mut targets = Vec::new();
    let mut pipelines = Vec::new();
    let mut all_fixtures = Vec::new();
    for (dir, fixture_dir) in [
        ("mappings", "tests/fixtures"),
        ("mappings/users", "tests/fixtures/users"),
    ] {
        for file in mapping_files(&repo(dir)) {
            let name = file.file_stem().unwrap().to_string_lossy().into_owned();
            let settings = AuthApiSettings {
                mapping: file.clone(),
                ..Default::default()
            };
            let (producer, users): (Box<dyn CardProducer>, bool) = match Target::of(&file) {
                Target::AuthApi => (
                    Box::new(CardBuilder::load(&settings).expect("shipped mapping")),
                    false,
                ),
                Target::Users(shape) => (
                    Box::new(UsersCardBuilder::load(&file, shape).expect("shipped mapping")),
                    true,
                ),
            };
            let fixtures = fixtures(&repo(&format!("{fixture_dir}/{name}")));
            assert!(!fixtures.is_empty(), "{name} has golden fixtures");
            all_fixtures.extend(fixtures.iter().cloned());
            if let Some(p) =
                Pipeline::from_mapping_file(&file, &upstream).expect("shipped pipeline")
            {
                pipelines.push((name.clone(), p));
            }
            targets.push(Fuzzed::new(
                format!("map:{name}"),
                Kind::Mapping {
                    producer,
                    users,
                    fixtures,
                },
            ));
        }
    }
    // The `[upstream]` request of mappings without steps, and one that puts
    // the token into a SOQL and an OData literal, a header and a JSON body.
    pipelines.push((
        "upstream-default".into(),
        Pipeline::from_settings(&upstream).unwrap(),
    ));
    let templated = UpstreamSettings {
        method: authbridge::config::HttpMethod::POST,
        path: "/v1/sessions/{token}/client".into(),
        query: BTreeMap::from([
            (
                "q".into(),
                "SELECT Id FROM Contact WHERE Token__c = '{token|soql}'".into(),
            ),
            ("$filter".into(), "token eq '{token|odata}'".into()),
            ("session".into(), "{token}".into()),
        ]),
        headers: BTreeMap::from([("x-session".into(), "{token}".into())]),
        body: Some(r#"{"token": "{token}", "kind": "chat"}"#.into()),
        ..upstream.clone()
    };
    pipelines.push((
        "upstream-templated".into(),
        Pipeline::from_settings(&templated).unwrap(),
    ));
    let limit = |max, pattern: Option<&str>| Limits {
        max_token_bytes: max,
        request_timeout: Duration::from_secs(5),
        token_pattern: pattern.map(|p| regex::Regex::new(p).unwrap()),
    };
    let limits = vec![
        limit(512, None),
        limit(512, Some("^[A-Za-z0-9_-]+$")),
        limit(64, Some(r"^\w{4,}$")),
    ];
    targets.push(Fuzzed::new("token".into(), Kind::Token));
    targets.push(Fuzzed::new("users-body".into(), Kind::UsersBody));
    (
        targets,
        World {
            all_fixtures,
            transport,
            pipelines,
            limits,
        },
    )
}

impl Fuzzed {
    fn new(name: String, kind: Kind) -> Self {
        Self {
            name,
            kind,
            cases: 0,
            ok: 0,
            failures: 0,
            slowest: Duration::ZERO,
        }
    }
}

/// One case's input, kept for the crash file.
enum Input {
    Json(Value),
    Token(String),
    Users {
        call: usize,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
}

impl Input {
    fn describe(&self) -> String {
        match self {
            Input::Json(v) => serde_json::to_string(v).unwrap_or_default(),
            Input::Token(raw) => format!("raw path after {ROUTE}: {raw:?}"),
            Input::Users {
                call,
                headers,
                body,
            } => format!(
                "call {call}, headers {headers:?}, body {:?}",
                String::from_utf8_lossy(body)
            ),
        }
    }
}

fn case_seed(seed: u64, case: u64) -> u64 {
    // splitmix64: neighbouring cases get unrelated streams.
    let mut z = seed ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn run(args: &Args) -> bool {
    // Setup failures panic loudly; only the cases run under the silent hook.
    let (mut targets, world) = setup();
    let loud = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if IN_CASE.load(Ordering::Relaxed) {
            // Silent: the message may quote the input. It goes to the crash file.
            *PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.to_string());
        } else {
            // A bug of the fuzzer itself: no input in it, so say it.
            loud(info);
        }
    }));
    if let Some(prefix) = &args.only {
        targets.retain(|t| t.name.starts_with(prefix.as_str()));
        if targets.is_empty() {
            usage(prefix);
        }
    }
    let crash_dir = repo("target/fuzz-crashes");
    let started = Instant::now();
    let (from, to) = match args.replay {
        Some(case) => (case, case + 1),
        None => (0, args.cases),
    };
    let mut failures = 0u64;
    let n = targets.len() as u64;
    for case in from..to {
        let target = &mut targets[(case % n) as usize];
        let mut rng = Rng::with_seed(case_seed(args.seed, case));
        let input = generate(&mut rng, target, &world);
        let t0 = Instant::now();
        IN_CASE.store(true, Ordering::Relaxed);
        let verdict = catch_unwind(AssertUnwindSafe(|| check(target, &world, &input)));
        IN_CASE.store(false, Ordering::Relaxed);
        let took = t0.elapsed();
        target.cases += 1;
        target.slowest = target.slowest.max(took);
        let problem = match verdict {
            Ok(Ok(accepted)) => {
                target.ok += u64::from(accepted);
                (took > SLOW).then(|| format!("slow: {took:?}"))
            }
            Ok(Err(broken)) => Some(format!("property violated: {broken}")),
            Err(_) => Some(format!(
                "panic: {}",
                PANIC
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .unwrap_or_default()
            )),
        };
        if let Some(problem) = problem {
            target.failures += 1;
            failures += 1;
            let file = write_crash(&crash_dir, &target.name, args, case, &problem, &input);
            // The file name only: the input and the panic text stay in it.
            eprintln!("fuzz: {} case {case} failed; see {file}", target.name);
        }
        if args.replay.is_some() {
            eprintln!("replayed case {case} of {}", target.name);
        }
    }
    summary(&targets, args, started.elapsed(), failures);
    failures > 0
}

fn write_crash(
    dir: &Path,
    target: &str,
    args: &Args,
    case: u64,
    problem: &str,
    input: &Input,
) -> String {
    let _ = std::fs::create_dir_all(dir);
    let seed = args.seed;
    // Cases go round-robin over the selected targets: replay with the same --only.
    let only = args
        .only
        .as_ref()
        .map(|o| format!(" --only {o}"))
        .unwrap_or_default();
    let name = format!("{}-seed{seed}-case{case}.txt", target.replace(':', "_"));
    let path = dir.join(&name);
    if let Ok(mut f) = std::fs::File::create(&path) {
        let _ = writeln!(
            f,
            "target: {target}\nreproduce: cargo run --release --example fuzz -- --seed {seed}{only} --replay {case}\n{problem}\ninput: {}",
            input.describe()
        );
    }
    format!("target/fuzz-crashes/{name}")
}

fn summary(targets: &[Fuzzed], args: &Args, elapsed: Duration, failures: u64) {
    let total: u64 = targets.iter().map(|t| t.cases).sum();
    println!("\n| target | cases | accepted | failures | slowest case |");
    println!("|---|---:|---:|---:|---:|");
    for t in targets {
        println!(
            "| {} | {} | {} | {} | {:.1} ms |",
            t.name,
            t.cases,
            t.ok,
            t.failures,
            t.slowest.as_secs_f64() * 1e3
        );
    }
    println!(
        "\nseed {}: {total} cases in {:.1} s ({:.0} cases/s), {failures} failures",
        args.seed,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64().max(1e-9)
    );
}

// ---------------------------------------------------------------- inputs

fn generate(rng: &mut Rng, target: &Fuzzed, world: &World) -> Input {
    match &target.kind {
        Kind::Mapping { fixtures, .. } => Input::Json(crm_document(rng, fixtures, world)),
        Kind::Token => Input::Token(raw_token(rng)),
        Kind::UsersBody => users_request(rng),
    }
}

/// A CRM answer: mostly a mutated fixture of this mapping.
fn crm_document(rng: &mut Rng, own: &[Value], world: &World) -> Value {
    match rng.u8(0..100) {
        0..=74 => {
            let mut doc = own[rng.usize(0..own.len())].clone();
            for _ in 0..rng.usize(1..=4) {
                mutate(rng, &mut doc, world);
            }
            doc
        }
        75..=86 => {
            // The text as the CRM would send it, with bytes changed; what
            // still parses is what the mapping would see.
            let doc = &own[rng.usize(0..own.len())];
            let mut text = serde_json::to_vec(doc).unwrap_or_default();
            for _ in 0..rng.usize(1..=6) {
                byte_mutate(rng, &mut text);
            }
            serde_json::from_slice(&text).unwrap_or_else(|_| doc.clone())
        }
        87..=91 => {
            let mut doc = world.all_fixtures[rng.usize(0..world.all_fixtures.len())].clone();
            mutate(rng, &mut doc, world);
            doc
        }
        _ => {
            let depth = rng.usize(0..6);
            random_json(rng, depth)
        }
    }
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(m) => m.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// The `k`-th node in pre-order, and its depth.
fn nth_mut<'a>(v: &'a mut Value, k: &mut usize, depth: usize) -> Option<(&'a mut Value, usize)> {
    if *k == 0 {
        return Some((v, depth));
    }
    *k -= 1;
    match v {
        Value::Array(a) => a.iter_mut().find_map(|x| nth_mut(x, k, depth + 1)),
        Value::Object(m) => m.values_mut().find_map(|x| nth_mut(x, k, depth + 1)),
        _ => None,
    }
}

fn depth_of(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(depth_of).max().unwrap_or(0),
        Value::Object(m) => m.values().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

fn mutate(rng: &mut Rng, doc: &mut Value, world: &World) {
    let mut k = rng.usize(0..count_nodes(doc));
    let Some((node, depth)) = nth_mut(doc, &mut k, 1) else {
        return;
    };
    match rng.u8(0..12) {
        // Drop a field or an item.
        0 | 1 => match node {
            Value::Object(m) if !m.is_empty() => {
                let key = m
                    .keys()
                    .nth(rng.usize(0..m.len()))
                    .cloned()
                    .unwrap_or_default();
                m.remove(&key);
            }
            Value::Array(a) if !a.is_empty() => {
                a.remove(rng.usize(0..a.len()));
            }
            other => *other = Value::Null,
        },
        // Duplicate a field under a near name, or an item (sometimes many times).
        2 => match node {
            Value::Object(m) if !m.is_empty() => {
                let i = rng.usize(0..m.len());
                if let Some((key, value)) = m.iter().nth(i).map(|(k, v)| (k.clone(), v.clone())) {
                    let near = [
                        format!("{key}_"),
                        key.to_uppercase(),
                        key.to_lowercase(),
                        format!(" {key}"),
                    ];
                    m.insert(near[rng.usize(0..near.len())].clone(), value);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                let item = a[rng.usize(0..a.len())].clone();
                let times = if rng.u8(0..20) == 0 {
                    rng.usize(50..400)
                } else {
                    rng.usize(1..4)
                };
                a.extend(std::iter::repeat_n(item, times));
            }
            other => *other = Value::Array(vec![other.clone(), other.clone()]),
        },
        // Retype: same content, another JSON type.
        3 | 4 => *node = retype(rng, node),
        5 | 6 => *node = Value::String(edge_string(rng)),
        7 => *node = edge_number(rng),
        // Nest deeper, staying within the parser's limit.
        8 => {
            let room = PARSER_DEPTH.saturating_sub(depth + depth_of(node));
            if room > 0 {
                let cap = if rng.bool() { room.min(4) } else { room };
                let levels = rng.usize(1..=cap);
                let mut v = node.take();
                for _ in 0..levels {
                    v = if rng.bool() {
                        Value::Array(vec![v])
                    } else {
                        json!({ "value": v })
                    };
                }
                *node = v;
            }
        }
        9 => {
            let donor = &world.all_fixtures[rng.usize(0..world.all_fixtures.len())];
            let mut j = rng.usize(0..count_nodes(donor));
            let mut donor = donor.clone();
            if let Some((part, _)) = nth_mut(&mut donor, &mut j, 1)
                && depth + depth_of(part) <= PARSER_DEPTH
            {
                *node = part.take();
            }
        }
        10 => *node = if rng.bool() { json!({}) } else { json!([]) },
        _ => {
            let budget = PARSER_DEPTH.saturating_sub(depth).min(5);
            *node = random_json(rng, budget);
        }
    }
}

fn retype(rng: &mut Rng, v: &Value) -> Value {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match rng.u8(0..7) {
        0 => Value::String(text),
        1 => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::from(text.len() as i64)),
        2 => Value::Bool(!text.is_empty() && text != "false" && text != "0"),
        3 => Value::Null,
        4 => Value::Array(vec![v.clone()]),
        5 => json!({ "value": v.clone() }),
        _ => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Value::from(0.5), Value::Number),
    }
}

const NASTY: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "\t\n\r",
    "\u{feff}",
    "\u{200b}\u{200d}",
    "\u{202e}RTL",
    "e\u{301}\u{302}\u{303}",
    "👩‍👩‍👧‍👦",
    "Иванова Анна Сергеевна",
    "ǅǈǋ",
    "ß",
    "İ",
    "\u{10ffff}",
    "\u{85}",
    "null",
    "true",
    "NaN",
    "-0",
    "1e999",
    "0x1F",
    "00000000000000000000000000000000001",
    "{token}",
    "{$.client.id}",
    "$..*",
    "' OR 1=1 --",
    "\\",
    "\"",
    "%00",
    "../..",
    "1970-01-01",
    "31.12.9999",
    "29.02.2023",
    "00.00.0000",
    "2024-02-30T25:61:61Z",
    "+275760-09-13T00:00:00Z",
    "-000001-01-01",
    "9999999999999",
    "-9223372036854775808",
    "1.7976931348623157e309",
    "MOBILE",
    "ACTIVE",
    "Y",
    "N",
];

fn edge_string(rng: &mut Rng) -> String {
    match rng.u8(0..10) {
        0..=4 => NASTY[rng.usize(0..NASTY.len())].to_owned(),
        5 => {
            // Huge: past any field's sane length, below the CRM body cap.
            let unit = NASTY[rng.usize(0..NASTY.len())];
            let unit = if unit.is_empty() { "a" } else { unit };
            unit.repeat(rng.usize(1_000..64_000) / unit.len().max(1))
        }
        6 => (0..rng.usize(0..40)).map(|_| rng.char(..)).collect(),
        7 => (0..rng.usize(0..40))
            .map(|_| char::from(rng.u8(0..128)))
            .collect(),
        8 => {
            let a = NASTY[rng.usize(0..NASTY.len())];
            let b = NASTY[rng.usize(0..NASTY.len())];
            format!("{a}{b}")
        }
        _ => rng.i64(..).to_string(),
    }
}

fn edge_number(rng: &mut Rng) -> Value {
    let f = |x: f64| Number::from_f64(x).map_or(Value::Null, Value::Number);
    match rng.u8(0..16) {
        0 => Value::from(0),
        1 => Value::from(i64::MIN),
        2 => Value::from(i64::MAX),
        3 => Value::from(u64::MAX),
        4 => f(-0.0),
        5 => f(f64::MAX),
        6 => f(f64::MIN),
        7 => f(f64::MIN_POSITIVE),
        8 => f(5e-324),
        9 => Value::from((1u64 << 53) + 1),
        10 => Value::from(-1),
        11 => f(0.1),
        12 => Value::from(253_402_300_800_000i64), // year 10000 in ms
        13 => Value::from(-62_135_596_801i64),     // before year 1 in s
        14 => f(rng.f64() * 1e20 - 5e19),
        _ => Value::from(rng.i64(..)),
    }
}

fn random_json(rng: &mut Rng, depth: usize) -> Value {
    let leaf = depth == 0 || rng.u8(0..3) == 0;
    if leaf {
        return match rng.u8(0..5) {
            0 => Value::Null,
            1 => Value::Bool(rng.bool()),
            2 => edge_number(rng),
            _ => Value::String(if rng.u8(0..8) == 0 {
                edge_string(rng)
            } else {
                NASTY[rng.usize(0..NASTY.len())].into()
            }),
        };
    }
    const KEYS: &[&str] = &[
        "client",
        "id",
        "name",
        "status",
        "companies",
        "steps",
        "input",
        "result",
        "value",
        "type",
        "contacts",
        "phone",
        "email",
        "birthDate",
        "properties",
        "records",
        "customer",
        "user",
        "otp",
    ];
    if rng.bool() {
        Value::Array(
            (0..rng.usize(0..5))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        )
    } else {
        let mut m = Map::new();
        for _ in 0..rng.usize(0..6) {
            let key = if rng.u8(0..4) == 0 {
                edge_string(rng)
            } else {
                KEYS[rng.usize(0..KEYS.len())].to_owned()
            };
            m.insert(key, random_json(rng, depth - 1));
        }
        Value::Object(m)
    }
}

fn byte_mutate(rng: &mut Rng, text: &mut Vec<u8>) {
    if text.is_empty() {
        text.push(b'{');
        return;
    }
    let at = rng.usize(0..text.len());
    match rng.u8(0..6) {
        0 => text[at] = rng.u8(..),
        1 => {
            text.remove(at);
        }
        2 => {
            let bytes = b"{}[]\",:0-.eE\\u";
            text.insert(at, bytes[rng.usize(0..bytes.len())]);
        }
        3 => {
            // A duplicate key: serde_json keeps the last one.
            let end = (at + rng.usize(1..40)).min(text.len());
            let chunk = text[at..end].to_vec();
            text.splice(at..at, chunk);
        }
        4 => {
            let bits = [
                b"\\u0000".as_slice(),
                b"\\ud800",
                b"1e400",
                b"-0",
                b"\xff",
                b"null",
            ];
            let b = bits[rng.usize(0..bits.len())];
            text.splice(at..at, b.iter().copied());
        }
        _ => text.truncate(at),
    }
}

/// The path after the route as a client may send it (percent-encoded).
fn raw_token(rng: &mut Rng) -> String {
    let mut out = String::new();
    let parts = rng.usize(1..12);
    for _ in 0..parts {
        match rng.u8(0..22) {
            0..=5 => out.extend((0..rng.usize(1..24)).map(|_| rng.alphanumeric())),
            6 => out.push(
                [
                    '-', '_', '.', '~', '\'', '!', '$', '&', '(', ')', '*', '+', ',', ';', '=',
                    ':', '@',
                ][rng.usize(0..17)],
            ),
            7 => out.push_str(&format!("%{:02X}", rng.u8(..))),
            8 => out.push_str(&format!("%{:02x}", rng.u8(0..0x20))),
            9 => out.push_str(["%", "%G1", "%4", "%%", "%-1"][rng.usize(0..5)]),
            10 => {
                let c = rng.char(..);
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            11 => out.push_str(
                [
                    "%C0%AF",
                    "%ED%A0%80",
                    "%F4%90%80%80",
                    "%C2",
                    "%E2%82",
                    "%C2%85",
                    "%E2%80%AE",
                ][rng.usize(0..7)],
            ),
            12 => out.push_str(
                [".", "..", "%2e", "%2E%2e", "/", "//", "%2F", "%5C", "/../"][rng.usize(0..9)],
            ),
            13 => out.push_str(
                [
                    "?",
                    "#",
                    "?x=1",
                    "%3F",
                    "%23",
                    "{token}",
                    "%7Btoken%7D",
                    "%27",
                    "%22",
                    "%5C%27",
                ][rng.usize(0..10)],
            ),
            14 => out.push(rng.char(..)),
            15 => out.push_str(["%20", "+", "%0D%0A", "%00", "%7F", "%09"][rng.usize(0..6)]),
            16 => {
                // Around the length limits: 64 and 512 bytes after decoding.
                let n = [62, 63, 64, 65, 510, 511, 512, 513, 2048][rng.usize(0..9)];
                out.extend((0..n).map(|_| rng.alphanumeric()));
            }
            17 => out.push_str(&"%D0%96".repeat(rng.usize(100..300))),
            18 => out.push_str(["@evil.example", "http://x", "\\\\host", ":80"][rng.usize(0..4)]),
            _ => out.push_str(&rng.u64(..).to_string()),
        }
    }
    out
}

fn users_request(rng: &mut Rng) -> Input {
    let call = rng.usize(0..5);
    let mut headers = Vec::new();
    match rng.u8(0..8) {
        0 => {}
        1 => headers.push(("content-type".into(), "text/plain".into())),
        2 => headers.push((
            "content-type".into(),
            "application/vnd.x+json; charset=utf-8".into(),
        )),
        3 => headers.push((
            "content-type".into(),
            [
                "APPLICATION/JSON",
                "application/json;",
                " application/json ",
                "application/jsonx",
                "application/+json",
                "",
            ][rng.usize(0..6)]
            .into(),
        )),
        _ => headers.push(("content-type".into(), "application/json".into())),
    }
    let key_in_body = rng.u8(0..3) == 0;
    if !key_in_body {
        let auth = match rng.u8(0..10) {
            0 => None,
            1 => Some(format!("bearer {USERS_KEY}")),
            2 => Some(format!("Bearer {USERS_KEY} ")),
            3 => Some(format!("Bearer {}", edge_string(rng))),
            4 => Some(USERS_KEY.to_owned()),
            _ => Some(format!("Bearer {USERS_KEY}")),
        };
        headers.extend(auth.map(|a| ("authorization".to_owned(), a)));
    }
    let mut body = Map::new();
    if key_in_body {
        let key = match rng.u8(0..8) {
            0 => Value::Null,
            1 => Value::from(1),
            2 => Value::String(edge_string(rng)),
            3 => Value::String(format!("{USERS_KEY}\u{0}")),
            _ => Value::String(USERS_KEY.into()),
        };
        body.insert("key".into(), key);
    }
    for name in [
        "userIdentifier",
        "login",
        "otp",
        "password",
        "name",
        "phone",
        "email",
    ] {
        if rng.u8(0..4) == 0 {
            continue;
        }
        let v = match rng.u8(0..10) {
            0 => random_json(rng, 2),
            1 => edge_number(rng),
            2 | 3 => Value::String(edge_string(rng)),
            4 => {
                Value::String("x".repeat([63, 64, 65, 255, 256, 257, 1024, 1025][rng.usize(0..8)]))
            }
            _ => Value::String(format!("7999{}", rng.u32(1_000_000..9_999_999))),
        };
        body.insert(name.into(), v);
    }
    let mut bytes = match rng.u8(0..10) {
        0 => serde_json::to_vec(&random_json(rng, 3)).unwrap_or_default(),
        _ => serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
    };
    if rng.u8(0..6) == 0 {
        for _ in 0..rng.usize(1..4) {
            byte_mutate(rng, &mut bytes);
        }
    }
    Input::Users {
        call,
        headers,
        body: bytes,
    }
}

// ---------------------------------------------------------------- checks

/// Runs one case; `Ok(true)` when the input was accepted (a card made, a
/// token admitted), `Err` when a property the server relies on is broken.
fn check(target: &Fuzzed, world: &World, input: &Input) -> Result<bool, String> {
    match (&target.kind, input) {
        (
            Kind::Mapping {
                producer, users, ..
            },
            Input::Json(doc),
        ) => check_mapping(producer.as_ref(), *users, doc),
        (Kind::Token, Input::Token(raw)) => check_token_path(world, raw),
        (
            Kind::UsersBody,
            Input::Users {
                call,
                headers,
                body,
            },
        ) => check_users(*call, headers, body),
        _ => unreachable!("inputs are generated for their target"),
    }
}

fn check_mapping(producer: &dyn CardProducer, users: bool, doc: &Value) -> Result<bool, String> {
    let Ok(bytes) = producer.produce(doc) else {
        return Ok(false);
    };
    if users {
        let v: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("answer is not JSON: {e}"))?;
        let ok = v.get("user").and_then(|u| u.get("id")).is_some()
            || v.get("otp").is_some()
            || v.get("orders").is_some_and(Value::is_array);
        if !ok {
            return Err("answer has neither user.id, otp nor an orders list".into());
        }
    } else {
        let card: authbridge::schema::auth_api::Response = serde_json::from_slice(&bytes)
            .map_err(|e| format!("card does not fit the schema: {e}"))?;
        if card.client.is_none() {
            return Err("card without client".into());
        }
    }
    Ok(true)
}

fn check_token_path(world: &World, raw: &str) -> Result<bool, String> {
    // What hyper accepts as a request target, then what axum's catch-all
    // hands the handler: the path (no query), percent-decoded as UTF-8.
    let Ok(uri) = format!("{ROUTE}{raw}").parse::<Uri>() else {
        return Ok(false);
    };
    let Some(rest) = uri.path().strip_prefix(ROUTE) else {
        return Ok(false);
    };
    let Ok(token) = percent_encoding::percent_decode_str(rest).decode_utf8() else {
        return Ok(false);
    };
    let mut admitted = false;
    for limits in &world.limits {
        let verdict = check_token(&token, limits);
        let should = !token.is_empty()
            && token.len() <= limits.max_token_bytes
            && !token.chars().any(char::is_control)
            && limits
                .token_pattern
                .as_ref()
                .is_none_or(|p| p.is_match(&token));
        if verdict.is_ok() != should {
            return Err(format!(
                "check_token answered {verdict:?}, expected ok = {should}"
            ));
        }
        if verdict.is_ok() {
            admitted = true;
        }
    }
    if admitted {
        for (name, pipeline) in &world.pipelines {
            check_requests(world, name, pipeline, &token)?;
        }
    }
    Ok(admitted)
}

/// The token stays where its template put it, for every first request.
fn check_requests(
    world: &World,
    name: &str,
    pipeline: &Pipeline,
    token: &str,
) -> Result<(), String> {
    // The users calls take the token from the body, as `$.input`.
    let input = |t: &str| {
        Some(json!({ "userIdentifier": t, "login": t, "otp": "123456", "password": "p" }))
    };
    let benign = pipeline.first_requests(&world.transport, "benign", input("benign"));
    let got = pipeline.first_requests(&world.transport, token, input(token));
    if got.len() != benign.len() {
        return Err(format!(
            "{name}: {} requests, {} for a benign token",
            got.len(),
            benign.len()
        ));
    }
    let dots = matches!(token, "." | "..");
    for (req, reference) in got.iter().zip(&benign) {
        let Ok((reference, _)) = reference else {
            continue;
        };
        let (url, body) = match req {
            Ok(r) => r,
            // `.`/`..` as a path segment is refused by design. A token that
            // passed check_token has no control character, so every other
            // placement (header values included) must render.
            Err(_) if dots => continue,
            Err(e) => return Err(format!("{name}: request refused: {e}")),
        };
        if url.host_str() != Some("127.0.0.1") || url.port() != Some(9) || url.scheme() != "http" {
            return Err(format!("{name}: the token changed the CRM address"));
        }
        let segments = |u: &url::Url| u.path_segments().map(|s| s.count()).unwrap_or(0);
        if segments(url) != segments(reference) {
            return Err(format!(
                "{name}: the token changed the number of path segments"
            ));
        }
        let ref_keys: Vec<String> = reference
            .query_pairs()
            .map(|(k, _)| k.into_owned())
            .collect();
        let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        if keys != ref_keys {
            return Err(format!("{name}: the token changed the query parameters"));
        }
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "q" => soql_literal_closed(&v).map_err(|e| format!("{name}: SOQL {e}"))?,
                "$filter" => odata_literal_closed(&v).map_err(|e| format!("{name}: OData {e}"))?,
                "session" if v != token => {
                    return Err(format!("{name}: query value is not the token"));
                }
                _ => {}
            }
        }
        if let Some(body) = body {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| format!("{name}: body is not JSON: {e}"))?;
            if name == "upstream-templated"
                && (v.get("token") != Some(&Value::String(token.into()))
                    || v.as_object().map(Map::len) != Some(2))
            {
                return Err(format!("{name}: the token escaped its JSON string"));
            }
        }
    }
    Ok(())
}

/// `... = '<literal>'`: the literal, with `\` escapes, ends at the last quote.
fn soql_literal_closed(q: &str) -> Result<(), String> {
    let start = q.find('\'').ok_or("no literal")? + 1;
    let mut chars = q[start..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '\'' => {
                return if start + i + 1 == q.len() {
                    Ok(())
                } else {
                    Err("literal ends early".into())
                };
            }
            _ => {}
        }
    }
    Err("literal not closed".into())
}

/// `... '<literal>'` with `''` for a quote inside.
fn odata_literal_closed(q: &str) -> Result<(), String> {
    let start = q.find('\'').ok_or("no literal")? + 1;
    let inner = q[start..].strip_suffix('\'').ok_or("literal not closed")?;
    if inner.replace("''", "").contains('\'') {
        return Err("a lone quote ends the literal early".into());
    }
    Ok(())
}

fn check_users(call: usize, headers: &[(String, String)], body: &[u8]) -> Result<bool, String> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let Ok(value) = HeaderValue::from_str(v) else {
            continue;
        };
        map.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            value,
        );
    }
    let max_identifier = 256;
    match precheck(USERS_KEY, max_identifier, call, &map, body) {
        Ok(id) => {
            // Admitted only with the right key, and a sane identifier.
            let v: Value =
                serde_json::from_slice(body).map_err(|_| "admitted a body that is not JSON")?;
            let body_key = v.get("key");
            let header_ok = map
                .get("authorization")
                .is_some_and(|a| a.as_bytes() == format!("Bearer {USERS_KEY}").as_bytes());
            let key_ok = match body_key {
                Some(k) => k == USERS_KEY,
                None => header_ok,
            };
            if !key_ok {
                return Err("admitted without the right key".into());
            }
            if id.is_empty() || id.len() > max_identifier || id.chars().any(char::is_control) {
                return Err("admitted an identifier outside the limits".into());
            }
            Ok(true)
        }
        Err(status) if status.is_client_error() => Ok(false),
        Err(status) => Err(format!("refused with a non-4xx status {status}")),
    }
}
