//! The interface both back ends implement, and what it speaks in.

use std::path::Path;
use std::time::Duration;

use super::{Holder, RunMeta, Status};
use crate::SearchError;

/// How leases and stale trials are judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaseOptions {
    /// A holder whose heartbeat is older than this is taken for dead: its
    /// lease may be taken over and (shared runs) its running trials go back
    /// to pending.
    pub grace: Duration,
    /// Shared runs: a trial whose worker died this many times is recorded
    /// failed instead of re-queued.
    pub max_attempts: u32,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            max_attempts: 3,
        }
    }
}

impl LeaseOptions {
    /// How often a holder renews its lease: a quarter of the grace period
    /// (at least every 100 ms, at most every 10 s).
    pub fn heartbeat_interval(&self) -> Duration {
        (self.grace / 4).clamp(Duration::from_millis(100), Duration::from_secs(10))
    }
}

/// What a process holds a lease as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The process that asks (the search): one per run.
    Search,
    /// A process that claims and evaluates trials of a shared run: any
    /// number, each its own lease.
    Worker,
}

impl Role {
    /// `search` or `worker`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Search => "search",
            Role::Worker => "worker",
        }
    }
}

/// A trial row as a back end stores it (statuses and evaluations as text).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based trial number.
    pub number: i64,
    /// The content id.
    pub genome_id: String,
    /// The point as JSON.
    pub genome: String,
    /// How it was proposed.
    pub origin: String,
    /// [`Status::as_str`].
    pub status: String,
    /// The [`Evaluation`] as JSON.
    pub evaluation: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: f64,
    /// Unix seconds.
    pub started_at: Option<f64>,
    /// Unix seconds.
    pub finished_at: Option<f64>,
    /// Evaluations started.
    pub attempts: i64,
}

/// Which rows to read.
#[derive(Debug, Clone, Copy)]
pub enum Select<'a> {
    /// Every trial, by number.
    All,
    /// The trial of one content id.
    GenomeId(&'a str),
}

/// A storage of trials. [`Journal`] is the one user; each method is one
/// statement or one transaction. Shared-run operations (claims, files, run
/// state) answer [`SearchError::Config`] on back ends that cannot share.
#[allow(missing_docs)]
pub trait Backend: Send + Sync {
    /// For messages (credentials left out).
    fn location(&self) -> &Path;
    /// Stores a new run's identity. Errors: [`SearchError::AlreadyExists`]
    /// when the run exists with this identity, [`SearchError::ResumeMismatch`]
    /// when with another.
    fn create(&self, meta: &RunMeta, options: &LeaseOptions) -> Result<(), SearchError>;
    /// The stored identity (empty when the run does not exist).
    fn meta(&self) -> Result<RunMeta, SearchError>;
    /// Trials, by number.
    fn rows(&self, select: Select<'_>) -> Result<Vec<Row>, SearchError>;
    /// Adds a trial, returns its number.
    fn insert(&self, row: &Row) -> Result<u64, SearchError>;
    /// Pending -> running by `holder`, one more attempt.
    fn start(&self, number: u64, holder: &str) -> Result<(), SearchError>;
    /// Running -> pending.
    fn requeue(&self, number: u64) -> Result<(), SearchError>;
    /// Records the end of a trial; with `holder`, only while that holder
    /// still has it running (false otherwise: it was taken back).
    fn finish(
        &self,
        number: u64,
        holder: Option<&str>,
        status: Status,
        evaluation: Option<&str>,
        error: Option<&str>,
    ) -> Result<bool, SearchError>;
    /// Every running trial back to pending (after taking a run over).
    fn requeue_running(&self) -> Result<(), SearchError>;
    /// Takes the lease of `role` for `holder`. Errors: [`SearchError::Busy`]
    /// when a live holder has it.
    fn acquire(&self, holder: &Holder, role: Role, grace: Duration) -> Result<(), SearchError>;
    /// Renews the lease; false when it is no longer this holder's.
    fn heartbeat(&self, holder: &Holder) -> Result<bool, SearchError>;
    /// Gives the lease up.
    fn release(&self, holder: &Holder) -> Result<(), SearchError>;

    /// The grace period the run was created with (shared runs), so every
    /// holder beats often enough for it.
    fn run_grace(&self) -> Result<Option<Duration>, SearchError> {
        Ok(None)
    }
    fn claim(&self, _holder: &Holder) -> Result<Option<Row>, SearchError> {
        Err(not_shared())
    }
    fn live_workers(&self) -> Result<usize, SearchError> {
        Err(not_shared())
    }
    fn set_finished(&self, _finished: bool) -> Result<(), SearchError> {
        Err(not_shared())
    }
    fn is_finished(&self) -> Result<bool, SearchError> {
        Err(not_shared())
    }
    fn put_file(&self, _name: &str, _content: &[u8]) -> Result<(), SearchError> {
        Err(not_shared())
    }
    fn file(&self, _name: &str) -> Result<Option<Vec<u8>>, SearchError> {
        Err(not_shared())
    }
    /// The names of the run's stored files that begin with `prefix`, sorted.
    fn file_names(&self, _prefix: &str) -> Result<Vec<String>, SearchError> {
        Err(not_shared())
    }
    /// The holder of the run's search lease and its heartbeat's age, seconds
    /// (`None`: nobody holds it, e.g. the search stopped cleanly).
    fn search_holder(&self) -> Result<Option<(Holder, f64)>, SearchError> {
        Err(not_shared())
    }
    /// Whether other processes on other machines reach this journal.
    fn is_shared(&self) -> bool {
        false
    }
}

pub(crate) fn not_shared() -> SearchError {
    SearchError::Config(
        "this needs a shared journal (--journal postgres://...); journal.sqlite serves one \
         process"
            .into(),
    )
}
