//! A search killed with SIGKILL mid-run, or stopped with Ctrl-C, and resumed:
//! no trial is lost and none is evaluated twice.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kiln_search::{Journal, Status};

/// A small space whose networks train and build in seconds (the default
/// space's random samples are mostly too slow for jetson's 30 FPS; a real
/// search finds the fast corner with more trials than a test can afford).
fn tiny_space() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/tiny-space.toml"
    )
    .to_string()
}

fn search(run: &str, space: &str, resume: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args([
        "search",
        "--evaluator",
        "train",
        "--target",
        "jetson",
        "--trials",
        "5",
        "--epochs",
        "1",
        "--train-limit",
        "300",
        "--population",
        "3",
        "--seed",
        "11",
        "--workers",
        "2",
        "--space",
        space,
        "-o",
        run,
    ]);
    if resume {
        c.arg("--resume");
    }
    c
}

fn snapshot(run: &Path) -> Vec<kiln_search::TrialRecord> {
    Journal::open(run)
        .and_then(|j| j.trials())
        .unwrap_or_default()
}

/// Returns once one trial of the search in `run` finished while another is
/// running; panics if the search ends first or takes too long.
fn wait_until_mid_run(run: &Path, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let trials = snapshot(run);
        let finished = trials.iter().filter(|t| t.status.is_finished()).count();
        if finished >= 1 && trials.iter().any(|t| t.status == Status::Running) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("search ended ({status}) before it could be stopped");
        }
        assert!(Instant::now() < deadline, "no trial finished in time");
    }
}

#[test]
fn sigkill_then_resume_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let space = tiny_space();
    let mut child = search(run_s, &space, false)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once one trial finished while another is running.
    wait_until_mid_run(&run, &mut child);
    // The same command with --resume while the search runs is refused,
    // naming the holder, and re-queues nothing (issue 18).
    let second = search(run_s, &space, true).output().unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{said}");
    assert!(said.contains("in use by a running search"), "{said}");
    assert!(
        said.contains(&format!("process {} on", child.id())),
        "{said}"
    );
    let mid = snapshot(&run);
    assert!(mid.iter().all(|t| t.attempts <= 1), "{mid:#?}");
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let before = snapshot(&run);
    let interrupted: Vec<u64> = before
        .iter()
        .filter(|t| t.status == Status::Running)
        .map(|t| t.number)
        .collect();
    assert!(!interrupted.is_empty());

    let o = search(run_s, &space, true).output().unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let after = snapshot(&run);
    assert!(after.iter().all(|t| t.status.is_finished()), "{after:#?}");
    let evaluated: Vec<_> = after
        .iter()
        .filter(|t| !kiln_search::driver::is_analytic_rejection(t))
        .collect();
    assert_eq!(evaluated.len(), 5, "budget of 5 evaluated trials");
    for t in &before {
        let now = after
            .iter()
            .find(|a| a.number == t.number)
            .expect("trial lost");
        if t.status.is_finished() {
            // Finished before the kill: kept as it was, not evaluated again.
            assert_eq!(now, t);
        } else if t.status == Status::Running {
            // Interrupted: evaluated exactly once more.
            assert_eq!(now.attempts, 2, "trial {}", t.number);
        }
    }
    for t in after
        .iter()
        .filter(|t| !before.iter().any(|b| b.number == t.number))
    {
        assert!(
            t.attempts <= 1,
            "new trial {} started {} times",
            t.number,
            t.attempts
        );
    }
    let mut ids: Vec<&str> = after.iter().map(|t| t.genome_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), after.len(), "a genome was journalled twice");
}

#[test]
fn ctrl_c_finishes_or_requeues_the_running_trials_and_resume_goes_on() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let space = tiny_space();
    // Its own process group, signalled as a whole, as a terminal's Ctrl-C
    // does: the builds and programs the search runs get SIGINT too.
    let mut child = search(run_s, &space, false)
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_mid_run(&run, &mut child);
    let sent = Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("Ctrl-C: no new trials"), "{stderr}");
    assert!(stderr.contains("with --resume continues"), "{stderr}");
    assert!(run.join("report.html").is_file());
    let before = snapshot(&run);
    // Nothing is left running, and the interrupt failed no trial: a trial
    // whose build it killed waits for --resume instead.
    assert!(
        before
            .iter()
            .all(|t| t.status.is_finished() || t.status == Status::Pending),
        "{before:#?}"
    );
    assert!(
        !before.iter().any(|t| t.status == Status::Failed),
        "{before:#?}"
    );

    let o = search(run_s, &space, true).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = snapshot(&run);
    assert!(after.iter().all(|t| t.status.is_finished()), "{after:#?}");
    let evaluated = after
        .iter()
        .filter(|t| !kiln_search::driver::is_analytic_rejection(t))
        .count();
    assert_eq!(evaluated, 5, "budget of 5 evaluated trials");
    for t in before.iter().filter(|t| t.status.is_finished()) {
        let now = after.iter().find(|a| a.number == t.number).unwrap();
        assert_eq!(now, t, "a finished trial was evaluated again");
    }
}
