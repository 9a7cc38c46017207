//! The playground in a real browser: `authbridge playground` with a preloaded
//! pair, headless Chromium driven through WebDriver (chromedriver on a free
//! loopback port). A missing chromedriver fails the test: `tools/test`
//! installs it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::helpers::file;
use crate::process::{command, free_port};

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The good mapping; every strict prefix of it lacks a required field, so
/// the page shows "card ok" only once all of it is typed.
const GOOD: &str = "[client]
id = \"$.id\"
surname = \"$.last\"
name = \"$.full\"
firstName = \"$.first\"
patronymic = { const = \"\" }
enabled = true
type = { const = \"0\" }
";

/// The same with a typo on line 3.
const TYPO: &str = "[client]
id = \"$.id\"
surnme = \"$.last\"
name = \"$.full\"
";

const SAMPLE: &str = r#"{"id": 42, "last": "Petrova", "full": "Petrova Olga", "first": "Olga"}"#;

/// `authbridge playground` on a free loopback port; its printed URL.
fn start_playground(mapping: &std::path::Path, input: &std::path::Path) -> (Killed, String) {
    let mut child = command()
        .args(["playground", "--listen", "127.0.0.1:0", "--mapping"])
        .arg(mapping)
        .arg("--input")
        .arg(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("playground: ")
        .unwrap_or_else(|| panic!("the playground prints its URL, got {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (child, url)
}

/// chromedriver on a free loopback port, ready for sessions.
async fn start_chromedriver() -> (Killed, String) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start chromedriver ({e}): the playground's browser test needs the \
                 Debian packages chromium and chromium-driver (tools/test installs them)"
            )
        });
    let child = Killed(child);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/status")).await
            && r.status().is_success()
        {
            return (child, base);
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start on {base}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn headless(webdriver: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=1400,900"]}),
    );
    // fantoccini's TLS stack compiles in a second crypto provider beside
    // ring; with two, rustls wants the process default named (WebDriver
    // here is plain HTTP on loopback: TLS is never used).
    let _ = rustls::crypto::ring::default_provider().install_default();
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(webdriver)
        .await
        .expect("a headless Chromium session")
}

async fn text(browser: &Client, css: &str) -> String {
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
        .text()
        .await
        .unwrap()
}

/// Replaces the mapping's text by typing it.
async fn type_mapping(browser: &Client, text: &str) {
    let area = browser.find(Locator::Css("#mapping")).await.unwrap();
    area.clear().await.unwrap();
    area.send_keys(text).await.unwrap();
}

#[tokio::test]
async fn the_page_marks_a_mistake_at_its_line_and_shows_the_fixed_card() {
    // Arrange: a preloaded pair, the playground, a browser.
    let mapping = file(GOOD);
    let input = file(SAMPLE);
    let (_playground, url) = start_playground(mapping.path(), input.path());
    let (_driver, webdriver) = start_chromedriver().await;
    let browser = headless(&webdriver).await;
    browser.goto(&url).await.unwrap();

    // The preloaded pair makes a card, and each field says where it came from.
    assert_eq!(text(&browser, "#status.ok").await, "card ok");
    let card: Value = serde_json::from_str(&text(&browser, "#card").await).unwrap();
    assert_eq!(card["client"]["surname"], "Petrova");
    assert_eq!(
        text(
            &browser,
            "#sources tr[data-field='client.surname'] td.source"
        )
        .await,
        "$.last"
    );

    // Act: a typo on line 3.
    type_mapping(&browser, TYPO).await;
    // Assert: marked at line 3, in the gutter and in the list.
    let error = text(&browser, "#errors li.load-error[data-line='3']").await;
    assert!(
        error.starts_with("3:1: client.surnme: unknown field `surnme`")
            && error.contains("did you mean `surname`?"),
        "{error}"
    );
    let marked = browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#mapping-gutter div.err[data-line='3']"))
        .await
        .unwrap();
    assert!(
        marked
            .attr("title")
            .await
            .unwrap()
            .unwrap()
            .contains("surnme")
    );
    assert_eq!(text(&browser, "#card").await, "");

    // Act: fixed, and the sample's surname changed.
    type_mapping(&browser, GOOD).await;
    let sample = browser.find(Locator::Css("#input")).await.unwrap();
    sample.clear().await.unwrap();
    sample
        .send_keys(&SAMPLE.replace("Petrova\"", "Ivanova\""))
        .await
        .unwrap();
    // Assert: the card has the new value, read from the page.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let shown = text(&browser, "#card").await;
        if let Ok(card) = serde_json::from_str::<Value>(&shown)
            && card["client"]["surname"] == "Ivanova"
        {
            assert_eq!(card["client"]["id"], "42");
            assert_eq!(card["client"]["enabled"], true);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the card did not update: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        browser
            .find_all(Locator::Css("#errors li"))
            .await
            .unwrap()
            .len(),
        0
    );
    browser.close().await.unwrap();
}

#[test]
fn the_playground_listens_on_loopback_only() {
    let out = command()
        .args(["playground", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loopback only"), "{stderr}");
}
