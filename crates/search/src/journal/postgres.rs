//! The shared back end: runs in a PostgreSQL database, reached by workers
//! on any number of machines. Same rows as the SQLite journal, keyed by run
//! name, plus each process's lease (`kiln_leases`) and the holder of each
//! running trial. Times are the server's clock, so machines whose clocks
//! differ agree on who is stale.
//!
//! A worker claims with `SELECT ... FOR UPDATE SKIP LOCKED` (two claims
//! never return the same trial), after sending back the running trials
//! whose holder stopped heart-beating for the run's grace period (to failed
//! after its maximum attempts). A finish writes only while its holder still
//! has the trial. A lost connection (the server restarted) is retried with
//! backoff for up to two minutes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls};

use super::backend::{Backend, LeaseOptions, Role, Row, Select};
use super::{Holder, RunMeta, SCHEMA_VERSION, Status};
use crate::SearchError;

/// The server's clock in Unix seconds.
const NOW: &str = "EXTRACT(EPOCH FROM clock_timestamp())::float8";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kiln_schema (version BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS kiln_runs (
    run          TEXT PRIMARY KEY,
    finished     BOOLEAN NOT NULL DEFAULT FALSE,
    grace_s      DOUBLE PRECISION NOT NULL,
    max_attempts BIGINT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS kiln_meta (
    run   TEXT NOT NULL REFERENCES kiln_runs (run) ON DELETE CASCADE,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run, key)
);
CREATE TABLE IF NOT EXISTS kiln_trials (
    run         TEXT NOT NULL REFERENCES kiln_runs (run) ON DELETE CASCADE,
    number      BIGINT NOT NULL,
    genome_id   TEXT NOT NULL,
    genome      TEXT NOT NULL,
    origin      TEXT NOT NULL,
    status      TEXT NOT NULL,
    evaluation  TEXT,
    error       TEXT,
    created_at  DOUBLE PRECISION NOT NULL,
    started_at  DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    attempts    BIGINT NOT NULL DEFAULT 0,
    holder      TEXT,
    PRIMARY KEY (run, number),
    UNIQUE (run, genome_id)
);
CREATE INDEX IF NOT EXISTS kiln_trials_by_status ON kiln_trials (run, status, number);
CREATE TABLE IF NOT EXISTS kiln_leases (
    run          TEXT NOT NULL,
    holder       TEXT NOT NULL,
    role         TEXT NOT NULL,
    host         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    proc_start   BIGINT,
    heartbeat_at DOUBLE PRECISION NOT NULL,
    acquired_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run, holder)
);
CREATE TABLE IF NOT EXISTS kiln_files (
    run     TEXT NOT NULL REFERENCES kiln_runs (run) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    content BYTEA NOT NULL,
    PRIMARY KEY (run, name)
);";

const COLUMNS: &str = "number, genome_id, genome, origin, status, evaluation, error, created_at, \
                       started_at, finished_at, attempts";

/// How long a lost connection is retried before the error is returned.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// A run in a PostgreSQL database.
pub(super) struct Postgres {
    config: Config,
    run: String,
    location: PathBuf,
    password: Option<String>,
    client: Mutex<Option<Client>>,
}

impl Postgres {
    /// Connects (once, 10 s at most: an unreachable database is an error
    /// at once), creates the schema when missing and checks its version.
    pub(super) fn connect(url: &str, run: &str) -> Result<Postgres, SearchError> {
        let location = PathBuf::from(super::location::Location::display(
            &super::Location::Postgres {
                url: url.into(),
                run: run.into(),
            },
        ));
        let mut config: Config = url.parse().map_err(|e| SearchError::Journal {
            path: location.clone(),
            message: format!("not a PostgreSQL URL: {e}"),
        })?;
        config.connect_timeout(Duration::from_secs(10));
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let pg = Postgres {
            config,
            run: run.into(),
            location,
            password,
            client: Mutex::new(None),
        };
        let client = pg.config.connect(NoTls).map_err(|e| pg.err(&e))?;
        *pg.client.lock().map_err(|_| pg.poisoned())? = Some(client);
        pg.with(|c| {
            let mut tx = c.transaction()?;
            // One process creates the schema; the others wait for it.
            tx.execute("SELECT pg_advisory_xact_lock(7263541)", &[])?;
            tx.batch_execute(SCHEMA)?;
            let found: Option<i64> = tx
                .query_opt("SELECT version FROM kiln_schema", &[])?
                .map(|r| r.get(0));
            if found.is_none() {
                tx.execute(
                    "INSERT INTO kiln_schema (version) VALUES ($1)",
                    &[&SCHEMA_VERSION],
                )?;
            }
            tx.commit()?;
            Ok(found)
        })
        .and_then(|found| match found {
            Some(v) if v != SCHEMA_VERSION => Err(SearchError::Schema {
                path: pg.location.clone(),
                found: v,
                expected: SCHEMA_VERSION,
            }),
            _ => Ok(pg),
        })
    }

    /// Every run in the database, by name, with whether it is finished.
    pub(super) fn runs(&self) -> Result<Vec<(String, bool)>, SearchError> {
        let rows =
            self.with(|c| c.query("SELECT run, finished FROM kiln_runs ORDER BY run", &[]))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn poisoned(&self) -> SearchError {
        SearchError::Journal {
            path: self.location.clone(),
            message: "a worker panicked while holding the journal".into(),
        }
    }

    /// The error's text (a server error's code and message), with the
    /// password scrubbed should the driver ever quote it.
    fn err(&self, e: &postgres::Error) -> SearchError {
        let mut message = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        };
        if let Some(p) = self.password.as_deref().filter(|p| !p.is_empty()) {
            message = message.replace(p, "***");
        }
        SearchError::Journal {
            path: self.location.clone(),
            message,
        }
    }

    /// Runs `f` on the connection; a lost connection, a restarting server
    /// or a deadlock is retried with backoff (0.2 s doubling to 5 s) for
    /// [`RETRY_FOR`], on a new connection when the old one is gone.
    fn with<T>(
        &self,
        mut f: impl FnMut(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, SearchError> {
        let begun = Instant::now();
        let mut wait = Duration::from_millis(200);
        let mut guard = self.client.lock().map_err(|_| self.poisoned())?;
        loop {
            let result = match guard.as_mut() {
                Some(client) => f(client),
                None => match self.config.connect(NoTls) {
                    Ok(client) => {
                        *guard = Some(client);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            let e = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !retryable(&e) || begun.elapsed() > RETRY_FOR {
                return Err(self.err(&e));
            }
            if guard.as_ref().is_none_or(|c| c.is_closed()) {
                *guard = None;
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    fn exec(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, SearchError> {
        self.with(|c| c.execute(sql, params))
    }
}

/// A lease row selected as `holder, host, pid, proc_start, NOW - heartbeat_at`: its
/// holder and the heartbeat's age, seconds.
fn lease_row(r: &postgres::Row) -> (Holder, f64) {
    let holder = Holder {
        id: r.get(0),
        host: r.get(1),
        pid: r.get::<_, i64>(2) as u32,
        proc_start: r.get::<_, Option<i64>>(3).map(|s| s as u64),
    };
    (holder, r.get(4))
}

/// Connection losses (no server answer, class 08), a server shutting down or
/// starting (57P01-57P03), deadlocks and serialisation failures.
fn retryable(e: &postgres::Error) -> bool {
    match e.code() {
        None => e.as_db_error().is_none(),
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || c.starts_with("57P") || c == "40P01" || c == "40001"
        }
    }
}

fn read_row(r: &postgres::Row) -> Row {
    Row {
        number: r.get(0),
        genome_id: r.get(1),
        genome: r.get(2),
        origin: r.get(3),
        status: r.get(4),
        evaluation: r.get(5),
        error: r.get(6),
        created_at: r.get(7),
        started_at: r.get(8),
        finished_at: r.get(9),
        attempts: r.get(10),
    }
}

impl Backend for Postgres {
    fn location(&self) -> &Path {
        &self.location
    }

    fn create(&self, meta: &RunMeta, options: &LeaseOptions) -> Result<(), SearchError> {
        let run = &self.run;
        let created = self.with(|c| {
            let mut tx = c.transaction()?;
            let inserted = tx.execute(
                &format!(
                    "INSERT INTO kiln_runs (run, grace_s, max_attempts, created_at)
                     VALUES ($1, $2, $3, {NOW}) ON CONFLICT (run) DO NOTHING"
                ),
                &[
                    run,
                    &options.grace.as_secs_f64(),
                    &i64::from(options.max_attempts),
                ],
            )?;
            if inserted == 1 {
                for (k, v) in &meta.fields {
                    tx.execute(
                        "INSERT INTO kiln_meta (run, key, value) VALUES ($1, $2, $3)",
                        &[run, k, v],
                    )?;
                }
            }
            tx.commit()?;
            Ok(inserted == 1)
        })?;
        if created {
            return Ok(());
        }
        let differences = super::differences(&self.meta()?, meta);
        if differences.is_empty() {
            Err(SearchError::AlreadyExists {
                path: self.location.clone(),
            })
        } else {
            Err(SearchError::ResumeMismatch {
                path: self.location.clone(),
                differences: differences.join("; "),
            })
        }
    }

    fn meta(&self) -> Result<RunMeta, SearchError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT key, value FROM kiln_meta WHERE run = $1 ORDER BY key",
                &[&self.run],
            )
        })?;
        let mut meta = RunMeta::default();
        for r in rows {
            meta.fields.insert(r.get(0), r.get(1));
        }
        Ok(meta)
    }

    fn rows(&self, select: Select<'_>) -> Result<Vec<Row>, SearchError> {
        let rows = self.with(|c| match select {
            Select::All => c.query(
                &format!("SELECT {COLUMNS} FROM kiln_trials WHERE run = $1 ORDER BY number"),
                &[&self.run],
            ),
            Select::GenomeId(id) => c.query(
                &format!("SELECT {COLUMNS} FROM kiln_trials WHERE run = $1 AND genome_id = $2"),
                &[&self.run, &id],
            ),
        })?;
        Ok(rows.iter().map(read_row).collect())
    }

    fn insert(&self, row: &Row) -> Result<u64, SearchError> {
        let number: i64 = self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&self.run])?;
            let n = tx.query_one(
                "INSERT INTO kiln_trials (run, number, genome_id, genome, origin, status, evaluation, created_at, finished_at)
                 VALUES ($1, (SELECT COALESCE(MAX(number), 0) + 1 FROM kiln_trials WHERE run = $1),
                         $2, $3, $4, $5, $6, $7, $8)
                 RETURNING number",
                &[
                    &self.run,
                    &row.genome_id,
                    &row.genome,
                    &row.origin,
                    &row.status,
                    &row.evaluation,
                    &row.created_at,
                    &row.finished_at,
                ],
            )?;
            tx.commit()?;
            Ok(n.get(0))
        })?;
        Ok(number as u64)
    }

    fn start(&self, number: u64, holder: &str) -> Result<(), SearchError> {
        self.exec(
            &format!(
                "UPDATE kiln_trials SET status = 'running', holder = $3, started_at = {NOW},
                 attempts = attempts + 1 WHERE run = $1 AND number = $2"
            ),
            &[&self.run, &(number as i64), &holder],
        )?;
        Ok(())
    }

    fn requeue(&self, number: u64) -> Result<(), SearchError> {
        self.exec(
            "UPDATE kiln_trials SET status = 'pending', started_at = NULL, holder = NULL
             WHERE run = $1 AND number = $2",
            &[&self.run, &(number as i64)],
        )?;
        Ok(())
    }

    fn finish(
        &self,
        number: u64,
        holder: Option<&str>,
        status: Status,
        evaluation: Option<&str>,
        error: Option<&str>,
    ) -> Result<bool, SearchError> {
        let n = self.exec(
            &format!(
                "UPDATE kiln_trials SET status = $3, evaluation = $4, error = $5,
                 finished_at = {NOW}, holder = NULL
                 WHERE run = $1 AND number = $2
                   AND ($6::text IS NULL OR (holder = $6 AND status = 'running'))"
            ),
            &[
                &self.run,
                &(number as i64),
                &status.as_str(),
                &evaluation,
                &error,
                &holder,
            ],
        )?;
        Ok(n == 1)
    }

    fn requeue_running(&self) -> Result<(), SearchError> {
        self.exec(
            "UPDATE kiln_trials SET status = 'pending', holder = NULL, started_at = NULL
             WHERE run = $1 AND status = 'running'",
            &[&self.run],
        )?;
        Ok(())
    }

    fn acquire(&self, holder: &Holder, role: Role, grace: Duration) -> Result<(), SearchError> {
        let busy = self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&self.run])?;
            if role == Role::Search {
                let others = tx.query(
                    &format!(
                        "SELECT holder, host, pid, proc_start, {NOW} - heartbeat_at FROM kiln_leases
                         WHERE run = $1 AND role = 'search' AND holder <> $2"
                    ),
                    &[&self.run, &holder.id],
                )?;
                for r in &others {
                    let (other, age) = lease_row(r);
                    if age < grace.as_secs_f64() && !other.is_gone_from_this_host() {
                        return Ok(Some((other.describe(), age)));
                    }
                }
                tx.execute(
                    "DELETE FROM kiln_leases WHERE run = $1 AND role = 'search'",
                    &[&self.run],
                )?;
            }
            tx.execute(
                &format!(
                    "INSERT INTO kiln_leases (run, holder, role, host, pid, proc_start, heartbeat_at, acquired_at)
                     VALUES ($1, $2, $3, $4, $5, $6, {NOW}, {NOW})
                     ON CONFLICT (run, holder) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at"
                ),
                &[
                    &self.run,
                    &holder.id,
                    &role.as_str(),
                    &holder.host,
                    &i64::from(holder.pid),
                    &holder.proc_start.map(|s| s as i64),
                ],
            )?;
            tx.commit()?;
            Ok(None)
        })?;
        match busy {
            None => Ok(()),
            Some((who, age)) => Err(SearchError::Busy {
                path: self.location.clone(),
                holder: who,
                age: format!("{age:.0} s"),
                grace: format!("{} s", grace.as_secs()),
            }),
        }
    }

    fn heartbeat(&self, holder: &Holder) -> Result<bool, SearchError> {
        let n = self.exec(
            &format!("UPDATE kiln_leases SET heartbeat_at = {NOW} WHERE run = $1 AND holder = $2"),
            &[&self.run, &holder.id],
        )?;
        Ok(n == 1)
    }

    fn release(&self, holder: &Holder) -> Result<(), SearchError> {
        self.exec(
            "DELETE FROM kiln_leases WHERE run = $1 AND holder = $2",
            &[&self.run, &holder.id],
        )?;
        Ok(())
    }

    fn claim(&self, holder: &Holder) -> Result<Option<Row>, SearchError> {
        let row = self.with(|c| {
            let mut tx = c.transaction()?;
            // Trials of holders that stopped heart-beating: back to pending,
            // or failed once they used up the run's attempts.
            tx.execute(
                &format!(
                    "UPDATE kiln_trials t SET
                       status = CASE WHEN t.attempts >= r.max_attempts THEN 'failed' ELSE 'pending' END,
                       error = CASE WHEN t.attempts >= r.max_attempts
                         THEN 'its worker stopped heart-beating in each of ' || t.attempts || ' attempts'
                         ELSE t.error END,
                       finished_at = CASE WHEN t.attempts >= r.max_attempts THEN {NOW} END,
                       started_at = NULL, holder = NULL
                     FROM kiln_runs r
                     WHERE t.run = $1 AND r.run = t.run AND t.status = 'running'
                       AND NOT EXISTS (SELECT 1 FROM kiln_leases l WHERE l.run = t.run
                         AND l.holder = t.holder AND l.heartbeat_at > {NOW} - r.grace_s)"
                ),
                &[&self.run],
            )?;
            let row = tx.query_opt(
                &format!(
                    "UPDATE kiln_trials SET status = 'running', holder = $2, started_at = {NOW},
                       attempts = attempts + 1
                     WHERE run = $1 AND number = (
                       SELECT number FROM kiln_trials WHERE run = $1 AND status = 'pending'
                       ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING {COLUMNS}"
                ),
                &[&self.run, &holder.id],
            )?;
            tx.commit()?;
            Ok(row.as_ref().map(read_row))
        })?;
        Ok(row)
    }

    fn run_grace(&self) -> Result<Option<Duration>, SearchError> {
        let grace: Option<f64> = self.with(|c| {
            c.query_opt("SELECT grace_s FROM kiln_runs WHERE run = $1", &[&self.run])
                .map(|r| r.map(|r| r.get(0)))
        })?;
        Ok(grace.and_then(|g| Duration::try_from_secs_f64(g).ok()))
    }

    fn live_workers(&self) -> Result<usize, SearchError> {
        let n: i64 = self.with(|c| {
            c.query_one(
                &format!(
                    "SELECT COUNT(*) FROM kiln_leases l JOIN kiln_runs r ON r.run = l.run
                     WHERE l.run = $1 AND l.role = 'worker' AND l.heartbeat_at > {NOW} - r.grace_s"
                ),
                &[&self.run],
            )
            .map(|r| r.get(0))
        })?;
        Ok(n as usize)
    }

    fn set_finished(&self, finished: bool) -> Result<(), SearchError> {
        self.exec(
            "UPDATE kiln_runs SET finished = $2 WHERE run = $1",
            &[&self.run, &finished],
        )?;
        Ok(())
    }

    fn is_finished(&self) -> Result<bool, SearchError> {
        self.with(|c| {
            c.query_opt(
                "SELECT finished FROM kiln_runs WHERE run = $1",
                &[&self.run],
            )
            .map(|r| r.is_none_or(|r| r.get(0)))
        })
    }

    fn put_file(&self, name: &str, content: &[u8]) -> Result<(), SearchError> {
        self.exec(
            "INSERT INTO kiln_files (run, name, content) VALUES ($1, $2, $3)
             ON CONFLICT (run, name) DO UPDATE SET content = EXCLUDED.content",
            &[&self.run, &name, &content],
        )?;
        Ok(())
    }

    fn file(&self, name: &str) -> Result<Option<Vec<u8>>, SearchError> {
        self.with(|c| {
            c.query_opt(
                "SELECT content FROM kiln_files WHERE run = $1 AND name = $2",
                &[&self.run, &name],
            )
            .map(|r| r.map(|r| r.get(0)))
        })
    }

    fn file_names(&self, prefix: &str) -> Result<Vec<String>, SearchError> {
        // left() rather than LIKE: a prefix holding `_` or `%` matches itself only
        self.with(|c| {
            c.query(
                "SELECT name FROM kiln_files WHERE run = $1 AND left(name, length($2)) = $2 \
                 ORDER BY name",
                &[&self.run, &prefix],
            )
            .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn search_holder(&self) -> Result<Option<(Holder, f64)>, SearchError> {
        self.with(|c| {
            c.query_opt(
                &format!(
                    "SELECT holder, host, pid, proc_start, {NOW} - heartbeat_at FROM kiln_leases
                     WHERE run = $1 AND role = 'search' ORDER BY heartbeat_at DESC LIMIT 1"
                ),
                &[&self.run],
            )
            .map(|r| r.as_ref().map(lease_row))
        })
    }

    fn is_shared(&self) -> bool {
        true
    }
}
