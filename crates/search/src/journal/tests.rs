//! The journal's behaviour on its default back end (SQLite); the shared
//! back end's is tested against a real PostgreSQL in tests/postgres.rs.

use super::*;
use crate::{Metric, Source, Unit};

fn meta(target: &str) -> RunMeta {
    RunMeta::default()
        .with("target", target)
        .with("space", "mobile")
        .with("seed", 1)
}

#[test]
fn trials_survive_reopening_and_running_ones_are_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::create(dir.path(), &meta("jetson")).unwrap();
    let a = j
        .insert("aaa", "{}", "random", Status::Pending, None)
        .unwrap();
    let b = j
        .insert("bbb", "{}", "random", Status::Pending, None)
        .unwrap();
    j.start(a).unwrap();
    j.start(b).unwrap();
    let mut eval = Evaluation::default();
    eval.metrics.insert(
        "accuracy".into(),
        Metric::new(0.5, Unit::Fraction, Source::Host),
    );
    j.finish(a, Status::Done, Some(&eval), None).unwrap();
    drop(j);

    let j = Journal::resume(dir.path(), &meta("jetson")).unwrap();
    let trials = j.trials().unwrap();
    assert_eq!(trials.len(), 2);
    assert_eq!(trials[0].status, Status::Done);
    assert_eq!(trials[0].evaluation.as_ref(), Some(&eval));
    assert_eq!(trials[1].status, Status::Pending);
    assert_eq!(trials[1].attempts, 1);
    assert_eq!(j.find("bbb").unwrap().map(|t| t.number), Some(b));
}

#[test]
fn a_different_search_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Journal::create(dir.path(), &meta("jetson")).unwrap();
    let err = Journal::resume(dir.path(), &meta("pixel"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("target: journal has `jetson`, this run has `pixel`"),
        "{err}"
    );
    let err = Journal::create(dir.path(), &meta("jetson"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--resume"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Journal::resume(empty.path(), &meta("jetson")),
        Err(SearchError::NothingToResume { .. })
    ));
    // an empty journal file holds no run either (not "a different search" of every field)
    std::fs::write(Journal::path_in(empty.path()), b"").unwrap();
    let Err(e) = Journal::resume(empty.path(), &meta("jetson")) else {
        panic!("resumed an empty journal")
    };
    assert!(e.to_string().starts_with("no search journal at"), "{e}");
}

#[test]
fn a_content_id_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::create(dir.path(), &meta("jetson")).unwrap();
    j.insert("aaa", "{}", "random", Status::Pending, None)
        .unwrap();
    assert!(
        j.insert("aaa", "{}", "random", Status::Pending, None)
            .is_err()
    );
}

fn running_trial(j: &Journal, id: &str) -> u64 {
    let n = j.insert(id, "{}", "random", Status::Pending, None).unwrap();
    j.start(n).unwrap();
    n
}

#[test]
fn a_second_process_on_a_live_run_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = Journal::create(dir.path(), &meta("jetson")).unwrap();
    let n = running_trial(&first, "aaa");
    // The bug of issue 18: a --resume while the first search ran re-queued
    // its running trials and both evaluated them.
    let err = Journal::resume(dir.path(), &meta("jetson"))
        .err()
        .expect("refused")
        .to_string();
    let me = format!("process {} on host {}", std::process::id(), hostname());
    assert!(err.contains("in use by a running search"), "{err}");
    assert!(err.contains(&me), "{err}");
    let trials = first.trials().unwrap();
    assert_eq!(trials[0].status, Status::Running, "left as it was");
    assert_eq!(trials[0].attempts, 1);
    // Ended: the lease is given back and the next process takes the run over.
    drop(first);
    let second = Journal::resume(dir.path(), &meta("jetson")).unwrap();
    assert_eq!(second.find("aaa").unwrap().unwrap().status, Status::Pending);
    assert_eq!(second.find("aaa").unwrap().unwrap().number, n);
}

#[test]
fn a_stale_lease_is_taken_over_and_only_then_are_running_trials_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let first = Journal::create(dir.path(), &meta("jetson")).unwrap();
    running_trial(&first, "aaa");
    let conn = rusqlite::Connection::open(Journal::path_in(dir.path())).unwrap();
    // A holder on another machine that stopped heart-beating long ago.
    conn.execute(
        "UPDATE lease SET host = 'elsewhere', heartbeat_at = heartbeat_at - 3600",
        [],
    )
    .unwrap();
    std::mem::forget(first); // died without releasing its lease
    let second = Journal::resume(dir.path(), &meta("jetson")).unwrap();
    let t = second.find("aaa").unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (Status::Pending, 1));
    // A fresh holder elsewhere is live: refused, its trial left running.
    second.start(t.number).unwrap();
    conn.execute("UPDATE lease SET host = 'elsewhere'", [])
        .unwrap();
    std::mem::forget(second);
    let err = Journal::resume(dir.path(), &meta("jetson")).err().unwrap();
    assert!(matches!(err, SearchError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("on host elsewhere"), "{err}");
    let j = Journal::open(dir.path()).unwrap();
    assert_eq!(j.find("aaa").unwrap().unwrap().status, Status::Running);
}

#[test]
fn a_lease_whose_process_is_gone_from_this_host_is_taken_over_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = Journal::create(dir.path(), &meta("jetson")).unwrap();
    running_trial(&first, "aaa");
    // The highest pid that no process has now.
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .map_or(32768, |s| s.trim().parse().unwrap());
    let dead = (2..max)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let conn = rusqlite::Connection::open(Journal::path_in(dir.path())).unwrap();
    conn.execute("UPDATE lease SET pid = ?1", [dead]).unwrap();
    std::mem::forget(first);
    let second = Journal::resume(dir.path(), &meta("jetson")).unwrap();
    assert_eq!(second.find("aaa").unwrap().unwrap().status, Status::Pending);
}

#[test]
fn a_journal_of_a_newer_schema_is_refused_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    drop(Journal::create(dir.path(), &meta("jetson")).unwrap());
    let conn = rusqlite::Connection::open(Journal::path_in(dir.path())).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    let err = Journal::open(dir.path()).err().unwrap().to_string();
    assert!(
        err.contains("schema version 99; this kiln reads version 2"),
        "{err}"
    );
}

#[test]
fn urls_are_shown_without_their_password() {
    assert_eq!(
        redact("postgres://kiln:s3cret@db.lan:5433/runs?sslmode=disable&password=x"),
        "postgres://kiln:***@db.lan:5433/runs?sslmode=disable&password=***"
    );
    assert_eq!(redact("postgres://kiln@db/runs"), "postgres://kiln@db/runs");
    let loc = Location::parse("postgresql://a:b@h/db", "r1").unwrap();
    assert_eq!(format!("{loc:?}"), "postgresql://a:***@h/db (run r1)");
    let err = Location::parse("mysql://a:pw@h/db", "r").err().unwrap();
    assert!(!err.to_string().contains("pw"), "{err}");
}
