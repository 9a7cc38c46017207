//! Every answer carries an `x-request-id`: generated (a per-process prefix and
//! a counter, no syscall) when the caller sent none, echoed when it did.

use std::collections::HashSet;

use wiremock::ResponseTemplate;

use crate::helpers::{alice, spawn_app};

#[tokio::test]
async fn every_answer_carries_a_unique_request_id_or_the_callers() {
    let app = spawn_app().await;
    app.crm_always("ids", alice()).await;
    app.crm_always("nobody", ResponseTemplate::new(404)).await;

    let mut ids = HashSet::new();
    let mut statuses = Vec::new();
    for path in [
        "/rest/chat/client/id/ids",    // miss
        "/rest/chat/client/id/ids",    // hit
        "/rest/chat/client/id/nobody", // not found
        "/rest/chat/client/id/a%0Ab",  // bad token
        "/rest/chat/client/id/",       // empty token
        "/healthz",
        "/readyz",
        "/metrics",
        "/no/such/route",
    ] {
        for _ in 0..20 {
            let response = app.get(path).await;
            statuses.push(response.status().as_u16());
            let id = response
                .headers()
                .get("x-request-id")
                .unwrap_or_else(|| panic!("{path}: no x-request-id"))
                .to_str()
                .unwrap()
                .to_owned();
            ids.insert(id);
        }
    }
    assert_eq!(ids.len(), 180, "every id is new");
    let prefixes: HashSet<&str> = ids.iter().map(|id| &id[..16]).collect();
    assert_eq!(prefixes.len(), 1, "one process, one prefix: {prefixes:?}");
    for status in [200, 404, 400] {
        assert!(statuses.contains(&status), "{statuses:?}");
    }

    let echoed = app
        .http
        .get(format!("{}/rest/chat/client/id/ids", app.address))
        .header("x-request-id", "chat-server-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "chat-server-trace-42");
}
