//! Users, their tokens and passwords, and dashboard sessions in the redb store (tables
//! `users`, `user_tokens`, `sessions`; see the table in `mod.rs`). A password change ends
//! the user's sessions in the same transaction.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable};

use super::{decode, encode, RedbStore, SESSIONS, USERS, USER_TOKENS};
use crate::store::{
    ChangeRecord, EntityKind, Revision, Session, SessionStore, StoreError, User, UserStore,
};

impl UserStore for RedbStore {
    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            Ok(Self::read_all::<User>(&tx, EntityKind::User)?
                .into_values()
                .collect())
        })
    }

    fn user_by_token(&self, token_sha256: &str) -> Result<Option<User>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let Some(name) = tx
                .open_table(USER_TOKENS)?
                .get(token_sha256)?
                .map(|v| v.value().to_owned())
            else {
                return Ok(None);
            };
            let users = tx.open_table(USERS)?;
            let Some(v) = users.get(name.as_str())? else {
                return Ok(None);
            };
            Ok(Some(decode(|| format!("user {name:?}"), v.value())?))
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let users = tx.open_table(USERS)?;
            let Some(v) = users.get(name)? else {
                return Ok(None);
            };
            Ok(Some(decode(|| format!("user {name:?}"), v.value())?))
        })
    }

    fn set_password(
        &self,
        name: &str,
        password_phc: &str,
        author: &str,
        at: DateTime<Utc>,
    ) -> Result<Revision, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_write()?;
            let number = Self::head(&tx)? + 1;
            let user = {
                let mut users = tx.open_table(USERS)?;
                let Some(v) = users.get(name)?.map(|v| v.value().to_vec()) else {
                    return Err(StoreError::NotFound {
                        entity: "user",
                        id: name.to_owned(),
                    });
                };
                let mut user: User = decode(|| format!("user {name:?}"), &v)?;
                user.password_phc = Some(password_phc.to_owned());
                users.insert(name, encode(&user).as_slice())?;
                user
            };
            {
                let mut sessions = tx.open_table(SESSIONS)?;
                let mut theirs = Vec::new();
                for row in sessions.iter()? {
                    let (k, v) = row?;
                    // A session that cannot be read is dropped with the others.
                    let of = serde_json::from_slice::<Session>(v.value()).map(|s| s.user);
                    if of.as_deref().map_or(true, |u| u == name) {
                        theirs.push(k.value().to_owned());
                    }
                }
                for k in theirs {
                    sessions.remove(k.as_str())?;
                }
            }
            let revision = Revision {
                number,
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
            Self::append_revision(&tx, &revision)?;
            tx.commit()?;
            Ok(revision)
        })
    }

    fn add_user(&self, user: &User, author: &str) -> Result<Revision, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_write()?;
            let head = Self::head(&tx)?;
            {
                let mut users = tx.open_table(USERS)?;
                if users.get(user.name.as_str())?.is_some() {
                    return Err(StoreError::Exists {
                        entity: "user",
                        id: user.name.clone(),
                    });
                }
                users.insert(user.name.as_str(), encode(user).as_slice())?;
                tx.open_table(USER_TOKENS)?
                    .insert(user.token_sha256.as_str(), user.name.as_str())?;
            }
            let revision = crate::store::user_added_revision(head + 1, author, user);
            Self::append_revision(&tx, &revision)?;
            tx.commit()?;
            Ok(revision)
        })
    }
}

impl SessionStore for RedbStore {
    fn put_session(&self, id_sha256: &str, session: &Session) -> Result<(), StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_write()?;
            tx.open_table(SESSIONS)?
                .insert(id_sha256, encode(session).as_slice())?;
            tx.commit()?;
            Ok(())
        })
    }

    fn session(&self, id_sha256: &str) -> Result<Option<Session>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(SESSIONS)?;
            let Some(v) = t.get(id_sha256)? else {
                return Ok(None);
            };
            Ok(Some(decode(|| "a session".to_owned(), v.value())?))
        })
    }

    fn delete_session(&self, id_sha256: &str) -> Result<(), StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_write()?;
            tx.open_table(SESSIONS)?.remove(id_sha256)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn purge_sessions(&self, idle_before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_write()?;
            let mut gone = Vec::new();
            {
                let mut t = tx.open_table(SESSIONS)?;
                for row in t.iter()? {
                    let (k, v) = row?;
                    let stale = serde_json::from_slice::<Session>(v.value())
                        .map_or(true, |s| s.last_seen < idle_before);
                    if stale {
                        gone.push(k.value().to_owned());
                    }
                }
                for k in &gone {
                    t.remove(k.as_str())?;
                }
            }
            tx.commit()?;
            Ok(gone.len())
        })
    }
}
