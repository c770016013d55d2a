//! The shared journal against a real PostgreSQL (a throwaway server started
//! here, see tests/common/postgres.rs): claims never overlap under load, a
//! dead worker's trial is evaluated once more (or failed after the run's
//! attempts), the ask side and workers share a run, identities and schema
//! versions are checked, a restarted server is survived, an unreachable one
//! is a clear error that shows no password.

#[path = "../../../tests/common/postgres.rs"]
mod pg;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kiln_search::driver::{NoProgress, WorkConfig, run_shared_search, work};
use kiln_search::journal::{LeaseOptions, Location};
use kiln_search::{
    EvalError, Evaluation, Evaluator, Journal, Metric, RandomSearch, RunMeta, SearchConfig,
    SearchError, SearchSpace, Source, Status, TrialSpec, Unit,
};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Points are numbers; accuracy is the number's share of a million.
struct Numbers;

impl SearchSpace for Numbers {
    type Point = u32;
    fn sample(&self, rng: &mut ChaCha8Rng) -> u32 {
        rng.random_range(0..1_000_000)
    }
    fn mutate(&self, p: &u32, rng: &mut ChaCha8Rng) -> u32 {
        (p + rng.random_range(1..1000)) % 1_000_000
    }
    fn crossover(&self, a: &u32, b: &u32, _rng: &mut ChaCha8Rng) -> u32 {
        (a / 2 + b / 2) % 1_000_000
    }
    fn id(&self, p: &u32) -> String {
        format!("n{p:07}")
    }
}

/// Records who evaluated what; evaluates in no time.
#[derive(Default)]
struct Stub {
    seen: Mutex<Vec<(String, u64)>>,
    calls: AtomicUsize,
    name: String,
}

impl Evaluator<u32> for Stub {
    fn precheck(&self, _p: &u32) -> Vec<kiln_search::constraints::Violation> {
        Vec::new()
    }
    fn evaluate(&self, t: &TrialSpec<u32>) -> Result<Evaluation, EvalError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen
            .lock()
            .unwrap()
            .push((self.name.clone(), t.number));
        let mut e = Evaluation::default();
        e.metrics.insert(
            "accuracy".into(),
            Metric::new(f64::from(t.point) / 1e6, Unit::Fraction, Source::Host),
        );
        Ok(e)
    }
}

fn meta(seed: u64) -> RunMeta {
    RunMeta::default().with("target", "stub").with("seed", seed)
}

fn location(server: &pg::Server, run: &str) -> Location {
    Location::parse(&server.url, run).unwrap()
}

fn fast() -> LeaseOptions {
    LeaseOptions {
        grace: Duration::from_secs(5),
        max_attempts: 2,
    }
}

#[test]
fn eight_workers_claim_500_trials_and_none_twice() {
    let Some(server) = pg::server() else { return };
    let loc = location(&server, "load");
    let search = Journal::create_at(&loc, &meta(1), &fast()).unwrap();
    for i in 0..500u32 {
        search
            .insert(
                &Numbers.id(&i),
                &i.to_string(),
                "random",
                Status::Pending,
                None,
            )
            .unwrap();
    }
    // Nothing more will be asked: workers leave once nothing is pending.
    search.set_finished(true).unwrap();
    let stubs: Vec<Stub> = (0..8)
        .map(|i| Stub {
            name: format!("worker-{i}"),
            ..Stub::default()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let begun = Instant::now();
    std::thread::scope(|scope| {
        for stub in &stubs {
            let (loc, dir) = (&loc, dir.path());
            scope.spawn(move || {
                // Each worker its own connection and lease, as a process would.
                let journal = Journal::join(loc, &fast()).unwrap();
                work(
                    &Numbers,
                    stub,
                    &journal,
                    &dir.join(&stub.name),
                    &WorkConfig::default(),
                    &NoProgress,
                )
                .unwrap()
            });
        }
    });
    let seconds = begun.elapsed().as_secs_f64();
    let mut claimed: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for stub in &stubs {
        for (who, n) in stub.seen.lock().unwrap().iter() {
            claimed.entry(*n).or_default().push(who.clone());
        }
    }
    let twice: Vec<_> = claimed.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(twice.is_empty(), "claimed more than once: {twice:?}");
    assert_eq!(claimed.len(), 500);
    let trials = search.trials().unwrap();
    assert!(
        trials
            .iter()
            .all(|t| t.status == Status::Done && t.attempts == 1)
    );
    let busiest = stubs.iter().map(|s| s.seen.lock().unwrap().len()).max();
    println!(
        "claims: 500 trials by 8 workers in {seconds:.2} s = {:.0} claims/s (busiest worker {} claims)",
        500.0 / seconds,
        busiest.unwrap_or(0)
    );
}

/// Drops a worker's lease as if its process had died without a word.
fn bury(server: &pg::Server, journal: &Journal) {
    let mut c = postgres::Client::connect(&server.url, postgres::NoTls).unwrap();
    c.execute(
        "DELETE FROM kiln_leases WHERE holder = $1",
        &[&journal.holder().id],
    )
    .unwrap();
}

#[test]
fn a_dead_workers_trial_goes_back_once_and_fails_after_the_runs_attempts() {
    let Some(server) = pg::server() else { return };
    let loc = location(&server, "deaths");
    let search = Journal::create_at(&loc, &meta(2), &fast()).unwrap();
    let n = search
        .insert("a", "1", "random", Status::Pending, None)
        .unwrap();
    let first = Journal::join(&loc, &fast()).unwrap();
    let second = Journal::join(&loc, &fast()).unwrap();
    assert_eq!(first.claim().unwrap().unwrap().number, n);
    assert!(second.claim().unwrap().is_none(), "claimed twice");
    bury(&server, &first);
    let again = second
        .claim()
        .unwrap()
        .expect("re-queued for another worker");
    assert_eq!((again.number, again.attempts), (n, 2));
    // The dead worker's late result is not written over the live one's.
    let e = Evaluation::default();
    assert!(
        !first
            .finish_claimed(n, Status::Done, Some(&e), None)
            .unwrap()
    );
    assert_eq!(search.find("a").unwrap().unwrap().status, Status::Running);
    // The second dies too: two attempts were the run's maximum.
    bury(&server, &second);
    let third = Journal::join(&loc, &fast()).unwrap();
    assert!(third.claim().unwrap().is_none());
    let t = search.find("a").unwrap().unwrap();
    assert_eq!(t.status, Status::Failed);
    assert!(
        t.error
            .as_deref()
            .unwrap()
            .contains("stopped heart-beating"),
        "{t:?}"
    );
}

#[test]
fn the_ask_side_and_two_workers_share_a_random_search() {
    let Some(server) = pg::server() else { return };
    let loc = location(&server, "shared");
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::create_at(&loc, &meta(3), &fast()).unwrap();
    let workers: Vec<Stub> = (0..2)
        .map(|i| Stub {
            name: format!("w{i}"),
            ..Stub::default()
        })
        .collect();
    let own = Stub {
        name: "search".into(),
        ..Stub::default()
    };
    let config = SearchConfig {
        trials: Some(40),
        workers: 1,
        ..SearchConfig::default()
    };
    let summary = std::thread::scope(|scope| {
        for w in &workers {
            let (loc, dir) = (&loc, dir.path());
            scope.spawn(move || {
                let j = Journal::join(loc, &fast()).unwrap();
                work(&Numbers, w, &j, dir, &WorkConfig::default(), &NoProgress).unwrap()
            });
        }
        let mut strategy = RandomSearch::new(std::sync::Arc::new(Numbers), 7);
        run_shared_search(
            &Numbers,
            &mut strategy,
            &own,
            &journal,
            dir.path(),
            &config,
            &NoProgress,
        )
        .unwrap()
    });
    assert_eq!(summary.state.finished, 40);
    assert_eq!(summary.evaluated_now, 40);
    assert!(journal.is_finished().unwrap());
    let trials = journal.trials().unwrap();
    assert_eq!(trials.len(), 40);
    assert!(
        trials
            .iter()
            .all(|t| t.status == Status::Done && t.attempts == 1)
    );
    let calls: usize = workers
        .iter()
        .chain([&own])
        .map(|s| s.calls.load(Ordering::SeqCst))
        .sum();
    assert_eq!(calls, 40, "every trial evaluated exactly once");
    // Random search is order-independent: the same points as one process
    // asking alone with the same seed.
    let mut alone = RandomSearch::new(std::sync::Arc::new(Numbers), 7);
    let mut expected: Vec<String> = Vec::new();
    while expected.len() < 40 {
        let id = Numbers.id(&kiln_search::Strategy::ask(&mut alone).0);
        if !expected.contains(&id) {
            expected.push(id);
        }
    }
    let got: Vec<String> = trials.iter().map(|t| t.genome_id.clone()).collect();
    assert_eq!(got, expected);
}

#[test]
fn identities_schema_and_leases_are_checked_and_credentials_never_shown() {
    let Some(server) = pg::server() else { return };
    let loc = location(&server, "checks");
    let first = Journal::create_at(&loc, &meta(4), &fast()).unwrap();
    // The same run name with other settings: refused naming the field.
    let err = Journal::create_at(&loc, &meta(5), &fast()).err().unwrap();
    assert!(
        err.to_string()
            .contains("seed: journal has `4`, this run has `5`"),
        "{err}"
    );
    // A second search on the live run: refused naming the holder.
    let err = Journal::resume_at(&loc, &meta(4), &fast()).err().unwrap();
    assert!(matches!(err, SearchError::Busy { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("process {}", std::process::id())),
        "{err}"
    );
    drop(first);
    Journal::resume_at(&loc, &meta(4), &fast()).unwrap();

    let mut c = postgres::Client::connect(&server.url, postgres::NoTls).unwrap();
    c.execute("UPDATE kiln_schema SET version = 99", &[])
        .unwrap();
    let err = Journal::open_at(&loc).err().unwrap().to_string();
    assert!(
        err.contains("schema version 99; this kiln reads version 2"),
        "{err}"
    );
    c.execute("UPDATE kiln_schema SET version = 2", &[])
        .unwrap();

    // Nothing listens on this port: a clear error at once, no password.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("postgres://kiln:hunter2@127.0.0.1:{port}/runs");
    let err = Journal::create_at(&Location::parse(&url, "r").unwrap(), &meta(1), &fast())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn a_restarted_server_is_survived() {
    let Some(server) = pg::server() else { return };
    let loc = location(&server, "restart");
    let journal = Journal::create_at(&loc, &meta(6), &fast()).unwrap();
    journal
        .insert("a", "1", "random", Status::Pending, None)
        .unwrap();
    server.restart();
    // The connection died with the server; the next statement reconnects.
    journal
        .insert("b", "2", "random", Status::Pending, None)
        .unwrap();
    assert_eq!(journal.trials().unwrap().len(), 2);
}
