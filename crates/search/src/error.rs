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
    /// No journal file where one was expected (resume, reports).
    #[error("--resume: {path} holds no search journal")]
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
