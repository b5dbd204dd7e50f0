//! Users (`users`, found by name or token SHA-256) and dashboard sessions (`sessions`) in
//! PostgreSQL. Adding a user and setting a password are revisions of the change log
//! (written under the head row's lock); a password change ends the user's sessions in
//! the same transaction.

use chrono::{DateTime, Utc};

use super::catalogue::{append_revision, lock_head};
use super::off_worker;
use super::{decode, encode, is_unique_violation, PgStore};
use crate::store::{
    ChangeRecord, EntityKind, Revision, Session, SessionStore, StoreError, User, UserStore,
};

fn user_of(name: &str, body: super::JsonText<'_>) -> Result<User, StoreError> {
    let user: User = decode(|| format!("user {name:?}"), body)?;
    if user.name != name {
        return Err(StoreError::Corrupt {
            what: format!("user {name:?}"),
            problem: format!("it is stored under another name ({:?})", user.name),
        });
    }
    Ok(user)
}

impl UserStore for PgStore {
    fn users(&self) -> Result<Vec<User>, StoreError> {
        off_worker(|| {
            let rows = self
                .client()?
                .query("SELECT name, body FROM users ORDER BY name", &[])?;
            rows.into_iter()
                .map(|row| user_of(row.get(0), row.get(1)))
                .collect()
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        off_worker(|| {
            self.client()?
                .query_opt("SELECT name, body FROM users WHERE name = $1", &[&name])?
                .map(|row| user_of(row.get(0), row.get(1)))
                .transpose()
        })
    }

    fn user_by_token(&self, token_sha256: &str) -> Result<Option<User>, StoreError> {
        off_worker(|| {
            self.client()?
                .query_opt(
                    "SELECT name, body FROM users WHERE token_sha256 = $1",
                    &[&token_sha256],
                )?
                .map(|row| user_of(row.get(0), row.get(1)))
                .transpose()
        })
    }

    fn add_user(&self, user: &User, author: &str) -> Result<Revision, StoreError> {
        off_worker(|| {
            let mut client = self.client()?;
            let mut tx = client.transaction()?;
            let (_, last) = lock_head(&mut tx)?;
            let taken = tx.query_opt(
                "SELECT name FROM users WHERE name = $1 OR token_sha256 = $2",
                &[&user.name, &user.token_sha256],
            )?;
            if let Some(row) = taken {
                let name: String = row.get(0);
                return Err(StoreError::Exists {
                    entity: if name == user.name {
                        "user"
                    } else {
                        "user with this token"
                    },
                    id: user.name.clone(),
                });
            }
            let inserted = tx.execute(
                "INSERT INTO users (name, token_sha256, body) VALUES ($1, $2, $3)",
                &[&user.name, &user.token_sha256, &encode(user)],
            );
            match inserted {
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Exists {
                        entity: "user",
                        id: user.name.clone(),
                    })
                }
                other => other?,
            };
            let revision = crate::store::user_added_revision(last + 1, author, user);
            append_revision(&mut tx, &revision)?;
            tx.commit()?;
            Ok(revision)
        })
    }

    fn set_password(
        &self,
        name: &str,
        password_phc: &str,
        author: &str,
        at: DateTime<Utc>,
    ) -> Result<Revision, StoreError> {
        off_worker(|| {
            let mut client = self.client()?;
            let mut tx = client.transaction()?;
            let (_, last) = lock_head(&mut tx)?;
            let Some(row) = tx.query_opt(
                "SELECT name, body FROM users WHERE name = $1 FOR UPDATE",
                &[&name],
            )?
            else {
                return Err(StoreError::NotFound {
                    entity: "user",
                    id: name.to_owned(),
                });
            };
            let mut user = user_of(row.get(0), row.get(1))?;
            user.password_phc = Some(password_phc.to_owned());
            tx.execute(
                "UPDATE users SET body = $2 WHERE name = $1",
                &[&name, &encode(&user)],
            )?;
            tx.execute("DELETE FROM sessions WHERE user_name = $1", &[&name])?;
            let revision = Revision {
                number: last + 1,
                author: author.to_owned(),
                at,
                comment: format!("password of user {name} set"),
                changes: vec![ChangeRecord {
                    entity: EntityKind::User,
                    id: name.to_owned(),
                    before: None,
                    after: Some(user.public()),
                }],
                event: None,
            };
            append_revision(&mut tx, &revision)?;
            tx.commit()?;
            Ok(revision)
        })
    }
}

impl SessionStore for PgStore {
    fn put_session(&self, id_sha256: &str, session: &Session) -> Result<(), StoreError> {
        off_worker(|| {
            self.client()?.execute(
                "INSERT INTO sessions (id_sha256, user_name, last_seen, body) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id_sha256) DO UPDATE
                 SET user_name = EXCLUDED.user_name, last_seen = EXCLUDED.last_seen,
                     body = EXCLUDED.body",
                &[
                    &id_sha256,
                    &session.user,
                    &session.last_seen,
                    &encode(session),
                ],
            )?;
            Ok(())
        })
    }

    fn session(&self, id_sha256: &str) -> Result<Option<Session>, StoreError> {
        off_worker(|| {
            self.client()?
                .query_opt(
                    "SELECT body FROM sessions WHERE id_sha256 = $1",
                    &[&id_sha256],
                )?
                .map(|row| decode(|| "a session".to_owned(), row.get(0)))
                .transpose()
        })
    }

    fn delete_session(&self, id_sha256: &str) -> Result<(), StoreError> {
        off_worker(|| {
            self.client()?
                .execute("DELETE FROM sessions WHERE id_sha256 = $1", &[&id_sha256])?;
            Ok(())
        })
    }

    /// Compares `last_seen` in PostgreSQL, which keeps microseconds: a session seen less
    /// than a microsecond before `idle_before` may be kept until the next purge.
    fn purge_sessions(&self, idle_before: DateTime<Utc>) -> Result<usize, StoreError> {
        off_worker(|| {
            let n = self
                .client()?
                .execute("DELETE FROM sessions WHERE last_seen < $1", &[&idle_before])?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}
