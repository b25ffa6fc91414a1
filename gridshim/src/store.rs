//! SQLite persistence: every record of the simulation is one JSON row keyed by (kind, key), so a
//! restart of gridshim loses nothing. The in-memory world is the working copy; each change is
//! written through at once.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A row is not valid JSON for its kind.
    #[error("corrupt {kind} row {key}: {source}")]
    Corrupt {
        /// Kind.
        kind: String,
        /// Key.
        key: String,
        /// Cause.
        source: serde_json::Error,
    },
}

/// The store.
pub struct Store {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating) the database; `None` keeps it in memory. `reset` empties it.
    pub fn open(path: Option<&Path>, reset: bool) -> Result<Store, StoreError> {
        let conn = match path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        // WAL + NORMAL: durable across a process restart, fast enough for 1,000 VMs.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS records (
                kind TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (kind, key)
            );",
        )?;
        if reset {
            conn.execute("DELETE FROM records", [])?;
        }
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// Writes one record.
    pub fn put<T: Serialize>(&self, kind: &str, key: &str, value: &T) -> Result<(), StoreError> {
        let json = serde_json::to_string(value).expect("records always serialise");
        self.conn.lock().expect("store lock").execute(
            "INSERT INTO records (kind, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
            params![kind, key, json],
        )?;
        Ok(())
    }

    /// Deletes one record (absent is fine).
    pub fn delete(&self, kind: &str, key: &str) -> Result<(), StoreError> {
        self.conn.lock().expect("store lock").execute(
            "DELETE FROM records WHERE kind = ?1 AND key = ?2",
            params![kind, key],
        )?;
        Ok(())
    }

    /// One record.
    pub fn get<T: DeserializeOwned>(&self, kind: &str, key: &str) -> Result<Option<T>, StoreError> {
        let conn = self.conn.lock().expect("store lock");
        let v: Option<String> = conn
            .query_row(
                "SELECT value FROM records WHERE kind = ?1 AND key = ?2",
                params![kind, key],
                |r| r.get(0),
            )
            .optional()?;
        v.map(|s| {
            serde_json::from_str(&s).map_err(|source| StoreError::Corrupt {
                kind: kind.into(),
                key: key.into(),
                source,
            })
        })
        .transpose()
    }

    /// Every record of a kind.
    pub fn all<T: DeserializeOwned>(&self, kind: &str) -> Result<Vec<(String, T)>, StoreError> {
        let conn = self.conn.lock().expect("store lock");
        let mut stmt = conn.prepare("SELECT key, value FROM records WHERE kind = ?1")?;
        let rows = stmt.query_map(params![kind], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, value) = row?;
            let v = serde_json::from_str(&value).map_err(|source| StoreError::Corrupt {
                kind: kind.into(),
                key: key.clone(),
                source,
            })?;
            out.push((key, v));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete_all() {
        let s = Store::open(None, false).unwrap();
        s.put("k", "a", &1u32).unwrap();
        s.put("k", "a", &2u32).unwrap();
        s.put("k", "b", &3u32).unwrap();
        assert_eq!(s.get::<u32>("k", "a").unwrap(), Some(2));
        assert_eq!(s.all::<u32>("k").unwrap().len(), 2);
        s.delete("k", "a").unwrap();
        assert_eq!(s.get::<u32>("k", "a").unwrap(), None);
    }
}
