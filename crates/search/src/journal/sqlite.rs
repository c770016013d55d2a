//! The default back end: `journal.sqlite` in the run folder (WAL), one
//! writing process at a time (the `lease` table).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Backend, Holder, LeaseOptions, Role, Row, RunMeta, SCHEMA_VERSION, Select, Status};
use crate::SearchError;

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
);
CREATE TABLE IF NOT EXISTS lease (
    role         TEXT PRIMARY KEY,
    holder       TEXT NOT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    proc_start   INTEGER,
    heartbeat_at REAL NOT NULL,
    acquired_at  REAL NOT NULL
);";

const COLUMNS: &str = "number, genome_id, genome, origin, status, evaluation, error, created_at, \
                       started_at, finished_at, attempts";

/// `journal.sqlite` of one run folder.
pub(super) struct Sqlite {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Sqlite {
    /// Opens (or creates) the file, checks its schema version and upgrades a
    /// journal from before versioning.
    pub(super) fn open(path: &Path) -> Result<Sqlite, SearchError> {
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
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(SearchError::Schema {
                path: path.to_path_buf(),
                found: version,
                expected: SCHEMA_VERSION,
            });
        }
        conn.execute_batch(SCHEMA).map_err(err)?;
        if version < SCHEMA_VERSION {
            // 0 (before versioning) and 1 differ from 2 only by the lease table.
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(err)?;
        }
        Ok(Sqlite {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> SearchError {
        SearchError::Journal {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, SearchError> {
        self.conn
            .lock()
            .map_err(|_| self.err("a worker panicked while holding the journal"))
    }

    fn exec(&self, sql: &str, p: impl rusqlite::Params) -> Result<usize, SearchError> {
        self.lock()?.execute(sql, p).map_err(|e| self.err(e))
    }
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        number: r.get(0)?,
        genome_id: r.get(1)?,
        genome: r.get(2)?,
        origin: r.get(3)?,
        status: r.get(4)?,
        evaluation: r.get(5)?,
        error: r.get(6)?,
        created_at: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
        attempts: r.get(10)?,
    })
}

impl Backend for Sqlite {
    fn location(&self) -> &Path {
        &self.path
    }

    fn create(&self, meta: &RunMeta, _options: &LeaseOptions) -> Result<(), SearchError> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let used: i64 = tx
            .query_row(
                "SELECT (SELECT COUNT(*) FROM meta) + (SELECT COUNT(*) FROM trials)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if used > 0 {
            return Err(SearchError::AlreadyExists {
                path: self.path.clone(),
            });
        }
        for (k, v) in &meta.fields {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![k, v],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn meta(&self) -> Result<RunMeta, SearchError> {
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

    fn rows(&self, select: Select<'_>) -> Result<Vec<Row>, SearchError> {
        let conn = self.lock()?;
        let (sql, arg) = match select {
            Select::All => (
                format!("SELECT {COLUMNS} FROM trials ORDER BY number"),
                None,
            ),
            Select::GenomeId(id) => (
                format!("SELECT {COLUMNS} FROM trials WHERE genome_id = ?1"),
                Some(id),
            ),
        };
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = match arg {
            Some(id) => stmt.query_map([id], read_row),
            None => stmt.query_map([], read_row),
        }
        .map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e))).collect()
    }

    fn insert(&self, row: &Row) -> Result<u64, SearchError> {
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO trials (genome_id, genome, origin, status, evaluation, created_at, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                row.genome_id,
                row.genome,
                row.origin,
                row.status,
                row.evaluation,
                row.created_at,
                row.finished_at
            ],
        )
        .map_err(|e| self.err(e))?;
        Ok(conn.last_insert_rowid() as u64)
    }

    fn start(&self, number: u64, _holder: &str) -> Result<(), SearchError> {
        self.exec(
            "UPDATE trials SET status = 'running', started_at = ?2, attempts = attempts + 1
             WHERE number = ?1",
            params![number as i64, super::now()],
        )?;
        Ok(())
    }

    fn requeue(&self, number: u64) -> Result<(), SearchError> {
        self.exec(
            "UPDATE trials SET status = 'pending', started_at = NULL WHERE number = ?1",
            params![number as i64],
        )?;
        Ok(())
    }

    fn finish(
        &self,
        number: u64,
        _holder: Option<&str>,
        status: Status,
        evaluation: Option<&str>,
        error: Option<&str>,
    ) -> Result<bool, SearchError> {
        let n = self.exec(
            "UPDATE trials SET status = ?2, evaluation = ?3, error = ?4, finished_at = ?5
             WHERE number = ?1",
            params![
                number as i64,
                status.as_str(),
                evaluation,
                error,
                super::now()
            ],
        )?;
        Ok(n == 1)
    }

    fn requeue_running(&self) -> Result<(), SearchError> {
        self.exec(
            "UPDATE trials SET status = 'pending' WHERE status = 'running'",
            [],
        )?;
        Ok(())
    }

    fn acquire(&self, holder: &Holder, role: Role, grace: Duration) -> Result<(), SearchError> {
        if role != Role::Search {
            return Err(super::not_shared());
        }
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let current = tx
            .query_row(
                "SELECT holder, host, pid, proc_start, heartbeat_at FROM lease WHERE role = ?1",
                [role.as_str()],
                |r| {
                    Ok((
                        Holder {
                            id: r.get(0)?,
                            host: r.get(1)?,
                            pid: r.get::<_, i64>(2)? as u32,
                            proc_start: r.get::<_, Option<i64>>(3)?.map(|s| s as u64),
                        },
                        r.get::<_, f64>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let now = super::now();
        if let Some((other, beat)) = current {
            let age = (now - beat).max(0.0);
            let alive = age < grace.as_secs_f64() && !other.is_gone_from_this_host();
            if alive && other.id != holder.id {
                return Err(SearchError::Busy {
                    path: self.path.clone(),
                    holder: other.describe(),
                    age: format!("{age:.0} s"),
                    grace: format!("{} s", grace.as_secs()),
                });
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO lease (role, holder, host, pid, proc_start, heartbeat_at, acquired_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![
                role.as_str(),
                holder.id,
                holder.host,
                holder.pid as i64,
                holder.proc_start.map(|s| s as i64),
                now
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn heartbeat(&self, holder: &Holder) -> Result<bool, SearchError> {
        let n = self.exec(
            "UPDATE lease SET heartbeat_at = ?2 WHERE holder = ?1",
            params![holder.id, super::now()],
        )?;
        Ok(n == 1)
    }

    fn release(&self, holder: &Holder) -> Result<(), SearchError> {
        self.exec("DELETE FROM lease WHERE holder = ?1", [&holder.id])?;
        Ok(())
    }
}
