//! The trial journal: one SQLite database per run folder (`journal.sqlite`).
//!
//! Every trial is a row written as it happens (pending -> running -> done /
//! infeasible / failed), each change one statement, so a killed search loses
//! at most the evaluations that were running, and those are re-queued on
//! resume. The run's identity (target, space, data, seed, strategy, ...) is
//! stored once; resuming with a different identity is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};

use crate::{Evaluation, SearchError};

/// The journal's file name inside a run folder.
pub const JOURNAL_FILE: &str = "journal.sqlite";

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

/// The journal of one run folder. Shareable between worker threads.
pub struct Journal {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number      INTEGER PRIMARY KEY,
    genome_id   TEXT NOT NULL UNIQUE,
    genome      TEXT NOT NULL,
    origin      TEXT NOT NULL,
    status      TEXT NOT NULL,
    evaluation  TEXT,
    error       TEXT,
    created_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL,
    attempts    INTEGER NOT NULL DEFAULT 0
);";

impl Journal {
    /// The journal path of `run_dir`.
    pub fn path_in(run_dir: &Path) -> PathBuf {
        run_dir.join(JOURNAL_FILE)
    }

    fn connect(path: &Path) -> Result<Connection, SearchError> {
        let err = |e: rusqlite::Error| SearchError::Journal {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let conn = Connection::open(path).map_err(err)?;
        // WAL: a process killed mid-write leaves the last committed state.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(conn)
    }

    fn err(&self, e: impl std::fmt::Display) -> SearchError {
        SearchError::Journal {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Starts a new journal in `run_dir` (created if missing) and stores
    /// `meta`.
    ///
    /// Errors: [`SearchError::AlreadyExists`] when the folder's journal
    /// already holds a run identity or trials; [`SearchError::Io`] when the
    /// folder cannot be created; [`SearchError::Journal`] for SQLite errors.
    pub fn create(run_dir: &Path, meta: &RunMeta) -> Result<Journal, SearchError> {
        std::fs::create_dir_all(run_dir).map_err(|e| SearchError::io(run_dir, e))?;
        let path = Self::path_in(run_dir);
        if path.exists() {
            let existing = Self::open(run_dir)?;
            if !existing.meta()?.fields.is_empty() || !existing.trials()?.is_empty() {
                return Err(SearchError::AlreadyExists { path });
            }
        }
        let journal = Journal {
            conn: Mutex::new(Self::connect(&path)?),
            path,
        };
        {
            let mut conn = journal.lock()?;
            let tx = conn.transaction().map_err(|e| journal.err(e))?;
            for (k, v) in &meta.fields {
                tx.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                    params![k, v],
                )
                .map_err(|e| journal.err(e))?;
            }
            tx.commit().map_err(|e| journal.err(e))?;
        }
        Ok(journal)
    }

    /// Opens an existing journal as it is (reports, comparisons).
    ///
    /// Errors: [`SearchError::NothingToResume`] when `run_dir` has no
    /// journal file; [`SearchError::Journal`] for SQLite errors.
    pub fn open(run_dir: &Path) -> Result<Journal, SearchError> {
        let path = Self::path_in(run_dir);
        if !path.is_file() {
            return Err(SearchError::NothingToResume { path });
        }
        Ok(Journal {
            conn: Mutex::new(Self::connect(&path)?),
            path,
        })
    }

    /// Reopens a journal to continue its search: `meta` must match the stored
    /// identity; trials that were running when the search stopped go back to
    /// pending.
    ///
    /// Errors: [`SearchError::NothingToResume`] without a journal,
    /// [`SearchError::ResumeMismatch`] naming every differing field,
    /// [`SearchError::Journal`] for SQLite errors.
    pub fn resume(run_dir: &Path, meta: &RunMeta) -> Result<Journal, SearchError> {
        let journal = Self::open(run_dir)?;
        let stored = journal.meta()?;
        let mut differences = Vec::new();
        let keys: std::collections::BTreeSet<&String> =
            stored.fields.keys().chain(meta.fields.keys()).collect();
        for k in keys {
            let (a, b) = (stored.fields.get(k), meta.fields.get(k));
            if a != b {
                differences.push(format!(
                    "{k}: journal has {}, this run has {}",
                    a.map_or("nothing".to_string(), |s| format!("`{s}`")),
                    b.map_or("nothing".to_string(), |s| format!("`{s}`"))
                ));
            }
        }
        if !differences.is_empty() {
            return Err(SearchError::ResumeMismatch {
                path: journal.path.clone(),
                differences: differences.join("; "),
            });
        }
        journal
            .lock()?
            .execute(
                "UPDATE trials SET status = 'pending' WHERE status = 'running'",
                [],
            )
            .map_err(|e| journal.err(e))?;
        Ok(journal)
    }

    /// The journal file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, SearchError> {
        self.conn
            .lock()
            .map_err(|_| self.err("a worker panicked while holding the journal"))
    }

    /// The stored run identity.
    ///
    /// Errors: [`SearchError::Journal`].
    pub fn meta(&self) -> Result<RunMeta, SearchError> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare("SELECT key, value FROM meta ORDER BY key")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut meta = RunMeta::default();
        for row in rows {
            let (k, v) = row.map_err(|e| self.err(e))?;
            meta.fields.insert(k, v);
        }
        Ok(meta)
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
        let conn = self.lock()?;
        let eval = evaluation
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| self.err(e))?;
        let t = now();
        let finished = status.is_finished().then_some(t);
        conn.execute(
            "INSERT INTO trials (genome_id, genome, origin, status, evaluation, created_at, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![genome_id, genome_json, origin, status.as_str(), eval, t, finished],
        )
        .map_err(|e| self.err(e))?;
        Ok(conn.last_insert_rowid() as u64)
    }

    /// Marks a pending trial running (counts an attempt).
    ///
    /// Errors: [`SearchError::Journal`].
    pub fn start(&self, number: u64) -> Result<(), SearchError> {
        self.lock()?
            .execute(
                "UPDATE trials SET status = 'running', started_at = ?2, attempts = attempts + 1
                 WHERE number = ?1",
                params![number as i64, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Puts a running trial back to pending (its evaluation was stopped by
    /// something outside the candidate); `--resume` evaluates it again.
    ///
    /// Errors: [`SearchError::Journal`].
    pub fn requeue(&self, number: u64) -> Result<(), SearchError> {
        self.lock()?
            .execute(
                "UPDATE trials SET status = 'pending', started_at = NULL WHERE number = ?1",
                params![number as i64],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
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
        let eval = evaluation
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| self.err(e))?;
        self.lock()?
            .execute(
                "UPDATE trials SET status = ?2, evaluation = ?3, error = ?4, finished_at = ?5
                 WHERE number = ?1",
                params![number as i64, status.as_str(), eval, error, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every trial, by number.
    ///
    /// Errors: [`SearchError::Journal`], also for a row whose status or
    /// evaluation does not parse.
    pub fn trials(&self) -> Result<Vec<TrialRecord>, SearchError> {
        self.query("SELECT number, genome_id, genome, origin, status, evaluation, error, created_at, started_at, finished_at, attempts FROM trials ORDER BY number", [])
    }

    /// The trial of a content id, if any.
    ///
    /// Errors: as [`Journal::trials`].
    pub fn find(&self, genome_id: &str) -> Result<Option<TrialRecord>, SearchError> {
        Ok(self
            .query("SELECT number, genome_id, genome, origin, status, evaluation, error, created_at, started_at, finished_at, attempts FROM trials WHERE genome_id = ?1", [genome_id])?
            .pop())
    }

    fn query<P: rusqlite::Params>(&self, sql: &str, p: P) -> Result<Vec<TrialRecord>, SearchError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(p, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, f64>(7)?,
                    r.get::<_, Option<f64>>(8)?,
                    r.get::<_, Option<f64>>(9)?,
                    r.get::<_, i64>(10)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (number, genome_id, genome, origin, status, eval, error, c, s, f, attempts) =
                row.map_err(|e| self.err(e))?;
            let status = Status::parse(&status)
                .ok_or_else(|| self.err(format!("trial {number}: unknown status `{status}`")))?;
            let evaluation = eval
                .map(|e| serde_json::from_str(&e))
                .transpose()
                .map_err(|e| self.err(format!("trial {number}: evaluation: {e}")))?;
            out.push(TrialRecord {
                number: number as u64,
                genome_id,
                genome,
                origin,
                status,
                evaluation,
                error,
                created_at: c,
                started_at: s,
                finished_at: f,
                attempts: attempts as u32,
            });
        }
        Ok(out)
    }

    /// Whether a journal exists in `run_dir`.
    pub fn exists_in(run_dir: &Path) -> bool {
        Self::path_in(run_dir).is_file()
    }

    /// Writes nothing; kept for symmetry with a server-backed journal that
    /// would release its lease here.
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

#[allow(dead_code)]
fn _assert_sync() {
    fn is_sync<T: Sync + Send>() {}
    is_sync::<Journal>();
}

#[cfg(test)]
mod tests {
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
}
