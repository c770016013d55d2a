//! A search across processes sharing a PostgreSQL journal, as across
//! machines: one `search --journal URL --workers 0` asks, three `worker`
//! processes evaluate, one of them is SIGKILLed mid-trial. Every trial is
//! evaluated to completion, the killed one once more by another worker, none
//! lost, and the front is the one a single process finds with the same seed
//! and random search. A worker whose data differ from the run's is refused.
//! When the search process itself is SIGKILLed, a worker takes the ask side
//! over and the run ends as one process would have ended it. A run that
//! measures on devices is measured by its workers' own devices (a farm of
//! loopback sshd stand-ins), each trial labelled with the one that did.

#[path = "common/postgres.rs"]
mod pg;
#[path = "common/sshd.rs"]
mod sshd;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_search::journal::Location;
use kiln_search::{Journal, Status, TrialRecord};

fn tiny_space() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/tiny-space.toml"
    )
    .to_string()
}

fn xtask(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    // A killed worker is noticed within seconds, not a minute (with room for
    // a heartbeat delayed by a busy machine).
    c.args(args).env("KILN_JOURNAL_GRACE_S", "8");
    c
}

fn search(run_dir: &Path, journal: Option<&str>, workers: &str) -> Command {
    let space = tiny_space();
    let mut c = xtask(&[
        "search",
        "--target",
        "jetson",
        "--space",
        &space,
        "--trials",
        "6",
        "--epochs",
        "1",
        "--train-limit",
        "300",
        "--strategy",
        "random",
        "--seed",
        "11",
        "--workers",
        workers,
        "--lut",
        "off",
        "-o",
    ]);
    c.arg(run_dir);
    // Each candidate trained from scratch, where the command line offers other evaluators.
    let help = xtask(&["search", "--help"]).output().unwrap();
    if String::from_utf8_lossy(&help.stdout).contains("--evaluator") {
        c.args(["--evaluator", "train"]);
    }
    if let Some(url) = journal {
        c.args(["--journal", url]);
    }
    c
}

fn worker(url: &str, out: &Path, train_limit: &str) -> Command {
    worker_of("dist", url, out, train_limit)
}

fn worker_of(run: &str, url: &str, out: &Path, train_limit: &str) -> Command {
    let mut c = xtask(&[
        "worker",
        "--journal",
        url,
        "--run",
        run,
        "--train-limit",
        train_limit,
        "-o",
    ]);
    c.arg(out);
    c
}

fn wait(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(1200);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not end");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn front_ids(run_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run_dir.join("front.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut ids: Vec<String> = v["front"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["genome_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The run's trials as the database holds them now (none before the run exists).
fn snapshot(location: &Location) -> Vec<TrialRecord> {
    Journal::open_at(location)
        .and_then(|j| j.trials())
        .unwrap_or_default()
}

/// Waits until `ready` holds, checking every `every`; panics saying `what` never happened
/// when `deadline` passes first, or when `asker` (the search process) ends first.
fn wait_until(
    deadline: Instant,
    every: Duration,
    mut asker: Option<&mut Child>,
    what: &str,
    mut ready: impl FnMut() -> bool,
) {
    while !ready() {
        assert!(Instant::now() < deadline, "{what}");
        if let Some(a) = asker.as_deref_mut() {
            assert!(a.try_wait().unwrap().is_none(), "the search ended early");
        }
        std::thread::sleep(every);
    }
}

/// Starts the search of run `run` (folder `dir/run`) asking through the database at
/// `url` with no workers of its own (its output piped with `keep_output`, else dropped),
/// and waits until it asked a trial; returns it, the run's journal and the deadline the
/// test's waits share (5 minutes from the start).
fn ask(url: &str, dir: &Path, run: &str, keep_output: bool) -> (Child, Location, Instant) {
    let out = || {
        if keep_output {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    let mut asker = search(&dir.join(run), Some(url), "0")
        .stdout(out())
        .stderr(out())
        .spawn()
        .unwrap();
    let location = Location::parse(url, run).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let (every, asked) = (Duration::from_millis(200), "the search asked nothing");
    wait_until(deadline, every, Some(&mut asker), asked, || {
        !snapshot(&location).is_empty()
    });
    (asker, location, deadline)
}

/// The trials a worker evaluated (not the ones rejected before training).
fn evaluated(trials: &[TrialRecord]) -> Vec<&TrialRecord> {
    trials
        .iter()
        .filter(|t| !kiln_search::driver::is_analytic_rejection(t))
        .collect()
}

/// Runs the same search in one process (same seed, random search) in `dir/alone` and
/// checks it asked the genomes `trials` holds, in that order; returns its folder.
fn same_trials_as_one_process(dir: &Path, trials: &[TrialRecord]) -> std::path::PathBuf {
    let alone = dir.join("alone");
    let o = search(&alone, None, "2").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let single = Journal::open(&alone).unwrap().trials().unwrap();
    let ids = |ts: &[TrialRecord]| ts.iter().map(|t| t.genome_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(trials), ids(&single));
    alone
}

#[test]
fn three_workers_one_killed_evaluate_every_trial_once_to_completion() {
    let Some(server) = pg::server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("dist");
    let (mut asker, location, deadline) = ask(&server.url, dir.path(), "dist", true);
    let snapshot = || snapshot(&location);
    let mut workers: Vec<Child> = (0..3)
        .map(|i| {
            worker(&server.url, &dir.path().join(format!("w{i}")), "300")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // Every worker busy: the first one certainly holds a running trial.
    let running_when_killed = loop {
        let running: Vec<u64> = snapshot()
            .iter()
            .filter(|t| t.status == Status::Running)
            .map(|t| t.number)
            .collect();
        if running.len() == 3 {
            break running;
        }
        assert!(Instant::now() < deadline, "three trials never ran at once");
        std::thread::sleep(Duration::from_millis(100));
    };
    workers[0].kill().unwrap(); // SIGKILL
    workers[0].wait().unwrap();
    let status = wait(&mut asker, "the search");
    let out = asker.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (i, w) in workers.iter_mut().enumerate().skip(1) {
        assert!(wait(w, "a worker").success(), "worker {i} failed");
    }

    let trials = snapshot();
    let evaluated = evaluated(&trials);
    assert_eq!(evaluated.len(), 6, "{trials:#?}");
    assert!(
        evaluated
            .iter()
            .all(|t| matches!(t.status, Status::Done | Status::Infeasible)),
        "every trial evaluated to completion: {trials:#?}"
    );
    let again: Vec<&&TrialRecord> = evaluated.iter().filter(|t| t.attempts == 2).collect();
    assert_eq!(
        again.len(),
        1,
        "only the killed worker's trial ran twice: {trials:#?}"
    );
    assert!(running_when_killed.contains(&again[0].number));
    assert!(evaluated.iter().all(|t| t.attempts <= 2));

    // One process, the same seed and random search: the same trials and front.
    let alone = same_trials_as_one_process(dir.path(), &trials);
    assert_eq!(front_ids(&run_dir), front_ids(&alone));

    // The workers evaluated every trial on their own disks; the front's model files
    // reached the search's folder through the database, and a report made elsewhere
    // from the database alone has the same front and the same files.
    let elsewhere = dir.path().join("elsewhere").join("report");
    let o = xtask(&[
        "report",
        elsewhere.to_str().unwrap(),
        "--journal",
        &server.url,
        "--run",
        "dist",
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(front_ids(&elsewhere), front_ids(&run_dir));
    for id in front_ids(&run_dir) {
        let model = |root: &Path| {
            let folder = std::fs::read_dir(root.join("front"))
                .unwrap()
                .flatten()
                .find(|e| e.file_name().to_string_lossy().ends_with(&id))
                .unwrap_or_else(|| panic!("no front folder for {id} in {}", root.display()));
            std::fs::read(folder.path().join("model.onnx"))
                .unwrap_or_else(|e| panic!("{}: model.onnx: {e}", folder.path().display()))
        };
        let (here, there) = (model(&run_dir), model(&elsewhere));
        assert!(!here.is_empty());
        assert_eq!(here, there, "{id}");
    }

    // Another data set than the run's: refused, naming both.
    let o = worker(&server.url, &dir.path().join("w9"), "200")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{said}");
    assert!(
        said.contains("cannot join") && said.contains("data: the run's is"),
        "{said}"
    );
    assert!(!said.contains("postgres://postgres:"), "{said}");
}

#[test]
fn a_worker_asks_on_when_the_search_process_dies() {
    let Some(server) = pg::server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (mut asker, location, deadline) = ask(&server.url, dir.path(), "orphan", false);
    let snapshot = || snapshot(&location);
    let workers: Vec<Child> = (0..2)
        .map(|i| {
            worker_of(
                "orphan",
                &server.url,
                &dir.path().join(format!("w{i}")),
                "300",
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    // one trial recorded, the rest of the budget not yet asked: the search dies
    wait_until(
        deadline,
        Duration::from_millis(100),
        None,
        "no trial finished",
        || snapshot().iter().any(|t| t.status.is_finished()),
    );
    asker.kill().unwrap(); // SIGKILL: its lease stays behind, stale
    asker.wait().unwrap();
    let mut said = String::new();
    for (i, mut w) in workers.into_iter().enumerate() {
        let status = wait(&mut w, "a worker");
        let out = w.wait_with_output().unwrap();
        said += &String::from_utf8_lossy(&out.stderr);
        assert!(status.success(), "worker {i}: {said}");
    }
    assert_eq!(
        said.matches("asks from now on").count(),
        1,
        "exactly one worker took the ask side over: {said}"
    );
    assert!(Journal::open_at(&location).unwrap().is_finished().unwrap());
    let trials = snapshot();
    assert_eq!(evaluated(&trials).len(), 6, "the whole budget: {trials:#?}");
    assert!(trials.iter().all(|t| t.status.is_finished()), "{trials:#?}");
    // random search replays its stream from the journal: the trials one process asks
    let alone = same_trials_as_one_process(dir.path(), &trials);
    // the worker that asked wrote the report, with the one process's front
    let report = (0..2)
        .map(|i| dir.path().join(format!("w{i}")).join("orphan"))
        .find(|d| d.join("front.json").is_file())
        .unwrap_or_else(|| panic!("no worker wrote a report: {said}"));
    assert_eq!(front_ids(&report), front_ids(&alone));
}

#[test]
fn a_farm_of_devices_measures_a_shared_run_each_trial_on_its_workers_device() {
    let Some(server) = pg::server() else { return };
    let dir = tempfile::tempdir().unwrap();
    // the search's device and one per worker, each with a profile naming its folder
    let devices: Vec<sshd::Sshd> = (0..3).map(|_| sshd::Sshd::start()).collect();
    let profiles: Vec<tempfile::TempDir> = devices
        .iter()
        .map(|d| sshd::profile("host", &d.device_dir(), None))
        .collect();
    let run_dir = dir.path().join("farm");
    let mut search = xtask(&["search", "--target", "host", "--targets-dir"]);
    search.arg(profiles[0].path()).args([
        "--evaluator",
        "train",
        "--space",
        &tiny_space(),
        "--trials",
        "4",
        "--epochs",
        "1",
        "--train-limit",
        "300",
        "--strategy",
        "random",
        "--seed",
        "11",
        "--workers",
        "0",
        "--device-warmup",
        "1",
        "--device-runs",
        "5",
        "--journal",
        &server.url,
        "-o",
    ]);
    search.arg(&run_dir).args(devices[0].ssh_args("--device"));
    let mut asker = search
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let location = Location::parse(&server.url, "farm").unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let (every, created) = (
        Duration::from_millis(200),
        "the search never created its run",
    );
    wait_until(deadline, every, Some(&mut asker), created, || {
        Journal::open_at(&location).is_ok()
    });
    // a worker without a device cannot serve this run
    let o = worker_of("farm", &server.url, &dir.path().join("bare"), "300")
        .args(["--targets-dir"])
        .arg(profiles[1].path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{said}");
    assert!(
        said.contains("measures every trial on a `host` device"),
        "{said}"
    );
    let workers: Vec<Child> = (1..3)
        .map(|i| {
            worker_of(
                "farm",
                &server.url,
                &dir.path().join(format!("w{i}")),
                "300",
            )
            .args(["--targets-dir"])
            .arg(profiles[i].path())
            .args(devices[i].ssh_args("--device"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    let status = wait(&mut asker, "the search");
    let out = asker.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (i, mut w) in workers.into_iter().enumerate() {
        assert!(wait(&mut w, "a worker").success(), "worker {i} failed");
    }
    let trials = Journal::open_at(&location).unwrap().trials().unwrap();
    let evaluated = evaluated(&trials);
    assert_eq!(evaluated.len(), 4, "{trials:#?}");
    let ports: Vec<String> = devices.iter().map(|d| format!(":{}", d.port)).collect();
    for t in &evaluated {
        assert!(
            matches!(t.status, Status::Done | Status::Infeasible),
            "{trials:#?}"
        );
        let e = t.evaluation.as_ref().unwrap();
        assert_eq!(e.metrics["latency_ms"].source.name(), "device");
        let on = &e.labels[kiln_search::evaluator::MEASURED_ON];
        assert!(
            on.ends_with(&ports[1]) || on.ends_with(&ports[2]),
            "trial {} measured on {on}, not on a worker's device ({ports:?})",
            t.number
        );
    }
    // the report says which device measured each trial
    let csv = std::fs::read_to_string(run_dir.join("trials.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "measured_on").unwrap();
    let named = lines
        .filter(|l| {
            let on = l.split(',').nth(col).unwrap_or("");
            on.ends_with(&ports[1]) || on.ends_with(&ports[2])
        })
        .count();
    assert_eq!(named, 4, "{csv}");
}
