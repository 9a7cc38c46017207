//! The process's life as ops see it: reloads by signal and by file change,
//! start-up from any folder, logs off a terminal. The binary runs as a
//! separate process (see `process.rs`).

use std::time::Duration;

use serde_json::Value;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer};

use crate::helpers::{alice, eventually, lookup_at, repo_path, type_one};
use crate::process::Served;

const RELOADS: [&str; 3] = [
    "authbridge_reloads_total{result=\"ok\"}",
    "authbridge_reloads_total{result=\"failed\"}",
    "authbridge_reloads_total{result=\"unchanged\"}",
];

async fn reloads(served: &Served) -> [f64; 3] {
    let mut counts = [0.0; 3];
    for (count, sample) in counts.iter_mut().zip(RELOADS) {
        *count = served.metric(sample).await;
    }
    counts
}

/// A mock CRM that answers Alice's card for every token.
async fn alice_for_every_token() -> MockServer {
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/clients/by-token/.+$"))
        .respond_with(alice())
        .mount(&crm)
        .await;
    crm
}

fn config(crm: &str, extra: &str) -> String {
    config_with_server(crm, "", extra)
}

/// As [`config`], with more `[server]` keys.
fn config_with_server(crm: &str, server: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{{port}}\"\n{server}[auth_api]\nmapping = \"mapping.toml\"\n\
         [upstream]\nbase_url = \"{crm}\"\n[telemetry]\nlog_format = \"json\"\n{extra}"
    )
}

#[tokio::test]
async fn one_sighup_is_one_reload() {
    let served = Served::start(&config(
        "http://127.0.0.1:9",
        "[reload]\nwatch_files = true\ndebounce_ms = 200\n",
    ));
    served.signal("HUP");
    // Long enough for a reload loop to show (it ran every 200 ms).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let [ok, failed, unchanged] = reloads(&served).await;
    assert_eq!(
        (ok, failed, unchanged),
        (0.0, 0.0, 1.0),
        "one SIGHUP with the files unchanged: one reload, counted as unchanged"
    );
}

#[tokio::test]
async fn an_invalid_mapping_left_on_disk_is_logged_once() {
    let served = Served::start(&config(
        "http://127.0.0.1:9",
        "[reload]\nwatch_files = true\ndebounce_ms = 200\n",
    ));
    std::fs::write(
        served.path("mapping.toml"),
        "[client]\nid = \"$.client.id\"\nsurnme = \"$.x\"\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Asked again for the same broken version: refused, not logged again.
    served.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rejected: Vec<String> = served
        .logs()
        .into_iter()
        .filter(|l| l.contains("reload rejected") && l.contains("ERROR"))
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert!(
        rejected[0].contains("surnme"),
        "the line says what is wrong"
    );
    assert_eq!(reloads(&served).await, [0.0, 2.0, 0.0]);
    assert_eq!(
        crate::process::raw_status(served.port, "/healthz").unwrap(),
        200,
        "still serving"
    );
}

/// An editor writing in place in two chunks 1.2 s apart: the watcher waits
/// for the file to be quiet (2 s by default), so the half is never served.
#[tokio::test]
async fn a_file_written_in_two_steps_is_loaded_once_whole() {
    let crm = alice_for_every_token().await;
    let served = Served::start(&config(&crm.uri(), ""));
    let card = |token: String| {
        let base = served.base.clone();
        async move {
            reqwest::get(format!("{base}/rest/chat/client/id/{token}"))
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert!(
        !card("before".into()).await["companyList"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let original = std::fs::read_to_string(repo_path("mappings/generic-bank.toml")).unwrap();
    let changed = type_one(&original);
    let cut = changed.find("[companyList]").unwrap();
    std::fs::write(served.path("mapping.toml"), &changed[..cut]).unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let during = card("during".into()).await;
    assert_eq!(during["client"]["type"], "0", "the half is not loaded");
    assert!(!during["companyList"].as_array().unwrap().is_empty());
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(served.path("mapping.toml"))
            .unwrap();
        f.write_all(&changed.as_bytes()[cut..]).unwrap();
    }

    let mut after = Value::Null;
    for i in 0..80 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = card(format!("after-{i}")).await;
        if after["client"]["type"] == "1" {
            break;
        }
    }
    assert_eq!(after["client"]["type"], "1", "the whole new file serves");
    assert!(!after["companyList"].as_array().unwrap().is_empty());
    // The reload is counted just after the swap, so a card can show it
    // before the counter does: wait for the count, then check that no second
    // reload follows in the next second.
    eventually("the reload is counted", Duration::from_secs(5), || async {
        reloads(&served).await != [0.0; 3]
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Counters only grow: one reload now means one reload throughout.
    assert_eq!(
        reloads(&served).await,
        [1.0, 0.0, 0.0],
        "exactly one reload"
    );
}

/// A deploy by atomic rename is one change: one reload.
#[tokio::test]
async fn a_mapping_deployed_by_rename_is_one_reload() {
    let served = Served::start(&config(
        "http://127.0.0.1:9",
        "[reload]\nwatch_files = true\ndebounce_ms = 200\n",
    ));
    let original = std::fs::read_to_string(served.path("mapping.toml")).unwrap();
    crate::process::write_atomically(
        &served.path("mapping.toml"),
        &original.replace("[meta]", "# deployed\n[meta]"),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reloads(&served).await, [1.0, 0.0, 0.0]);
}

/// Each users-API section gives one key; every other key comes from the
/// built-in defaults, with no `config/default.toml` in the working folder.
#[tokio::test]
async fn starts_from_an_empty_folder_with_one_key_per_section() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_path("mappings/generic-bank.toml"),
        dir.path().join("mapping.toml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("key.txt"), "platform-key").unwrap();
    let mut extra = String::from("[users_api]\nenabled = true\napi_key_file = \"key.txt\"\n");
    for (section, file) in [
        ("get", "generic-bank-get"),
        ("update", "generic-bank-update"),
        ("otp_request", "generic-bank-otp-request"),
        ("otp_confirm", "generic-bank-otp-confirm"),
        ("login", "generic-bank-login"),
        ("orders", "generic-bank-orders"),
    ] {
        extra.push_str(&format!(
            "[users_api.{section}]\nmapping = \"{}\"\n",
            repo_path(&format!("mappings/users/{file}.toml")).display()
        ));
    }
    assert!(!dir.path().join("config").exists());
    let served = Served::start_in(dir, &config("http://127.0.0.1:9", &extra));
    // Mounted at its default path, behind its key.
    let answer = reqwest::Client::new()
        .post(format!("{}/users/get", served.base))
        .json(&serde_json::json!({"userIdentifier": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let body: Value = answer.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::test]
async fn pretty_logs_off_a_terminal_carry_no_colour_codes() {
    let served = Served::start(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[auth_api]\nmapping = \"mapping.toml\"\n\
         [upstream]\nbase_url = \"http://127.0.0.1:9\"\n[telemetry]\nlog_format = \"pretty\"\n",
    );
    let logs = served.logs().join("\n");
    assert!(logs.contains("authbridge listening"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "no ANSI escapes: {logs:?}");
}

/// SIGTERM behind a load balancer: `/readyz` says 503 at once, lookups are
/// still served for `server.shutdown_delay_ms` (5 s here), then the listener
/// closes and a request in flight across the close completes.
#[tokio::test]
async fn sigterm_keeps_serving_through_the_shutdown_delay() {
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/clients/by-token/slow$"))
        .respond_with(alice().set_delay(Duration::from_millis(2_500)))
        .mount(&crm)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/clients/by-token/.+$"))
        .respond_with(alice())
        .mount(&crm)
        .await;
    let mut served = Served::start(&config_with_server(
        &crm.uri(),
        "shutdown_delay_ms = 5000\n",
        "",
    ));
    let base = served.base.clone();
    // A new connection per request, as a balancer's fresh routing would make.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    assert_eq!(
        fresh
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    served.signal("TERM");
    let signalled = std::time::Instant::now();
    // In flight across the listener's close: its CRM answers after 2.5 s.
    let in_flight = tokio::spawn({
        let (fresh, base) = (fresh.clone(), base.clone());
        async move {
            // Sent 2 s before the listener closes (a margin no stall eats);
            // answered at the earliest 0.5 s after it.
            tokio::time::sleep(Duration::from_millis(3_000)).await;
            fresh
                .get(format!("{base}/rest/chat/client/id/slow"))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let (mut served_ok, mut refused, mut ready_503) = (0, 0, 0);
    let mut i = 0;
    // Well inside the 5 s delay, so a stalled machine cannot push a
    // request past the close.
    while signalled.elapsed() < Duration::from_millis(1500) {
        i += 1;
        match fresh
            .get(format!("{base}/rest/chat/client/id/during-{i}"))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => served_ok += 1,
            Ok(r) => panic!("lookup answered {} during the delay", r.status()),
            Err(_) => refused += 1,
        }
        if let Ok(r) = fresh.get(format!("{base}/readyz")).send().await
            && r.status() == 503
        {
            ready_503 += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "inside the shutdown delay: {served_ok} lookups served, {refused} refused, /readyz 503 {ready_503} times"
    );
    assert_eq!(refused, 0, "no refused connection inside the delay");
    assert!(served_ok > 5, "lookups kept being served: {served_ok}");
    assert_eq!(ready_503, served_ok, "/readyz said 503 throughout");
    assert_eq!(
        in_flight.await.unwrap().ok(),
        Some(200),
        "the request in flight when the listener closed completed"
    );
    let status = served
        .wait_exit(Duration::from_secs(10))
        .expect("exits after draining");
    assert!(status.success(), "{status:?}");
    assert!(
        crate::process::raw_status(served.port, "/healthz").is_err(),
        "the listener is closed"
    );
}

/// Twice the connection cap of sockets that send nothing or trickle a
/// header: they are cut at the header-read timeout, and normal lookups are
/// served after it.
#[tokio::test]
async fn silent_and_trickling_sockets_cannot_exhaust_connections() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let crm = crate::helpers::crm_answering(alice()).await;
    let served = Served::start(&config_with_server(
        &crm.uri(),
        "max_connections = 20\nheader_read_timeout_ms = 500\nworkers = 1\n",
        "",
    ));
    let addr = format!("127.0.0.1:{}", served.port);
    // The first 20 fill the cap: half never send a byte, half send the start
    // of the HTTP/2 preface and stall. The other 20 trickle a request head.
    let mut hostile = Vec::new();
    for i in 0..40 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if i >= 20 {
            let _ = s.write_all(b"GET /rest/chat/cl").await;
        } else if i % 2 == 1 {
            let _ = s.write_all(b"PRI * HT").await;
        }
        hostile.push(s);
    }
    let trickle = tokio::spawn(async move {
        let mut cut = 0;
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            for s in hostile.iter_mut().skip(20) {
                let _ = s.write_all(b"x").await;
            }
        }
        for mut s in hostile {
            let mut answer = Vec::new();
            // Closed by the server (after a 400 for a malformed head, or
            // without a word): end of stream or a reset.
            if tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut answer))
                .await
                .is_ok()
            {
                cut += 1;
            }
        }
        cut
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let client = reqwest::Client::new();
    let mut ok = 0;
    for i in 0..40 {
        let r = client
            .get(format!("{}/rest/chat/client/id/normal-{i}", served.base))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            ok += 1;
        }
    }
    assert_eq!(ok, 40, "every normal lookup served");
    assert_eq!(trickle.await.unwrap(), 40, "every hostile socket was cut");
}

/// The demo removes what it wrote when stopped with Ctrl-C.
#[tokio::test]
async fn the_demo_cleans_up_its_files_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = crate::process::command()
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(base) = line.trim().strip_prefix("authbridge: ") {
                let _ = tx.send(base.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("demo prints its address");
    assert_eq!(
        reqwest::get(format!("{base}/rest/chat/client/id/demo-alice"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().count() > 0,
        "the demo wrote its files there"
    );
    crate::process::signal(child.id(), "INT");
    let mut exited = None;
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(exited.expect("the demo stops on Ctrl-C").success());
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The allocator never asks for transparent huge pages: a 2 MiB page zeroed on
/// first touch stalled the worker that touched it while the cache grew (see
/// the README's load section). With them, this process held 12 MiB of huge
/// pages after start-up and 50 lookups on a host in THP mode "madvise".
#[tokio::test]
async fn the_process_holds_no_transparent_huge_pages() {
    let crm = alice_for_every_token().await;
    let served = Served::start(&config(&crm.uri(), ""));
    for i in 0..200 {
        let status = lookup_at(&served.base, &format!("thp-{i}")).await.status();
        assert_eq!(status, 200, "lookup {i}");
    }
    let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", served.pid())).unwrap();
    let huge = rollup
        .lines()
        .find_map(|line| line.strip_prefix("AnonHugePages:"))
        .expect("the kernel reports AnonHugePages");
    let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .unwrap_or_else(|_| "unknown".into());
    assert_eq!(
        huge.trim(),
        "0 kB",
        "anonymous huge pages in the process (host THP mode: {})",
        mode.trim()
    );
}
