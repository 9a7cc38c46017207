//! The operations files in `deploy/`: the alert rules pass promtool's check
//! and their own unit tests, every "What to alert on" item of the README has
//! its alert, and the Kubernetes manifests agree with the server's routes,
//! ports and configuration. (That every metric they name is exported is
//! `deploy_metrics.rs`.)

use std::collections::BTreeMap;
use std::process::Command;

use serde_norway::Value as Yaml;

use crate::helpers::{http, readme_section, repo_path, spawn_app};

/// Runs promtool from `deploy/prometheus`; a missing promtool fails the
/// test, naming the package that brings it.
fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo_path("deploy/prometheus"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install the `prometheus` package \
                 (apt-get install prometheus; tools/test does)"
            )
        });
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts_test.yml"]);
}

/// A YAML file of the repository, parsed (every document of it).
pub fn yaml_documents(rel: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(repo_path(rel)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: {e}")))
        .collect()
}

/// The alert rules: name → expression.
pub fn alert_rules() -> BTreeMap<String, String> {
    let file = &yaml_documents("deploy/prometheus/alerts.yml")[0];
    let mut out = BTreeMap::new();
    for group in file["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().expect("only alerting rules");
            let expr = rule["expr"].as_str().unwrap().to_owned();
            assert!(out.insert(name.to_owned(), expr).is_none(), "{name} twice");
            let severity = rule["labels"]["severity"].as_str();
            assert!(
                matches!(severity, Some("page" | "ticket")),
                "{name}: severity {severity:?}"
            );
            for key in ["summary", "description"] {
                assert!(
                    rule["annotations"][key].as_str().is_some(),
                    "{name} has no {key}"
                );
            }
        }
    }
    out
}

/// The bullet items of the README's "What to alert on" section, each as
/// one line of text.
fn readme_alert_items() -> Vec<String> {
    let section = readme_section("### What to alert on", "\n#");
    let mut items: Vec<String> = Vec::new();
    for line in section.lines() {
        if let Some(item) = line.strip_prefix("- ") {
            items.push(item.to_owned());
        } else if line.starts_with("  ")
            && let Some(last) = items.last_mut()
        {
            last.push(' ');
            last.push_str(line.trim());
        }
    }
    assert!(items.len() >= 7, "the section was read: {items:?}");
    items
}

/// Every `authbridge_*` name in `text`.
fn metric_names(text: &str) -> Vec<&str> {
    text.match_indices("authbridge_")
        .map(|(i, _)| {
            let rest = &text[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[test]
fn every_readme_alert_item_links_an_alert_on_its_metrics() {
    let rules = alert_rules();
    let mut linked = Vec::new();
    for item in readme_alert_items() {
        let link = "](deploy/prometheus/alerts.yml)";
        let name = item
            .split(link)
            .next()
            .filter(|_| item.contains(link))
            .and_then(|before| before.rsplit('[').next())
            .map(|n| n.trim_matches('`'))
            .unwrap_or_else(|| panic!("no alert linked: {item}"));
        let expr = rules
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in alerts.yml: {item}"));
        // The metrics the item names are the ones its alert watches.
        let named = metric_names(&item);
        assert!(!named.is_empty(), "the item names no metric: {item}");
        for metric in named {
            assert!(expr.contains(metric), "{name} does not use {metric}");
        }
        linked.push(name.to_owned());
    }
    let unlisted: Vec<&String> = rules.keys().filter(|r| !linked.contains(r)).collect();
    assert!(
        unlisted.is_empty(),
        "alerts the README does not list: {unlisted:?}"
    );
}

/// The items of a YAML sequence of strings.
fn strings(sequence: &Yaml) -> Vec<&str> {
    let items = sequence.as_sequence().expect("a sequence");
    items.iter().map(|s| s.as_str().unwrap()).collect()
}

/// The Kubernetes object of `kind` among `deploy/k8s`'s files.
fn k8s(kind: &str) -> Yaml {
    let kustomization = &yaml_documents("deploy/k8s/kustomization.yaml")[0];
    let mut found = Vec::new();
    for file in strings(&kustomization["resources"]) {
        for doc in yaml_documents(&format!("deploy/k8s/{file}")) {
            assert!(doc["metadata"]["name"].is_string(), "{file}: unnamed");
            if doc["kind"].as_str() == Some(kind) {
                found.push(doc);
            }
        }
    }
    assert_eq!(found.len(), 1, "one {kind} in deploy/k8s");
    found.pop().unwrap()
}

#[test]
fn every_k8s_file_is_listed_in_the_kustomization() {
    let kustomization = &yaml_documents("deploy/k8s/kustomization.yaml")[0];
    let listed = strings(&kustomization["resources"]);
    for entry in std::fs::read_dir(repo_path("deploy/k8s")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            assert!(listed.contains(&name.as_str()), "{name} is not listed");
        }
    }
}

#[tokio::test]
async fn k8s_probes_and_ports_are_the_servers_real_routes_and_config() {
    let deployment = k8s("Deployment");
    let pod = &deployment["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    let container = &pod["spec"]["containers"][0];

    // The config the container is started with is the ConfigMap's, mounted
    // where the args say, and it is a valid configuration.
    let args = strings(&container["args"]);
    assert_eq!(args[..2], ["serve", "--config"]);
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    let mount_of = |volume: &str| {
        mounts
            .iter()
            .find(|m| m["name"].as_str() == Some(volume))
            .and_then(|m| m["mountPath"].as_str())
            .unwrap_or_else(|| panic!("no mount of {volume}"))
            .to_owned()
    };
    let volumes = pod["spec"]["volumes"].as_sequence().unwrap();
    let volume = |key: &str, name: &str| {
        volumes
            .iter()
            .find(|v| {
                v[key]["name"].as_str() == Some(name) || v[key]["secretName"].as_str() == Some(name)
            })
            .and_then(|v| v["name"].as_str())
            .unwrap_or_else(|| panic!("no volume of {key} {name}"))
            .to_owned()
    };
    let config_map = k8s("ConfigMap");
    let config_dir = mount_of(&volume(
        "configMap",
        config_map["metadata"]["name"].as_str().unwrap(),
    ));
    let secrets_dir = mount_of(&volume("secret", "authbridge"));
    let config_file = args[2]
        .strip_prefix(&format!("{config_dir}/"))
        .expect("--config is a file of the ConfigMap's mount");
    let data = &config_map["data"];
    let config_text = data[config_file]
        .as_str()
        .expect("the config is in the ConfigMap");
    let settings = authbridge::Settings::from_toml(config_text)
        .unwrap_or_else(|e| panic!("the ConfigMap's {config_file} is not a valid config: {e}"));
    // Its mapping is the ConfigMap's other file, and it compiles.
    let mapping = settings
        .auth_api
        .mapping
        .strip_prefix(&config_dir)
        .expect("the mapping is in the ConfigMap's mount")
        .to_string_lossy()
        .into_owned();
    let mapping_text = data[mapping.as_str()]
        .as_str()
        .expect("the mapping is in the ConfigMap");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(&mapping);
    std::fs::write(&file, mapping_text).unwrap();
    let report = authbridge::tools::check_mappings(&[file], &settings.auth_api, &settings.upstream);
    assert!(report.ok, "{:?}", report.lines);
    // Secrets are read from the Secret's mount, never written in the config.
    for line in config_text.lines().filter(|l| l.contains("_file")) {
        assert!(line.contains(&format!("\"{secrets_dir}/")), "{line}");
    }

    // The container port is the configured listen port; probes, the
    // Service and the scrape annotations name it.
    let port = &container["ports"][0];
    let listen_port = settings.server.listen.port();
    assert_eq!(port["containerPort"].as_u64(), Some(u64::from(listen_port)));
    let port_name = port["name"].as_str().unwrap();
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(
        annotations["prometheus.io/port"].as_str(),
        Some(listen_port.to_string().as_str())
    );
    let service = k8s("Service");
    assert_eq!(&service["spec"]["selector"], labels);
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_str(),
        Some(port_name)
    );

    // The probes and the scrape path are routes the server answers 200.
    let app = spawn_app().await;
    let mut paths = Vec::new();
    for (probe, expected) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["port"].as_str(), Some(port_name), "{probe}");
        let path = get["path"].as_str().unwrap();
        assert_eq!(path, expected, "{probe}");
        paths.push(path.to_owned());
    }
    paths.push(
        annotations["prometheus.io/path"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    for path in paths {
        crate::helpers::eventually(
            path.as_str(),
            std::time::Duration::from_secs(10),
            || async {
                http()
                    .get(format!("{}{path}", app.address))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            },
        )
        .await;
    }

    // Shutdown fits in the grace period: the readiness delay, then the drain.
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    let needed = settings.server.shutdown_delay + settings.server.drain_timeout;
    assert!(grace > needed.as_secs(), "{grace} s < {needed:?}");

    // The disruption budget and the autoscaler act on these pods.
    assert_eq!(
        &k8s("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        labels
    );
    let hpa = k8s("HorizontalPodAutoscaler");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    assert!(hpa["spec"]["minReplicas"].as_u64() >= deployment["spec"]["replicas"].as_u64());
}
