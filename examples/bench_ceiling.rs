//! "The ceiling" for `tools/load-bench`: the least an axum server can do to
//! answer the Auth API call — the exact bytes of the card authbridge builds for
//! the generic-bank fixture, from memory, for any token. No middleware, a
//! default multi-thread runtime, the same response headers as authbridge's
//! card (content type, `no-store`), so a hit can be compared with it.
//!
//! Run: `cargo run --release --example bench_ceiling -- PORT` (or env `PORT`).

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .unwrap_or_else(|| "0".into())
        .parse()?;
    let pretty = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/generic-bank/alice.expected.json"
    ))?;
    // A broken fixture fails here, not as a wrong card in the bench.
    serde_json::from_str::<serde_json::Value>(&pretty)?;
    let card: &'static str = compact(&pretty).leak();
    let app = Router::new().route(
        "/rest/chat/client/id/{*token}",
        get(move || async move {
            (
                [
                    ("content-type", "application/json"),
                    ("cache-control", "no-store"),
                ],
                card,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "bench_ceiling listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}

/// The JSON text without the whitespace between tokens: the fixture's own key
/// order (authbridge's schema order) whatever serde_json's map type is.
fn compact(json: &str) -> String {
    let (mut out, mut in_string, mut escaped) = (String::with_capacity(json.len()), false, false);
    for c in json.chars() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c.is_ascii_whitespace() {
            continue;
        } else {
            in_string = c == '"';
        }
        out.push(c);
    }
    out
}
