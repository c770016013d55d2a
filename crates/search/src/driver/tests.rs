//! The driver against synthetic evaluators: budgets, resume, failures, interrupts.

use super::*;
use crate::strategy::tests::Bits;
use crate::strategy::{AgingEvolution, EvolutionConfig, RandomSearch};
use crate::{Metric, RunMeta, Source, Unit};
use kiln_target::Constraint;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

/// OneMax with a latency that grows with the number of ones in the
/// first half; fails on one pattern; counts evaluations per id.
struct Synthetic {
    evaluated: Mutex<BTreeMap<String, usize>>,
    calls: AtomicUsize,
    max_latency: f64,
    /// This call (1-based) answers [`EvalError::Stop`].
    stop_at_call: Option<usize>,
    /// This call raises the flag (a Ctrl-C) and fails as a build whose
    /// cargo the interrupt killed would.
    interrupt_at_call: Option<(usize, Arc<AtomicBool>)>,
}

impl Evaluator<Vec<bool>> for Synthetic {
    fn precheck(&self, p: &Vec<bool>) -> Vec<Violation> {
        // Analytic rejection: all-zero first quarter.
        if p[..p.len() / 4].iter().all(|b| !b) {
            vec![Violation::failed(
                Constraint::MaxSizeMb,
                1.0,
                Metric::new(2.0, Unit::Megabytes, Source::Predicted),
            )]
        } else {
            Vec::new()
        }
    }
    fn evaluate(&self, t: &TrialSpec<Vec<bool>>) -> Result<Evaluation, EvalError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.stop_at_call == Some(call) {
            return Err(EvalError::Stop("the device does not answer".into()));
        }
        if let Some((at, flag)) = &self.interrupt_at_call
            && *at == call
        {
            flag.store(true, Ordering::SeqCst);
            return Err("wasm build: cargo failed (signal: 2, SIGINT)".into());
        }
        *self
            .evaluated
            .lock()
            .unwrap()
            .entry(t.id.clone())
            .or_insert(0) += 1;
        assert!(t.dir.is_dir());
        if t.point[0] && t.point[1] && t.point[2] && !t.point[3] {
            return Err("build failed: synthetic".into());
        }
        let ones = t.point.iter().filter(|b| **b).count() as f64;
        let lat = t.point[..t.point.len() / 2].iter().filter(|b| **b).count() as f64;
        let mut e = Evaluation::default();
        e.metrics.insert(
            keys::ACCURACY.into(),
            Metric::new(ones / t.point.len() as f64, Unit::Fraction, Source::Host),
        );
        e.metrics.insert(
            keys::LATENCY_MS.into(),
            Metric::new(lat, Unit::Milliseconds, Source::Sim),
        );
        if lat > self.max_latency {
            e.violations.push(Violation::failed(
                Constraint::MaxLatencyP50Ms,
                self.max_latency,
                Metric::new(lat, Unit::Milliseconds, Source::Sim),
            ));
        }
        Ok(e)
    }
}

fn synthetic() -> Synthetic {
    Synthetic {
        evaluated: Mutex::new(BTreeMap::new()),
        calls: AtomicUsize::new(0),
        max_latency: 5.0,
        stop_at_call: None,
        interrupt_at_call: None,
    }
}

#[test]
fn a_search_journals_every_trial_once_and_survives_failures() {
    let dir = tempfile::tempdir().unwrap();
    let space = Arc::new(Bits(12));
    let journal = Journal::create(dir.path(), &RunMeta::default().with("t", 1)).unwrap();
    let mut strategy = AgingEvolution::new(space.clone(), EvolutionConfig::default(), 5);
    let eval = synthetic();
    let config = SearchConfig {
        trials: Some(40),
        workers: 3,
        ..SearchConfig::default()
    };
    let s = run_search(
        &*space,
        &mut strategy,
        &eval,
        &journal,
        dir.path(),
        &config,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(s.state.finished, 40);
    let trials = journal.trials().unwrap();
    let evaluated: Vec<_> = trials
        .iter()
        .filter(|t| !is_analytic_rejection(t))
        .collect();
    assert_eq!(evaluated.len(), 40);
    assert!(trials.iter().all(|t| t.status.is_finished()));
    assert!(eval.evaluated.lock().unwrap().values().all(|&n| n == 1));
    // Infeasible trials are recorded with the broken constraint.
    for t in &trials {
        if t.status == Status::Infeasible {
            assert!(!t.evaluation.as_ref().unwrap().violations.is_empty());
        }
        if t.status == Status::Failed {
            assert!(t.error.as_deref().unwrap().contains("build failed"));
        }
    }
}

#[test]
fn resume_requeues_running_trials_and_repeats_none() {
    let dir = tempfile::tempdir().unwrap();
    let space = Arc::new(Bits(12));
    let meta = RunMeta::default().with("t", 1);
    let config = SearchConfig {
        trials: Some(10),
        workers: 2,
        ..SearchConfig::default()
    };
    let eval = synthetic();
    {
        let journal = Journal::create(dir.path(), &meta).unwrap();
        let mut strategy = RandomSearch::new(space.clone(), 1);
        run_search(
            &*space,
            &mut strategy,
            &eval,
            &journal,
            dir.path(),
            &config,
            &NoProgress,
        )
        .unwrap();
        // Simulate a kill: two trials left running.
        let a = journal
            .insert(
                "x1",
                "[true,true,true,true,true,true,true,true,true,true,true,true]",
                "random",
                Status::Pending,
                None,
            )
            .unwrap();
        journal.start(a).unwrap();
    }
    let journal = Journal::resume(dir.path(), &meta).unwrap();
    let mut strategy = RandomSearch::new(space.clone(), 1);
    let config = SearchConfig {
        trials: Some(14),
        ..config
    };
    let s = run_search(
        &*space,
        &mut strategy,
        &eval,
        &journal,
        dir.path(),
        &config,
        &NoProgress,
    )
    .unwrap();
    let trials = journal.trials().unwrap();
    assert!(trials.iter().all(|t| t.status.is_finished()));
    let evaluated = trials.iter().filter(|t| !is_analytic_rejection(t)).count();
    // 10 + the re-queued one + 3 new = 14 (the budget).
    assert_eq!(evaluated, 14);
    assert_eq!(s.evaluated_now, 4);
    assert!(eval.evaluated.lock().unwrap().values().all(|&n| n == 1));
}

#[test]
fn a_stopping_evaluator_stops_the_search_and_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let space = Arc::new(Bits(12));
    let meta = RunMeta::default().with("t", 1);
    let config = SearchConfig {
        trials: Some(12),
        workers: 1,
        ..SearchConfig::default()
    };
    let mut eval = synthetic();
    eval.stop_at_call = Some(4);
    {
        let journal = Journal::create(dir.path(), &meta).unwrap();
        let mut strategy = RandomSearch::new(space.clone(), 2);
        let err = run_search(
            &*space,
            &mut strategy,
            &eval,
            &journal,
            dir.path(),
            &config,
            &NoProgress,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("the device does not answer"), "{text}");
        assert!(text.contains("--resume"), "{text}");
        // Three finished, the fourth waits; none was asked after it.
        let trials = journal.trials().unwrap();
        let evaluated: Vec<_> = trials
            .iter()
            .filter(|t| !is_analytic_rejection(t))
            .collect();
        assert_eq!(evaluated.len(), 4);
        assert_eq!(evaluated[3].status, Status::Pending);
        assert!(evaluated[..3].iter().all(|t| t.status.is_finished()));
    }
    eval.stop_at_call = None;
    let journal = Journal::resume(dir.path(), &meta).unwrap();
    let mut strategy = RandomSearch::new(space.clone(), 2);
    let s = run_search(
        &*space,
        &mut strategy,
        &eval,
        &journal,
        dir.path(),
        &config,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(s.state.finished, 12);
    let trials = journal.trials().unwrap();
    assert!(trials.iter().all(|t| t.status.is_finished()));
    // The stopped call evaluated nothing, so every id was evaluated once.
    assert!(eval.evaluated.lock().unwrap().values().all(|&n| n == 1));
}

#[test]
fn an_interrupt_stops_asking_requeues_the_trial_it_broke_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let space = Arc::new(Bits(12));
    let meta = RunMeta::default().with("t", 1);
    let flag = Arc::new(AtomicBool::new(false));
    let config = SearchConfig {
        trials: Some(12),
        workers: 1,
        interrupt: Some(flag.clone()),
        ..SearchConfig::default()
    };
    let mut eval = synthetic();
    eval.interrupt_at_call = Some((4, flag.clone()));
    {
        let journal = Journal::create(dir.path(), &meta).unwrap();
        let mut strategy = RandomSearch::new(space.clone(), 3);
        let s = run_search(
            &*space,
            &mut strategy,
            &eval,
            &journal,
            dir.path(),
            &config,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(s.stopped, "interrupted");
        assert_eq!((s.evaluated_now, s.requeued_now), (3, 1));
        let trials = journal.trials().unwrap();
        let evaluated: Vec<_> = trials
            .iter()
            .filter(|t| !is_analytic_rejection(t))
            .collect();
        // The broken trial is pending, not failed; nothing was asked after it.
        assert_eq!(evaluated.len(), 4);
        assert_eq!(evaluated[3].status, Status::Pending);
        assert!(evaluated.iter().all(|t| t.status != Status::Failed
            || t.error.as_deref().is_some_and(|e| e.contains("synthetic"))));
    }
    flag.store(false, Ordering::SeqCst);
    eval.interrupt_at_call = None;
    let journal = Journal::resume(dir.path(), &meta).unwrap();
    let mut strategy = RandomSearch::new(space.clone(), 3);
    let s = run_search(
        &*space,
        &mut strategy,
        &eval,
        &journal,
        dir.path(),
        &config,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(s.state.finished, 12);
    assert!(
        journal
            .trials()
            .unwrap()
            .iter()
            .all(|t| t.status.is_finished())
    );
    assert!(eval.evaluated.lock().unwrap().values().all(|&n| n == 1));
}

/// The genomes a journal holds, in ask order.
fn asked(journal: &Journal) -> Vec<String> {
    journal
        .trials()
        .unwrap()
        .into_iter()
        .map(|t| t.genome)
        .collect()
}

#[test]
fn reinforce_and_tpe_resumed_from_a_journal_ask_what_an_uninterrupted_run_asks() {
    use crate::strategy::{StrategyKind, build};
    let space = Arc::new(Bits(12));
    let meta = RunMeta::default().with("t", 1);
    let run = |dir: &Path, trials: usize, kind: StrategyKind| {
        let journal = if Journal::exists_in(dir) {
            Journal::resume(dir, &meta).unwrap()
        } else {
            Journal::create(dir, &meta).unwrap()
        };
        let mut strategy = build(
            kind,
            space.clone(),
            EvolutionConfig::default(),
            &[],
            None,
            3,
        );
        let config = SearchConfig {
            trials: Some(trials),
            workers: 1,
            ..SearchConfig::default()
        };
        let eval = synthetic();
        run_search(
            &*space,
            strategy.as_mut(),
            &eval,
            &journal,
            dir,
            &config,
            &NoProgress,
        )
        .unwrap();
        asked(&journal)
    };
    for kind in [StrategyKind::Reinforce, StrategyKind::Tpe] {
        let (whole, parts) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let uninterrupted = run(whole.path(), 40, kind);
        let first = run(parts.path(), 20, kind);
        let resumed = run(parts.path(), 40, kind);
        assert!(first.len() < resumed.len());
        // Repeats, failures and analytic rejections included.
        assert_eq!(resumed, uninterrupted, "{}", kind.name());
    }
}
