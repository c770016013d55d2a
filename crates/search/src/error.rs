use std::path::PathBuf;

/// Errors of the search, its journal and its reports.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("journal {path}: {message}")]
    Journal { path: PathBuf, message: String },
    #[error(
        "{path} holds a different search ({differences}); resume it with the same options or choose another run folder"
    )]
    ResumeMismatch { path: PathBuf, differences: String },
    #[error(
        "{path} already holds a search journal; pass --resume to continue it or choose another run folder"
    )]
    AlreadyExists { path: PathBuf },
    #[error("--resume: {path} holds no search journal")]
    NothingToResume { path: PathBuf },
    #[error("cannot write {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
    #[error(
        "the search stopped: {reason}. The {finished} trials finished so far are kept in the journal; fix the cause and continue with --resume (the stopped trial is evaluated again)"
    )]
    Stopped { reason: String, finished: usize },
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
