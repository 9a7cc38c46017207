//! Apply time against CRM body size, for every shipped mapping (Auth API
//! cards and the users front's answers), from the fixture's own size up to
//! `upstream.max_body_bytes` (1 MiB): the cost must grow linearly with the
//! body, whatever the CRM sends. Plus the parent-group `lookup` over a flat
//! list of 600 → 6,000 groups (quadratic before the table index).
//!
//! The body grows by repeating the elements of its largest array (ids made
//! unique), so the mapping has more of what it reads, not just bytes it
//! skips. Timing is the median of repeated `produce()` calls (mapping, schema
//! check, serialisation) on one thread.
//!
//! Run: `cargo bench --bench mapping_scale` (prints a markdown table and
//! writes it to `target/mapping-scale.md`); `MAPPING_SCALE=groups` runs the
//! lookup rows alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use authbridge::config::AuthApiSettings;
use authbridge::front::auth_api::card::CardBuilder;
use authbridge::front::users_api::card::{Shape, UsersCardBuilder};
use authbridge::lookup::CardProducer;
use serde_json::{Value, json};

// The server's allocator: glibc's malloc would be a third of these figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZES: &[usize] = &[1 << 10, 16 << 10, 128 << 10, 1 << 20];

/// Median time of `f`, run for about `budget` (at least 5 runs).
fn median(budget: Duration, mut f: impl FnMut()) -> Duration {
    let mut runs = Vec::new();
    let started = Instant::now();
    while runs.len() < 5 || (started.elapsed() < budget && runs.len() < 2_000) {
        let t = Instant::now();
        f();
        runs.push(t.elapsed());
    }
    runs.sort();
    runs[runs.len() / 2]
}

/// The JSON pointer of the largest array in `v` (by serialised size).
fn largest_array(v: &Value, at: String, best: &mut Option<(usize, String)>) {
    match v {
        Value::Array(items) => {
            let size = serde_json::to_vec(v).map_or(0, |b| b.len());
            if !items.is_empty() && best.as_ref().is_none_or(|(s, _)| size > *s) {
                *best = Some((size, at.clone()));
            }
            for (i, item) in items.iter().enumerate() {
                largest_array(item, format!("{at}/{i}"), best);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                largest_array(
                    item,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    best,
                );
            }
        }
        _ => {}
    }
}

/// Makes ids unique in a copy of an array element.
fn renumber(v: &mut Value, n: usize) {
    match v {
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                if k.eq_ignore_ascii_case("id") {
                    // Same JSON type, still digits: mappings read ids as
                    // integers or strings.
                    *item = match item {
                        Value::Number(_) => json!(1_000_000 + n),
                        _ => json!(format!("{}", 1_000_000 + n)),
                    };
                } else {
                    renumber(item, n);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| renumber(i, n)),
        _ => {}
    }
}

/// `input` grown to about `target` bytes; `None` when it has no array.
fn grow(input: &Value, target: usize) -> Option<Value> {
    let mut best = None;
    largest_array(input, String::new(), &mut best);
    let (_, pointer) = best?;
    let mut out = input.clone();
    let template = out.pointer(&pointer)?.as_array()?.clone();
    // Sizes measured once: serialising the growing body per batch would be
    // quadratic in the harness itself.
    let element = template
        .iter()
        .map(|e| serde_json::to_vec(e).map_or(1, |b| b.len() + 1))
        .sum::<usize>()
        / template.len();
    let have = serde_json::to_vec(&out).ok()?.len();
    let more = target.saturating_sub(have).div_ceil(element.max(1));
    let batch: Vec<Value> = (0..more)
        .map(|n| {
            let mut item = template[n % template.len()].clone();
            renumber(&mut item, n + 1);
            item
        })
        .collect();
    out.pointer_mut(&pointer)?.as_array_mut()?.extend(batch);
    Some(out)
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().ends_with(".input.json"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Group `i`'s parent: 10 roots, 90 groups under them, the rest under those.
fn parent(i: usize) -> Value {
    match i {
        0..10 => Value::Null,
        10..100 => json!(i % 10),
        _ => json!(10 + i % 90),
    }
}

fn users_shape(name: &str) -> Shape {
    if name.contains("otp-request") {
        Shape::Otp
    } else if name.contains("login") {
        Shape::LoginUser
    } else if name.contains("orders") {
        Shape::Orders
    } else {
        Shape::User
    }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut producers: Vec<(String, Box<dyn CardProducer>, PathBuf)> = Vec::new();
    let mut add = |dir: &str, fixtures: &str, users: bool| {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        for file in files {
            let name = file.file_stem().unwrap().to_string_lossy().into_owned();
            let producer: Box<dyn CardProducer> = if users {
                Box::new(UsersCardBuilder::load(&file, users_shape(&name)).unwrap())
            } else {
                Box::new(
                    CardBuilder::load(&AuthApiSettings {
                        mapping: file.clone(),
                        ..Default::default()
                    })
                    .unwrap(),
                )
            };
            producers.push((name.clone(), producer, root.join(fixtures).join(&name)));
        }
    };
    add("mappings", "tests/fixtures", false);
    add("mappings/users", "tests/fixtures/users", true);

    let mut table = String::from(
        "| mapping | fixture | body 1 KiB* | 16 KiB | 128 KiB | 1 MiB | µs per KiB at 16 KiB → 1 MiB |\n|---|---|---|---|---|---|---|\n",
    );
    // MAPPING_SCALE=groups runs the lookup rows alone (for profiling them).
    let groups_only = std::env::var("MAPPING_SCALE").is_ok_and(|v| v == "groups");
    for (name, producer, dir) in producers.iter().filter(|_| !groups_only) {
        // The fixture with the largest array is the one that can grow most.
        let Some((fixture, input)) = inputs(dir)
            .into_iter()
            .map(|p| {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                (p, v)
            })
            .filter(|(_, v)| producer.produce(v).is_ok())
            .max_by_key(|(_, v)| serde_json::to_vec(v).map_or(0, |b| b.len()))
        else {
            continue;
        };
        let mut cells = Vec::new();
        let mut per_kib = Vec::new();
        for &size in SIZES {
            let Some(body) = grow(&input, size) else {
                cells.push("–".to_owned());
                continue;
            };
            let bytes = serde_json::to_vec(&body).unwrap().len();
            let outcome = producer.produce(&body);
            if let Err(e) = &outcome {
                eprintln!("{name} at {size} bytes: {e}");
            }
            let ok = outcome.is_ok();
            let t = median(Duration::from_millis(300), || {
                let _ = std::hint::black_box(producer.produce(std::hint::black_box(&body)));
            });
            let us = t.as_secs_f64() * 1e6;
            if size >= 16 << 10 {
                per_kib.push(us / (bytes as f64 / 1024.0));
            }
            cells.push(format!(
                "{us:.0} µs ({} KiB){}",
                bytes / 1024,
                if ok { "" } else { " err" }
            ));
        }
        let spread = if per_kib.is_empty() {
            "–".to_owned()
        } else {
            per_kib
                .iter()
                .map(|v| format!("{v:.2}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        table.push_str(&format!(
            "| {name} | {} | {} | {spread} |\n",
            fixture
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace(".input.json", ""),
            cells.join(" | ")
        ));
    }
    table.push_str("\n*the first column is the fixture grown to at least 1 KiB (some fixtures are larger).\n\n");

    // The parent-group lookup over a flat list: every group a member, in a
    // hierarchy three levels deep whatever the count (the output, every
    // item with its parent chain, then grows as the input does).
    let head = std::fs::read_to_string(root.join("mappings/generic-bank.toml")).unwrap();
    let with_groups = format!(
        "{head}\n[client.group]\neach = \"$.groups[*]\"\n[client.group.item]\nid = \"@.id\"\nname = \"@.title\"\nparentGroup = {{ lookup = \"$.groups[*]\", key = \"@.id\", match = \"@.parentId\" }}\n"
    );
    let file = std::env::temp_dir().join(format!("authbridge-scale-{}.toml", std::process::id()));
    std::fs::write(&file, with_groups).unwrap();
    let cards = CardBuilder::load(&AuthApiSettings {
        mapping: file.clone(),
        ..Default::default()
    });
    let _ = std::fs::remove_file(&file);
    match cards {
        Ok(cards) => {
            let base: Value = serde_json::from_str(
                &std::fs::read_to_string(root.join("tests/fixtures/generic-bank/alice.input.json"))
                    .unwrap(),
            )
            .unwrap();
            table.push_str(
                "| parent-group lookup, flat list | groups | body | apply |\n|---|---|---|---|\n",
            );
            let mut times = Vec::new();
            for n in [600usize, 1_000, 3_000, 6_000] {
                let mut crm = base.clone();
                crm["groups"] = Value::Array(
                    (0..n)
                        .map(|i| json!({"id": i, "title": format!("group {i}"), "parentId": parent(i)}))
                        .collect(),
                );
                let bytes = serde_json::to_vec(&crm).unwrap().len();
                cards.produce(&crm).expect("the groups card maps");
                let t = median(Duration::from_millis(500), || {
                    let _ = std::hint::black_box(cards.produce(std::hint::black_box(&crm)));
                });
                times.push(t);
                table.push_str(&format!(
                    "| | {n} | {} KiB | {:.2} ms |\n",
                    bytes / 1024,
                    t.as_secs_f64() * 1e3
                ));
            }
            table.push_str(&format!(
                "\n6,000 / 600 groups: {:.1} × the time (10 × the groups).\n",
                times[3].as_secs_f64() / times[0].as_secs_f64()
            ));
        }
        Err(e) => table.push_str(&format!("(the groups mapping did not load: {e})\n")),
    }
    println!("{table}");
    let _ = std::fs::create_dir_all(root.join("target"));
    let _ = std::fs::write(root.join("target/mapping-scale.md"), &table);
}
