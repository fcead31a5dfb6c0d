//! Variables, locks and the root keyring over the HTTP API. Writes that
//! can conflict (check-and-set, locks) answer [`VarWrite::Conflict`] with
//! the variable as the server has it, rather than an error.

use crate::{ApiError, Client, encode};
use api_types::{RootKeyMeta, Variable, VariableLock, VariableMetadata};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a variable write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarWrite {
    /// Done: the variable as written (`None` after a delete).
    Written(Option<Variable>),
    /// Refused (409): a check-and-set index or a lock did not match. The
    /// variable as it is, when the caller may see it.
    Conflict(Option<Variable>),
}

/// A variable path as a URL path (its `/` kept; each segment encoded).
fn var_url(namespace: &str, path: &str, extra: &str) -> String {
    let path: Vec<String> = path.split('/').map(encode).collect();
    format!("/v1/var/{}?namespace={}{extra}", path.join("/"), encode(namespace))
}

fn go_duration(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

impl Client {
    async fn var_request(&self, request: reqwest::RequestBuilder, path: &str) -> Result<VarWrite, ApiError> {
        let request = match &self.token {
            Some(token) => request.header("X-Nomad-Token", token),
            None => request,
        };
        let response = request.send().await.map_err(|error| self.connect_error(error))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|error| self.connect_error(error))?;
        let decode = |text: &str| -> Result<Option<Variable>, ApiError> {
            if text.trim().is_empty() || text.trim() == "null" {
                return Ok(None);
            }
            serde_json::from_str(text).map(Some).map_err(|error| ApiError::Decode {
                path: path.to_string(),
                message: error.to_string(),
            })
        };
        match status {
            200..=299 => Ok(VarWrite::Written(decode(&text)?)),
            409 => Ok(VarWrite::Conflict(decode(&text)?)),
            _ => Err(ApiError::Status {
                status,
                message: text.trim().to_string(),
            }),
        }
    }

    /// `GET /v1/var/:path`; `None` when there is no such variable.
    pub async fn var_get(&self, namespace: &str, path: &str) -> Result<Option<Variable>, ApiError> {
        match self.get::<Variable>(&var_url(namespace, path, "")).await {
            Ok(answer) => Ok(Some(answer.value)),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// A blocking `GET /v1/var/:path`: answers once the variable's modify
    /// index passes `index` (or `wait` runs out). `None`: no variable.
    pub async fn var_get_blocking(
        &self,
        namespace: &str,
        path: &str,
        index: u64,
        wait: Duration,
    ) -> Result<Option<Variable>, ApiError> {
        match self
            .get_blocking::<Variable>(&var_url(namespace, path, ""), index, wait)
            .await
        {
            Ok(answer) => Ok(Some(answer.value)),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `GET /v1/vars?prefix=`: the variables the token may list
    /// (`namespace` `*`: every namespace).
    pub async fn var_list(&self, namespace: &str, prefix: &str) -> Result<Vec<VariableMetadata>, ApiError> {
        let path = format!("/v1/vars?namespace={}&prefix={}", encode(namespace), encode(prefix));
        Ok(self.get(&path).await?.value)
    }

    /// `PUT /v1/var/:path[?cas=N]` (`lock_id`: writing a variable one
    /// holds the lock of).
    pub async fn var_put(
        &self,
        namespace: &str,
        path: &str,
        items: &BTreeMap<String, String>,
        cas: Option<u64>,
        lock_id: Option<&str>,
    ) -> Result<VarWrite, ApiError> {
        let extra = cas.map(|cas| format!("&cas={cas}")).unwrap_or_default();
        let url = var_url(namespace, path, &extra);
        let mut body = json!({"Namespace": namespace, "Path": path, "Items": items});
        if let Some(id) = lock_id {
            body["Lock"] = json!({"ID": id});
        }
        self.var_request(self.http.put(self.url(&url)).json(&body), &url).await
    }

    /// `DELETE /v1/var/:path[?cas=N]`.
    pub async fn var_delete(&self, namespace: &str, path: &str, cas: Option<u64>) -> Result<VarWrite, ApiError> {
        let extra = cas.map(|cas| format!("&cas={cas}")).unwrap_or_default();
        let url = var_url(namespace, path, &extra);
        self.var_request(self.http.delete(self.url(&url)), &url).await
    }

    /// `PUT /v1/var/:path?lock-acquire`: on success the answer's
    /// `Lock.ID` is the holder's, and its `ModifyIndex` rises with every
    /// new holder (a fencing token).
    pub async fn var_lock_acquire(
        &self,
        namespace: &str,
        path: &str,
        ttl: Duration,
        lock_delay: Duration,
        items: Option<&BTreeMap<String, String>>,
    ) -> Result<VarWrite, ApiError> {
        let url = var_url(namespace, path, "&lock-acquire");
        let lock = VariableLock {
            id: String::new(),
            ttl: go_duration(ttl),
            lock_delay: go_duration(lock_delay),
        };
        let mut body = json!({"Namespace": namespace, "Path": path, "Lock": lock});
        if let Some(items) = items {
            body["Items"] = json!(items);
        }
        self.var_request(self.http.put(self.url(&url)).json(&body), &url).await
    }

    /// `PUT /v1/var/:path?lock-renew`.
    pub async fn var_lock_renew(&self, namespace: &str, path: &str, lock_id: &str) -> Result<VarWrite, ApiError> {
        let url = var_url(namespace, path, "&lock-renew");
        let body = json!({"Namespace": namespace, "Path": path, "Lock": {"ID": lock_id}});
        self.var_request(self.http.put(self.url(&url)).json(&body), &url).await
    }

    /// `PUT /v1/var/:path?lock-release`.
    pub async fn var_lock_release(&self, namespace: &str, path: &str, lock_id: &str) -> Result<VarWrite, ApiError> {
        let url = var_url(namespace, path, "&lock-release");
        let body = json!({"Namespace": namespace, "Path": path, "Lock": {"ID": lock_id}});
        self.var_request(self.http.put(self.url(&url)).json(&body), &url).await
    }

    /// `GET /v1/operator/keyring/keys`.
    pub async fn keyring_keys(&self) -> Result<Vec<RootKeyMeta>, ApiError> {
        Ok(self.get("/v1/operator/keyring/keys").await?.value)
    }

    /// `PUT /v1/operator/keyring/rotate`: the new active key.
    pub async fn keyring_rotate(&self) -> Result<RootKeyMeta, ApiError> {
        let answer: Value = self.put_empty("/v1/operator/keyring/rotate").await?;
        serde_json::from_value(answer["Key"].clone()).map_err(|error| ApiError::Decode {
            path: "/v1/operator/keyring/rotate".to_string(),
            message: error.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_urls_keep_their_slashes() {
        assert_eq!(
            var_url("default", "app/db", "&cas=3"),
            "/v1/var/app/db?namespace=default&cas=3"
        );
        assert_eq!(go_duration(Duration::from_secs(2)), "2000ms");
    }
}
