//! The request workers as ops see them from outside the process: bound to
//! CPUs as `server.pin_workers` says (read from `/proc`, the binary running
//! as a separate process, see `process.rs`).

use std::time::{Duration, Instant};

use crate::process::Served;

/// The CPUs in a `Cpus_allowed_list` value (`0-1`, `0,2-3`).
fn cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (from, to) = part.split_once('-').unwrap_or((part, part));
        cpus.extend(from.parse::<usize>().unwrap()..=to.parse::<usize>().unwrap());
    }
    cpus
}

/// The CPUs a thread (`/proc/.../task/TID`) or process may run on.
fn allowed(proc_dir: &str) -> Vec<usize> {
    let status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap();
    cpu_list(line)
}

/// Each request worker's allowed CPUs, in worker order (threads named
/// `authbridge-worker-N`, which the kernel cuts to 15 bytes: the TIDs give
/// the order, as the workers are started one after another).
fn workers_cpus(pid: u32) -> Vec<Vec<usize>> {
    let mut workers: Vec<(u32, Vec<usize>)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            std::fs::read_to_string(p.join("comm"))
                .is_ok_and(|c| c.trim_end().starts_with("authbridge-work"))
        })
        .map(|p| {
            let tid = p.file_name().unwrap().to_string_lossy().parse().unwrap();
            (tid, allowed(&p.display().to_string()))
        })
        .collect();
    workers.sort();
    workers.into_iter().map(|(_, cpus)| cpus).collect()
}

/// The workers' CPUs once they are `want`, or as they are after 10 s (a
/// worker binds itself as it starts, so `/healthz` may answer first).
fn settled(served: &Served, want: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let started = Instant::now();
    loop {
        let seen = workers_cpus(served.pid());
        if seen == want || started.elapsed() > Duration::from_secs(10) {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(pin: &str) -> Served {
    Served::start(&format!(
        "[server]\nlisten = \"127.0.0.1:{{port}}\"\nworkers = 2\npin_workers = \"{pin}\"\n\
         [auth_api]\nmapping = \"mapping.toml\"\n[upstream]\nbase_url = \"http://127.0.0.1:9\"\n"
    ))
}

#[test]
fn workers_are_bound_to_a_cpu_each_when_asked_and_left_alone_when_not() {
    let ours = allowed("/proc/self");
    assert!(!ours.is_empty());

    // "on": worker n on the n-th CPU the process may use, round robin.
    let served = start("on");
    let want = vec![vec![ours[0]], vec![ours[1 % ours.len()]]];
    assert_eq!(settled(&served, &want), want, "pin_workers = \"on\"");

    // "auto": bound only when there is exactly one CPU per worker (2 here).
    let served = start("auto");
    let want_auto = if ours.len() == 2 {
        want.clone()
    } else {
        vec![ours.clone(), ours.clone()]
    };
    assert_eq!(
        settled(&served, &want_auto),
        want_auto,
        "pin_workers = \"auto\" on {} CPUs",
        ours.len()
    );

    // "off": both keep every CPU the process may use.
    let served = start("off");
    assert_eq!(
        workers_cpus(served.pid()),
        vec![ours.clone(), ours],
        "pin_workers = \"off\""
    );
}

#[test]
fn an_unknown_pin_workers_value_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "[server]\npin_workers = \"sometimes\"\n").unwrap();
    let out = crate::process::command()
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pin_workers") && err.contains("sometimes"),
        "{err}"
    );
}
