//! Where a run's journal lives, and how its address is shown (never with a
//! password).

use std::path::{Path, PathBuf};

use super::Journal;
use crate::SearchError;

/// Where a run's journal lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// `journal.sqlite` in this run folder.
    Folder(PathBuf),
    /// A run named `run` in a PostgreSQL database (`postgres://` or
    /// `postgresql://` URL; credentials are never shown, see
    /// [`Location::display`]).
    Postgres {
        /// The connection URL as given.
        url: String,
        /// The run's name (one database holds many runs).
        run: String,
    },
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl Location {
    /// A `--journal` value: a `postgres://` / `postgresql://` URL names a
    /// shared journal holding the run `run`; anything else is an error (the
    /// default journal is the run folder's, [`Location::Folder`]).
    ///
    /// Errors: [`SearchError::Config`] for another scheme or an empty run
    /// name; the message never holds the URL's password.
    pub fn parse(journal: &str, run: &str) -> Result<Location, SearchError> {
        if !is_postgres_url(journal) {
            return Err(SearchError::Config(format!(
                "--journal `{}`: expected a postgres://USER@HOST[:PORT]/DATABASE URL (the default \
                 journal is journal.sqlite in the run folder)",
                redact(journal)
            )));
        }
        if run.trim().is_empty() {
            return Err(SearchError::Config(
                "a shared journal needs a run name".into(),
            ));
        }
        Ok(Location::Postgres {
            url: journal.to_string(),
            run: run.to_string(),
        })
    }

    /// Where the run of `run_dir` is journalled: its folder's journal, or with `url`
    /// the run named `run` (default: `run_dir`'s folder name, as a search names its
    /// shared run) in that database.
    ///
    /// Errors: as [`Location::parse`].
    pub fn of_run(
        run_dir: &Path,
        url: Option<&str>,
        run: Option<&str>,
    ) -> Result<Location, SearchError> {
        let Some(url) = url else {
            return Ok(Location::Folder(run_dir.to_path_buf()));
        };
        let name = run.map(str::to_string).unwrap_or_else(|| {
            run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Location::parse(url, &name)
    }

    /// For messages: the folder's journal path, or
    /// `postgres://user@host/db (run NAME)` with any password left out.
    pub fn display(&self) -> String {
        match self {
            Location::Folder(dir) => Journal::path_in(dir).display().to_string(),
            // a worker asking for the database's runs names none
            Location::Postgres { url, run } if run.is_empty() => redact(url),
            Location::Postgres { url, run } => format!("{} (run {run})", redact(url)),
        }
    }
}

/// True for a `postgres://` or `postgresql://` URL.
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// `url` with the password of its user info and any `password=` parameter
/// replaced by `***`, for messages and stored identities.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            format!("{user}{masked}{}", &authority[at..])
        }
        None => authority.to_string(),
    };
    let tail: Vec<String> = tail
        .split('&')
        .map(|part| match part.find("password=") {
            Some(i) => format!("{}password=***", &part[..i]),
            None => part.to_string(),
        })
        .collect();
    format!("{scheme}{authority}{}", tail.join("&"))
}
