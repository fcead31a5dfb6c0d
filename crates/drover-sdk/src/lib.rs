//! A small SDK for applications that run on Drover, over its HTTP API
//! (Nomad's variables and locks):
//!
//! - [`Lock`]: take a variable's lock, keep it renewed in the background,
//!   learn when it is lost, release it on drop.
//! - [`Election`]: campaign for leadership among replicas, observe who
//!   leads, resign. Each new leader gets a fencing token, the lock
//!   variable's `ModifyIndex` at acquisition, which strictly rises from
//!   one leader to the next, so a resource that remembers the highest
//!   token it has seen can refuse a deposed leader's late writes.
//! - [`Variables`]: typed reads and writes of variables, with
//!   check-and-set.
//!
//! Nothing here talks to a server except through `api-client`.

use api_client::{Client, VarWrite};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

pub use api_client;

/// Errors from the SDK.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("api: {0}")]
    Api(#[from] api_client::ApiError),
    #[error("the server answered without the variable")]
    MissingVariable,
    #[error("value for {path:?}: {message}")]
    Value { path: String, message: String },
}

/// A lock's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockOptions {
    /// The lock lapses unless renewed within this.
    pub ttl: Duration,
    /// After a lapse, no one may take the lock for this long.
    pub lock_delay: Duration,
}

impl Default for LockOptions {
    /// Nomad's defaults: 15 s each.
    fn default() -> LockOptions {
        LockOptions {
            ttl: Duration::from_secs(15),
            lock_delay: Duration::from_secs(15),
        }
    }
}

/// A held lock. Renewed in the background at a third of its TTL; dropped
/// or [`Lock::release`]d, it is given up.
#[derive(Debug)]
pub struct Lock {
    client: Client,
    namespace: String,
    path: String,
    id: String,
    fencing_token: u64,
    lost: watch::Receiver<bool>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl Lock {
    /// Tries once to take the lock; `None` when someone holds it (or a
    /// lapsed lock's delay runs). `items` replace the variable's items.
    pub async fn try_acquire(
        client: &Client,
        namespace: &str,
        path: &str,
        options: LockOptions,
        items: Option<&BTreeMap<String, String>>,
    ) -> Result<Option<Lock>, SdkError> {
        let var = match client
            .var_lock_acquire(namespace, path, options.ttl, options.lock_delay, items)
            .await?
        {
            VarWrite::Written(Some(var)) => var,
            VarWrite::Written(None) => return Err(SdkError::MissingVariable),
            VarWrite::Conflict(_) => return Ok(None),
        };
        let id = var.meta.lock.map(|lock| lock.id).unwrap_or_default();
        let (lost_tx, lost) = watch::channel(false);
        let renewer = tokio::spawn(renew_loop(
            client.clone(),
            namespace.to_string(),
            path.to_string(),
            id.clone(),
            options.ttl,
            lost_tx,
        ));
        Ok(Some(Lock {
            client: client.clone(),
            namespace: namespace.to_string(),
            path: path.to_string(),
            id,
            fencing_token: var.meta.modify_index,
            lost,
            renewer: Some(renewer),
        }))
    }

    /// Waits until the lock is taken, trying every `retry`.
    pub async fn acquire(
        client: &Client,
        namespace: &str,
        path: &str,
        options: LockOptions,
        items: Option<&BTreeMap<String, String>>,
        retry: Duration,
    ) -> Result<Lock, SdkError> {
        loop {
            if let Some(lock) = Lock::try_acquire(client, namespace, path, options, items).await? {
                return Ok(lock);
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// The variable's `ModifyIndex` when this lock was taken: higher for
    /// every later holder.
    pub fn fencing_token(&self) -> u64 {
        self.fencing_token
    }

    /// The lock's ID (it lets the holder write the variable).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether a renewal was refused (the lock lapsed and may be held by
    /// someone else now).
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves once the lock is lost.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        let _ = lost.wait_for(|lost| *lost).await;
    }

    /// Gives the lock up now.
    pub async fn release(mut self) -> Result<(), SdkError> {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        let result = self
            .client
            .var_lock_release(&self.namespace, &self.path, &self.id)
            .await;
        self.id.clear();
        result?;
        Ok(())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        if self.id.is_empty() || self.is_lost() {
            return;
        }
        // Release in the background when a runtime is there to run it;
        // otherwise the TTL lets the lock go.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            let (namespace, path, id) = (self.namespace.clone(), self.path.clone(), self.id.clone());
            runtime.spawn(async move {
                let _ = client.var_lock_release(&namespace, &path, &id).await;
            });
        }
    }
}

async fn renew_loop(
    client: Client,
    namespace: String,
    path: String,
    id: String,
    ttl: Duration,
    lost: watch::Sender<bool>,
) {
    let period = (ttl / 3).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(period).await;
        match client.var_lock_renew(&namespace, &path, &id).await {
            Ok(VarWrite::Written(_)) => {}
            Ok(VarWrite::Conflict(_)) => {
                lost.send_replace(true);
                return;
            }
            // Unreachable for now: keep trying; the TTL decides.
            Err(_) => {}
        }
    }
}

/// The item of an election variable that names the leader.
pub const LEADER_ITEM: &str = "leader";

/// Who leads an election, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The identity the leader campaigned with.
    pub identity: String,
    /// Its fencing token.
    pub fencing_token: u64,
}

/// Leader election among replicas over one lock variable.
#[derive(Debug, Clone)]
pub struct Election {
    client: Client,
    namespace: String,
    path: String,
    options: LockOptions,
}

/// Being the leader. Dropping it resigns.
#[derive(Debug)]
pub struct Leadership {
    lock: Lock,
}

impl Leadership {
    /// Strictly higher than every earlier leader's.
    pub fn fencing_token(&self) -> u64 {
        self.lock.fencing_token()
    }

    /// Resolves when leadership is lost (a renewal was refused).
    pub async fn lost(&self) {
        self.lock.lost().await
    }

    pub fn is_lost(&self) -> bool {
        self.lock.is_lost()
    }

    /// Steps down now.
    pub async fn resign(self) -> Result<(), SdkError> {
        self.lock.release().await
    }
}

impl Election {
    pub fn new(client: Client, namespace: &str, path: &str, options: LockOptions) -> Election {
        Election {
            client,
            namespace: namespace.to_string(),
            path: path.to_string(),
            options,
        }
    }

    /// Waits until this replica leads, as `identity`.
    pub async fn campaign(&self, identity: &str) -> Result<Leadership, SdkError> {
        let items: BTreeMap<String, String> = [(LEADER_ITEM.to_string(), identity.to_string())].into();
        let retry = (self.options.ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let lock = Lock::acquire(
            &self.client,
            &self.namespace,
            &self.path,
            self.options,
            Some(&items),
            retry,
        )
        .await?;
        Ok(Leadership { lock })
    }

    /// Who leads now (`None`: no one holds the lock).
    pub async fn leader(&self) -> Result<Option<Leader>, SdkError> {
        let Some(var) = self.client.var_get(&self.namespace, &self.path).await? else {
            return Ok(None);
        };
        Ok(leader_of(&var))
    }

    /// Waits (a blocking query, up to `wait`) for the election variable to
    /// change after `index`, then says who leads and the index to wait on
    /// next.
    pub async fn observe(&self, index: u64, wait: Duration) -> Result<(Option<Leader>, u64), SdkError> {
        let var = self
            .client
            .var_get_blocking(&self.namespace, &self.path, index, wait)
            .await?;
        Ok(match var {
            Some(var) => (leader_of(&var), var.meta.modify_index),
            None => (None, index),
        })
    }
}

fn leader_of(var: &api_types::Variable) -> Option<Leader> {
    var.meta.lock.as_ref()?;
    Some(Leader {
        identity: var.items.get(LEADER_ITEM).cloned().unwrap_or_default(),
        fencing_token: var.meta.modify_index,
    })
}

/// A value read from a variable, with the index to pass as `cas` when
/// writing it back.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub modify_index: u64,
}

/// The answer to a typed check-and-set write.
#[derive(Debug, Clone, PartialEq)]
pub enum CasResult<T> {
    /// Written; the new modify index.
    Written { modify_index: u64 },
    /// Someone wrote first: the value as it is now (if there is one).
    Conflict(Option<Versioned<T>>),
}

/// Typed variables in one namespace. A value is a struct whose fields
/// become the variable's items: strings as they are, anything else as
/// JSON text.
#[derive(Debug, Clone)]
pub struct Variables {
    client: Client,
    namespace: String,
}

impl Variables {
    pub fn new(client: Client, namespace: &str) -> Variables {
        Variables {
            client,
            namespace: namespace.to_string(),
        }
    }

    /// Reads and decodes a variable (`None`: absent).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<Versioned<T>>, SdkError> {
        match self.client.var_get(&self.namespace, path).await? {
            Some(var) => Ok(Some(Versioned {
                value: from_items(path, &var.items)?,
                modify_index: var.meta.modify_index,
            })),
            None => Ok(None),
        }
    }

    /// Writes a value; with `cas`, only if the variable's modify index is
    /// still that (0: only if absent).
    pub async fn put<T: Serialize + DeserializeOwned>(
        &self,
        path: &str,
        value: &T,
        cas: Option<u64>,
    ) -> Result<CasResult<T>, SdkError> {
        let items = to_items(path, value)?;
        match self.client.var_put(&self.namespace, path, &items, cas, None).await? {
            VarWrite::Written(Some(var)) => Ok(CasResult::Written {
                modify_index: var.meta.modify_index,
            }),
            VarWrite::Written(None) => Err(SdkError::MissingVariable),
            VarWrite::Conflict(Some(var)) => Ok(CasResult::Conflict(Some(Versioned {
                value: from_items(path, &var.items)?,
                modify_index: var.meta.modify_index,
            }))),
            VarWrite::Conflict(None) => Ok(CasResult::Conflict(None)),
        }
    }
}

/// A struct's fields as items.
pub fn to_items<T: Serialize>(path: &str, value: &T) -> Result<BTreeMap<String, String>, SdkError> {
    let error = |message: String| SdkError::Value {
        path: path.to_string(),
        message,
    };
    let serde_json::Value::Object(fields) = serde_json::to_value(value).map_err(|e| error(e.to_string()))? else {
        return Err(error("a variable's value must be a struct or a map".to_string()));
    };
    Ok(fields
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => (key, text),
            other => (key, other.to_string()),
        })
        .collect())
}

/// Items back into a struct: as strings first; failing that, with the
/// items that read as JSON taken as JSON.
pub fn from_items<T: DeserializeOwned>(path: &str, items: &BTreeMap<String, String>) -> Result<T, SdkError> {
    let as_strings: serde_json::Map<String, serde_json::Value> = items
        .iter()
        .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
        .collect();
    if let Ok(value) = serde_json::from_value(serde_json::Value::Object(as_strings)) {
        return Ok(value);
    }
    let as_json: serde_json::Map<String, serde_json::Value> = items
        .iter()
        .map(|(key, value)| {
            let parsed = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.clone()));
            (key.clone(), parsed)
        })
        .collect();
    serde_json::from_value(serde_json::Value::Object(as_json)).map_err(|error| SdkError::Value {
        path: path.to_string(),
        message: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Config {
        name: String,
        port: u16,
        debug: bool,
        code: String,
    }

    #[test]
    fn typed_values_round_trip_through_items() {
        let config = Config {
            name: "web".to_string(),
            port: 8080,
            debug: true,
            code: "0123".to_string(),
        };
        let items = to_items("app", &config).expect("items");
        assert_eq!(items["name"], "web");
        assert_eq!(items["port"], "8080");
        assert_eq!(items["code"], "0123");
        assert_eq!(from_items::<Config>("app", &items).expect("back"), config);
        assert!(to_items("app", &5).is_err());
    }
}
