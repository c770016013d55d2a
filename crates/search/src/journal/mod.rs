//! The trial journal of a run, behind one interface ([`Backend`]) with two
//! back ends: SQLite in the run folder (`journal.sqlite`, the default) and
//! PostgreSQL (`postgres://...`), which workers on many machines share.
//!
//! Every trial is a row written as it happens (pending -> running -> done /
//! infeasible / failed), each change one statement, so a killed search loses
//! at most the evaluations that were running, and those are re-queued when
//! the run is taken over. The run's identity (target, space, data, seed,
//! strategy, ...) is stored once; resuming with a different identity is
//! refused. A process that writes a run holds a lease (host, process,
//! heartbeat): a second process on a live run is refused naming the holder;
//! a lease whose holder died (its process gone from this host, or no
//! heartbeat for the grace period) is taken over, and only then are its
//! running trials re-queued.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Evaluation, SearchError};

mod artefacts;
mod backend;
mod lease;
mod location;
mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

pub use artefacts::MAX_ARTEFACT_BYTES;
pub use backend::{Backend, LeaseOptions, Role, Row, Select};
pub use lease::{Holder, hostname};
pub use location::{Location, is_postgres_url, redact};

use backend::not_shared;

/// The journal's file name inside a run folder.
pub const JOURNAL_FILE: &str = "journal.sqlite";

/// The schema both back ends write. A journal of another version is refused
/// with both numbers (SQLite journals from before versioning read as 1 and
/// are upgraded in place: the change only adds the lease table).
pub const SCHEMA_VERSION: i64 = 2;

/// Status of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting to be evaluated (new, or sent back by an interrupt, a
    /// stopping evaluator or a resume).
    Pending,
    /// Being evaluated by a worker.
    Running,
    /// Evaluated and within every hard constraint.
    Done,
    /// Broke a hard constraint (analytic or measured).
    Infeasible,
    /// Could not be evaluated; [`TrialRecord::error`] says why.
    Failed,
}

/// Origin of a trial a search started from because an earlier search on the same supernet
/// judged it (kiln-pipeline's warm start): not asked by the run's strategy.
pub const JUDGED_EARLIER: &str = "judged-earlier";

impl Status {
    /// The name stored in the `status` column (`pending`, `running`, `done`,
    /// `infeasible`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Done => "done",
            Status::Infeasible => "infeasible",
            Status::Failed => "failed",
        }
    }
    /// Reads a name written by [`Status::as_str`]; `None` for any other.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "running" => Status::Running,
            "done" => Status::Done,
            "infeasible" => Status::Infeasible,
            "failed" => Status::Failed,
            _ => return None,
        })
    }
    /// Done, infeasible or failed: the trial will not be evaluated again.
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Done | Status::Infeasible | Status::Failed)
    }
}

/// What identifies a search: resuming requires every field to match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunMeta {
    /// Field name -> value (`target`, `space`, `seed`, `strategy`,
    /// `objectives`, ...), the rows of the `meta` table.
    pub fields: BTreeMap<String, String>,
}

impl RunMeta {
    /// The objectives the run was searched with (`objectives` field);
    /// accuracy and latency when it names none.
    pub fn objectives(&self) -> Vec<crate::Objective> {
        let named: Vec<crate::Objective> = self
            .get("objectives")
            .map(|s| s.split(',').filter_map(crate::Objective::parse).collect())
            .unwrap_or_default();
        if named.is_empty() {
            vec![crate::Objective::Accuracy, crate::Objective::Latency]
        } else {
            named
        }
    }

    /// Sets `key` to `value` (replacing any earlier value).
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.fields.insert(key.to_string(), value.to_string());
        self
    }
    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }
}

/// One row of the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    /// 1-based, in the order trials were asked.
    pub number: u64,
    /// The point's content id (unique in the journal).
    pub genome_id: String,
    /// The point as JSON.
    pub genome: String,
    /// `random`, `mutation`, `crossover`.
    pub origin: String,
    /// Where the trial stands.
    pub status: Status,
    /// What was measured (stored as JSON); analytic rejections hold only
    /// violations. `None` until finished, and for failed trials.
    pub evaluation: Option<Evaluation>,
    /// Why a failed trial failed.
    pub error: Option<String>,
    /// When the trial was asked, Unix seconds.
    pub created_at: f64,
    /// When its last evaluation started, Unix seconds.
    pub started_at: Option<f64>,
    /// When it finished, Unix seconds.
    pub finished_at: Option<f64>,
    /// How many times evaluation started (more than 1 only after a resume).
    pub attempts: u32,
}

/// The journal of one run. Shareable between worker threads; holds the
/// run's lease (renewed by a heartbeat thread) when created, resumed or
/// joined, and releases it when dropped.
pub struct Journal {
    backend: Arc<dyn Backend>,
    holder: Holder,
    heartbeat: Option<lease::Heartbeat>,
    leased: bool,
}

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Each differing field of two identities, `field: journal has `a`, this
/// run has `b``; empty when they match.
pub fn differences(stored: &RunMeta, wanted: &RunMeta) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> =
        stored.fields.keys().chain(wanted.fields.keys()).collect();
    let show = |v: Option<&String>| v.map_or("nothing".to_string(), |s| format!("`{s}`"));
    keys.into_iter()
        .filter(|k| stored.fields.get(*k) != wanted.fields.get(*k))
        .map(|k| {
            format!(
                "{k}: journal has {}, this run has {}",
                show(stored.fields.get(k)),
                show(wanted.fields.get(k))
            )
        })
        .collect()
}

fn backend(location: &Location, create_folder: bool) -> Result<Arc<dyn Backend>, SearchError> {
    Ok(match location {
        Location::Folder(dir) => {
            if create_folder {
                std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
            } else if !Journal::path_in(dir).is_file() {
                return Err(SearchError::NothingToResume {
                    path: Journal::path_in(dir),
                });
            }
            Arc::new(sqlite::Sqlite::open(&Journal::path_in(dir))?)
        }
        Location::Postgres { url, run } => Arc::new(postgres::Postgres::connect(url, run)?),
    })
}

/// The runs of a shared journal's database (`url`), by name, each with
/// whether its search marked it finished.
///
/// Errors: an unreachable database or another schema version, as
/// [`Journal::open_at`].
pub fn shared_runs(url: &str) -> Result<Vec<(String, bool)>, SearchError> {
    postgres::Postgres::connect(url, "")?.runs()
}

impl Journal {
    /// The journal path of `run_dir`.
    pub fn path_in(run_dir: &Path) -> PathBuf {
        run_dir.join(JOURNAL_FILE)
    }

    /// Starts a new journal in `run_dir` (created if missing), stores
    /// `meta` and takes the run's lease.
    ///
    /// Errors: [`SearchError::AlreadyExists`] when the folder's journal
    /// already holds a run identity or trials; [`SearchError::Io`] when the
    /// folder cannot be created; [`SearchError::Journal`] for SQLite errors.
    pub fn create(run_dir: &Path, meta: &RunMeta) -> Result<Journal, SearchError> {
        Self::create_at(
            &Location::Folder(run_dir.to_path_buf()),
            meta,
            &LeaseOptions::default(),
        )
    }

    /// [`Journal::create`] for any [`Location`]. A shared run also records
    /// `options` (every worker judges stale trials by them).
    ///
    /// Errors: as [`Journal::create`]; [`SearchError::ResumeMismatch`] when
    /// a run of that name exists with another identity;
    /// [`SearchError::Busy`] when a live process holds it.
    pub fn create_at(
        location: &Location,
        meta: &RunMeta,
        options: &LeaseOptions,
    ) -> Result<Journal, SearchError> {
        let backend = backend(location, true)?;
        // An existing run is refused before its lease is asked for, so the
        // message names the differing settings even while it runs.
        let stored = backend.meta()?;
        if !stored.fields.is_empty() {
            let path = backend.location().to_path_buf();
            let differences = differences(&stored, meta);
            // a run folder is continued only with --resume, whatever its settings; a
            // shared run of that name with other settings is named field by field
            let folder = matches!(location, Location::Folder(_));
            return Err(if differences.is_empty() || folder {
                SearchError::AlreadyExists { path }
            } else {
                SearchError::ResumeMismatch {
                    path,
                    differences: differences.join("; "),
                }
            });
        }
        let mut journal = Journal::unleased(backend);
        journal.lease(Role::Search, options)?;
        journal.backend.create(meta, options)?;
        Ok(journal)
    }

    /// Opens an existing journal as it is (reports, comparisons), holding no
    /// lease.
    ///
    /// Errors: [`SearchError::NothingToResume`] when `run_dir` has no
    /// journal file; [`SearchError::Journal`] for SQLite errors.
    pub fn open(run_dir: &Path) -> Result<Journal, SearchError> {
        Self::open_at(&Location::Folder(run_dir.to_path_buf()))
    }

    /// [`Journal::open`] for any [`Location`].
    ///
    /// Errors: as [`Journal::open`]; a shared run that does not exist is
    /// [`SearchError::NothingToResume`].
    pub fn open_at(location: &Location) -> Result<Journal, SearchError> {
        let journal = Journal::unleased(backend(location, false)?);
        if matches!(location, Location::Postgres { .. }) && journal.meta()?.fields.is_empty() {
            return Err(SearchError::NothingToResume {
                path: journal.path().to_path_buf(),
            });
        }
        Ok(journal)
    }

    /// Reopens a journal to continue its search: `meta` must match the
    /// stored identity; the run's lease is taken (refused while its holder
    /// lives), and only then do trials that were running go back to pending.
    ///
    /// Errors: [`SearchError::NothingToResume`] without a journal,
    /// [`SearchError::ResumeMismatch`] naming every differing field,
    /// [`SearchError::Busy`] naming a live holder, [`SearchError::Journal`]
    /// for SQLite errors.
    pub fn resume(run_dir: &Path, meta: &RunMeta) -> Result<Journal, SearchError> {
        Self::resume_at(
            &Location::Folder(run_dir.to_path_buf()),
            meta,
            &LeaseOptions::default(),
        )
    }

    /// [`Journal::resume`] for any [`Location`].
    ///
    /// Errors: as [`Journal::resume`].
    pub fn resume_at(
        location: &Location,
        meta: &RunMeta,
        options: &LeaseOptions,
    ) -> Result<Journal, SearchError> {
        let mut journal = Self::open_at(location)?;
        let stored = journal.meta()?;
        if stored.fields.is_empty() {
            // an empty file (or one whose run never stored its identity) holds no run
            let path = journal.path().to_path_buf();
            return Err(SearchError::NothingToResume { path });
        }
        let differences = differences(&stored, meta);
        if !differences.is_empty() {
            return Err(SearchError::ResumeMismatch {
                path: journal.path().to_path_buf(),
                differences: differences.join("; "),
            });
        }
        journal.lease(Role::Search, options)?;
        if matches!(location, Location::Folder(_)) {
            // One process evaluates a folder's run: what was running when its
            // holder died is pending again. (A shared run's workers hold their
            // own leases; their trials go back when they stop heart-beating.)
            journal.backend.requeue_running()?;
        } else {
            journal.backend.set_finished(false)?;
        }
        Ok(journal)
    }

    /// Joins a shared run as a worker: a lease of its own, renewed while
    /// the journal lives, so its claims are its own.
    ///
    /// Errors: [`SearchError::NothingToResume`] when the run does not exist,
    /// [`SearchError::Config`] for a folder journal, the back end's errors.
    pub fn join(location: &Location, options: &LeaseOptions) -> Result<Journal, SearchError> {
        if let Location::Folder(_) = location {
            return Err(not_shared());
        }
        let mut journal = Self::open_at(location)?;
        journal.lease(Role::Worker, options)?;
        Ok(journal)
    }

    fn unleased(backend: Arc<dyn Backend>) -> Journal {
        Journal {
            backend,
            holder: Holder::this_process(),
            heartbeat: None,
            leased: false,
        }
    }

    fn lease(&mut self, role: Role, options: &LeaseOptions) -> Result<(), SearchError> {
        // A shared run's own grace period rules, whatever this process was told.
        let options = &LeaseOptions {
            grace: self.backend.run_grace()?.unwrap_or(options.grace),
            ..*options
        };
        self.backend.acquire(&self.holder, role, options.grace)?;
        self.leased = true;
        let (backend, holder) = (self.backend.clone(), self.holder.clone());
        // A failed beat (the database restarting) is retried on the next
        // tick; a lease taken over by another stops the beating.
        self.heartbeat = Some(lease::Heartbeat::start(
            options.heartbeat_interval(),
            move || backend.heartbeat(&holder).unwrap_or(true),
        ));
        Ok(())
    }

    /// The journal's path (folder journals) or redacted location (shared).
    pub fn path(&self) -> &Path {
        self.backend.location()
    }

    /// This handle's holder (host, process).
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The stored run identity.
    ///
    /// Errors: [`SearchError::Journal`].
    pub fn meta(&self) -> Result<RunMeta, SearchError> {
        self.backend.meta()
    }

    /// Adds a trial; returns its number. A finished `status` (an analytic
    /// rejection) also sets `finished_at`.
    ///
    /// Errors: [`SearchError::Journal`], also when `genome_id` is already
    /// stored (the column is UNIQUE).
    pub fn insert(
        &self,
        genome_id: &str,
        genome_json: &str,
        origin: &str,
        status: Status,
        evaluation: Option<&Evaluation>,
    ) -> Result<u64, SearchError> {
        let t = now();
        self.backend.insert(&Row {
            number: 0,
            genome_id: genome_id.into(),
            genome: genome_json.into(),
            origin: origin.into(),
            status: status.as_str().into(),
            evaluation: self.to_json(evaluation)?,
            error: None,
            created_at: t,
            started_at: None,
            finished_at: status.is_finished().then_some(t),
            attempts: 0,
        })
    }

    fn to_json(&self, evaluation: Option<&Evaluation>) -> Result<Option<String>, SearchError> {
        evaluation
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| SearchError::Journal {
                path: self.path().to_path_buf(),
                message: e.to_string(),
            })
    }

    /// Marks a pending trial running (counts an attempt).
    ///
    /// Errors: [`SearchError::Journal`].
    pub fn start(&self, number: u64) -> Result<(), SearchError> {
        self.backend.start(number, &self.holder.id)
    }

    /// Puts a running trial back to pending (its evaluation was stopped by
    /// something outside the candidate); `--resume` evaluates it again.
    ///
    /// Errors: [`SearchError::Journal`].
    pub fn requeue(&self, number: u64) -> Result<(), SearchError> {
        self.backend.requeue(number)
    }

    /// Records the end of a trial: its status, evaluation and error text.
    ///
    /// Errors: [`SearchError::Journal`].
    pub fn finish(
        &self,
        number: u64,
        status: Status,
        evaluation: Option<&Evaluation>,
        error: Option<&str>,
    ) -> Result<(), SearchError> {
        let eval = self.to_json(evaluation)?;
        self.backend
            .finish(number, None, status, eval.as_deref(), error)?;
        Ok(())
    }

    /// Shared runs: claims the first pending trial for this holder (`SELECT
    /// ... FOR UPDATE SKIP LOCKED`: two workers never get the same one),
    /// after sending trials of dead workers back to pending (or to failed
    /// after the run's maximum attempts). `None` when nothing is pending.
    ///
    /// Errors: [`SearchError::Config`] for a folder journal, the back end's.
    pub fn claim(&self) -> Result<Option<TrialRecord>, SearchError> {
        self.backend
            .claim(&self.holder)?
            .map(|r| self.parse(r))
            .transpose()
    }

    /// Shared runs: records the end of a trial this holder claimed. False
    /// (nothing written) when the trial was taken back meanwhile (this
    /// holder was taken for dead): another worker evaluates it.
    ///
    /// Errors: [`SearchError::Journal`].
    pub fn finish_claimed(
        &self,
        number: u64,
        status: Status,
        evaluation: Option<&Evaluation>,
        error: Option<&str>,
    ) -> Result<bool, SearchError> {
        let eval = self.to_json(evaluation)?;
        self.backend.finish(
            number,
            Some(&self.holder.id),
            status,
            eval.as_deref(),
            error,
        )
    }

    /// Shared runs: workers whose lease is fresh.
    ///
    /// Errors: the back end's.
    pub fn live_workers(&self) -> Result<usize, SearchError> {
        self.backend.live_workers()
    }

    /// Shared runs: marks the run finished (workers leave once nothing is
    /// pending) or active again.
    ///
    /// Errors: the back end's.
    pub fn set_finished(&self, finished: bool) -> Result<(), SearchError> {
        self.backend.set_finished(finished)
    }

    /// Shared runs: whether the search marked the run finished.
    ///
    /// Errors: the back end's.
    pub fn is_finished(&self) -> Result<bool, SearchError> {
        self.backend.is_finished()
    }

    /// Shared runs: stores a file of the run (the space file, so workers
    /// evaluate exactly the run's space).
    ///
    /// Errors: the back end's.
    pub fn put_file(&self, name: &str, content: &[u8]) -> Result<(), SearchError> {
        self.backend.put_file(name, content)
    }

    /// Shared runs: whether the search process that asks died: its lease is
    /// there (a search that stopped cleanly gives it up) but its heartbeat is
    /// older than twice the run's grace period (a search only slowed down by a
    /// busy machine must not get a second asker beside it), or its process is
    /// gone from this host.
    ///
    /// Errors: the back end's.
    pub fn search_died(&self, options: &LeaseOptions) -> Result<bool, SearchError> {
        let grace = self.backend.run_grace()?.unwrap_or(options.grace);
        Ok(match self.backend.search_holder()? {
            Some((holder, age)) => {
                age >= 2.0 * grace.as_secs_f64() || holder.is_gone_from_this_host()
            }
            None => false,
        })
    }

    /// Shared runs: a file stored with [`Journal::put_file`].
    ///
    /// Errors: the back end's.
    pub fn file(&self, name: &str) -> Result<Option<Vec<u8>>, SearchError> {
        self.backend.file(name)
    }

    /// Every trial, by number.
    ///
    /// Errors: [`SearchError::Journal`], also for a row whose status or
    /// evaluation does not parse.
    pub fn trials(&self) -> Result<Vec<TrialRecord>, SearchError> {
        self.backend
            .rows(Select::All)?
            .into_iter()
            .map(|r| self.parse(r))
            .collect()
    }

    /// The trial of a content id, if any.
    ///
    /// Errors: as [`Journal::trials`].
    pub fn find(&self, genome_id: &str) -> Result<Option<TrialRecord>, SearchError> {
        self.backend
            .rows(Select::GenomeId(genome_id))?
            .pop()
            .map(|r| self.parse(r))
            .transpose()
    }

    fn parse(&self, r: Row) -> Result<TrialRecord, SearchError> {
        let err = |message: String| SearchError::Journal {
            path: self.path().to_path_buf(),
            message,
        };
        let number = r.number;
        let status = Status::parse(&r.status)
            .ok_or_else(|| err(format!("trial {number}: unknown status `{}`", r.status)))?;
        let evaluation = r
            .evaluation
            .map(|e| serde_json::from_str(&e))
            .transpose()
            .map_err(|e| err(format!("trial {number}: evaluation: {e}")))?;
        Ok(TrialRecord {
            number: number as u64,
            genome_id: r.genome_id,
            genome: r.genome,
            origin: r.origin,
            status,
            evaluation,
            error: r.error,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            attempts: r.attempts as u32,
        })
    }

    /// Whether a journal exists in `run_dir`.
    pub fn exists_in(run_dir: &Path) -> bool {
        Self::path_in(run_dir).is_file()
    }

    /// Releases the lease (as dropping does).
    pub fn close(self) {}

    /// Number of trials per status name ([`Status::as_str`]).
    ///
    /// Errors: as [`Journal::trials`].
    pub fn counts(&self) -> Result<BTreeMap<&'static str, u64>, SearchError> {
        let mut out = BTreeMap::new();
        for t in self.trials()? {
            *out.entry(t.status.as_str()).or_insert(0) += 1;
        }
        Ok(out)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Stop beating first, then give the lease up for the next process.
        drop(self.heartbeat.take());
        if self.leased {
            let _ = self.backend.release(&self.holder);
        }
    }
}

#[allow(dead_code)]
fn _assert_sync() {
    fn is_sync<T: Sync + Send>() {}
    is_sync::<Journal>();
}
