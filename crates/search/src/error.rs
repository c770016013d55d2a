use std::path::PathBuf;

/// Errors of the search, its journal and its reports.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// SQLite (or a stored row) of a journal failed: opening, a statement,
    /// a row that does not parse, a worker that panicked holding it.
    #[error("journal {path}: {message}")]
    Journal {
        /// The journal file (`journal.sqlite`).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// `--resume` with a run identity ([`crate::RunMeta`]) that differs from
    /// the stored one.
    #[error(
        "{path} holds a different search ({differences}); resume it with the same options or choose another run folder"
    )]
    ResumeMismatch {
        /// The journal file.
        path: PathBuf,
        /// Each differing field with both values, `; `-separated.
        differences: String,
    },
    /// A new search in a folder whose journal already holds a run.
    #[error(
        "{path} already holds a search journal; pass --resume to continue it or choose another run folder"
    )]
    AlreadyExists {
        /// The existing journal file.
        path: PathBuf,
    },
    /// Another live process holds the run's lease (a search on the same
    /// run folder or shared run).
    #[error(
        "{path} is in use by a running search: {holder} (last heartbeat {age} ago); wait for it \
         to end or stop it (a lease whose holder died is taken over once its heartbeat is \
         older than {grace})"
    )]
    Busy {
        /// The journal.
        path: PathBuf,
        /// Who holds it (`process 1234 on host h`).
        holder: String,
        /// How long ago it renewed its lease (`3 s`).
        age: String,
        /// After how long a silent holder is taken for dead (`30 s`).
        grace: String,
    },
    /// The journal was written by a kiln with another schema.
    #[error(
        "journal {path} has schema version {found}; this kiln reads version {expected}: use the \
         kiln that wrote it (or a newer one), or start another run"
    )]
    Schema {
        /// The journal.
        path: PathBuf,
        /// The version stored.
        found: i64,
        /// [`crate::journal::SCHEMA_VERSION`].
        expected: i64,
    },
    /// No journal file where one was expected (`--resume`, `report`).
    #[error(
        "no search journal at {path}: not a search run's folder, or its run never began \
         (a search without --resume starts one)"
    )]
    NothingToResume {
        /// The journal path that does not exist.
        path: PathBuf,
    },
    /// A file or folder could not be created, copied or written.
    #[error("cannot write {path}: {message}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        message: String,
    },
    /// Bad options or inputs (a folder without a journal, runs of different
    /// targets), or a search worker that panicked; the text says which.
    #[error("{0}")]
    Config(String),
    /// An evaluator answered [`crate::EvalError::Stop`]: the trial went
    /// back to pending and the search stopped.
    #[error(
        "the search stopped: {reason}. The {finished} trials finished so far are kept in the journal; fix the cause and continue with --resume (the stopped trial is evaluated again)"
    )]
    Stopped {
        /// The trial and the evaluator's message.
        reason: String,
        /// Evaluated trials finished when it stopped (earlier runs included).
        finished: usize,
    },
    /// A report or comparison could not be drawn or read (plot, `front.json`,
    /// a baseline run without an evaluated trial).
    #[error("report: {0}")]
    Report(String),
}

impl SearchError {
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        SearchError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}
