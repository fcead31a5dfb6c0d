//! `drover var get|put|list|purge|lock`, as Nomad's `nomad var`. `lock`
//! runs a command while it holds a variable's lock, renewing it at half
//! its TTL; the command is stopped if the lock is lost, and the lock is
//! released when the command exits.

use crate::render::{columns, key_values};
use anyhow::{Context, bail};
use api_client::{Client, VarWrite};
use api_types::{Variable, VariableMetadata};
use clap::Subcommand;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum VarCommand {
    /// List the variables under a prefix.
    List {
        #[arg(long, default_value = "default")]
        namespace: String,
        prefix: Option<String>,
    },
    /// Show a variable (or one item of it).
    Get {
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Print only this item's value.
        #[arg(long)]
        item: Option<String>,
        /// Print the variable as JSON.
        #[arg(long)]
        json: bool,
        path: String,
    },
    /// Create or replace a variable's items: `PATH KEY=VALUE...`.
    Put {
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Write only if the variable's modify index is this (0: only if
        /// it does not exist).
        #[arg(long = "check-index")]
        check_index: Option<u64>,
        path: String,
        #[arg(required = true)]
        items: Vec<String>,
    },
    /// Delete a variable.
    Purge {
        #[arg(long, default_value = "default")]
        namespace: String,
        #[arg(long = "check-index")]
        check_index: Option<u64>,
        path: String,
    },
    /// Run a command while holding the variable's lock.
    Lock {
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The lock's TTL: it lapses unless renewed within this.
        #[arg(long, default_value = "15s")]
        ttl: String,
        /// How long a lapsed lock holds off the next holder.
        #[arg(long = "delay", default_value = "15s")]
        delay: String,
        path: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

/// Parses `KEY=VALUE` arguments.
pub fn parse_items(args: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut items = BTreeMap::new();
    for arg in args {
        let Some((key, value)) = arg.split_once('=') else {
            bail!("item {arg:?} is not KEY=VALUE");
        };
        if key.is_empty() {
            bail!("item {arg:?} has an empty key");
        }
        items.insert(key.to_string(), value.to_string());
    }
    Ok(items)
}

/// `var list`'s table.
pub fn render_list(vars: &[VariableMetadata]) -> String {
    if vars.is_empty() {
        return "No matching variables found\n".to_string();
    }
    let mut rows = vec![vec![
        "Namespace".to_string(),
        "Path".to_string(),
        "Last Updated".to_string(),
    ]];
    for var in vars {
        rows.push(vec![
            var.namespace.clone(),
            var.path.clone(),
            api_types::format_rfc3339(var.modify_time),
        ]);
    }
    columns(&rows)
}

/// `operator keyring list`'s table.
pub fn render_keys(keys: &[api_types::RootKeyMeta]) -> String {
    let mut rows = vec![vec!["Key".to_string(), "State".to_string(), "Create Time".to_string()]];
    for key in keys {
        rows.push(vec![
            key.key_id.clone(),
            key.state.clone(),
            api_types::format_rfc3339(key.create_time),
        ]);
    }
    columns(&rows)
}

/// `var get`'s and `var put`'s view of a variable.
pub fn render_variable(var: &Variable) -> String {
    let mut out = key_values(&[
        ("Namespace", var.meta.namespace.clone()),
        ("Path", var.meta.path.clone()),
        ("Create Time", api_types::format_rfc3339(var.meta.create_time)),
        ("Check Index", var.meta.modify_index.to_string()),
    ]);
    out.push_str("\nItems\n");
    let items: Vec<(&str, String)> = var
        .items
        .iter()
        .map(|(key, value)| (key.as_str(), value.clone()))
        .collect();
    out.push_str(&key_values(&items));
    out
}

fn parse_duration(name: &str, text: &str) -> anyhow::Result<Duration> {
    types::duration::parse_duration(text).map_err(|error| anyhow::anyhow!("invalid {name} {text:?}: {error}"))
}

pub async fn run_var(command: VarCommand, client: &Client) -> anyhow::Result<ExitCode> {
    match command {
        VarCommand::List { namespace, prefix } => {
            let vars = client.var_list(&namespace, prefix.as_deref().unwrap_or("")).await?;
            print!("{}", render_list(&vars));
            Ok(ExitCode::SUCCESS)
        }
        VarCommand::Get {
            namespace,
            item,
            json,
            path,
        } => {
            let Some(var) = client.var_get(&namespace, &path).await? else {
                bail!("Variable not found");
            };
            match (item, json) {
                (Some(item), _) => match var.items.get(&item) {
                    Some(value) => println!("{value}"),
                    None => bail!("Variable {path:?} has no item {item:?}"),
                },
                (None, true) => println!("{}", serde_json::to_string_pretty(&var)?),
                (None, false) => print!("{}", render_variable(&var)),
            }
            Ok(ExitCode::SUCCESS)
        }
        VarCommand::Put {
            namespace,
            check_index,
            path,
            items,
        } => {
            let items = parse_items(&items)?;
            match client.var_put(&namespace, &path, &items, check_index, None).await? {
                VarWrite::Written(Some(var)) => {
                    println!("Created or updated variable {path:?}");
                    print!("{}", render_variable(&var));
                    Ok(ExitCode::SUCCESS)
                }
                VarWrite::Written(None) => Ok(ExitCode::SUCCESS),
                VarWrite::Conflict(current) => {
                    let found = current.map_or(0, |var| var.meta.modify_index);
                    bail!("Check-index {check_index:?} did not match the variable's modify index {found}")
                }
            }
        }
        VarCommand::Purge {
            namespace,
            check_index,
            path,
        } => match client.var_delete(&namespace, &path, check_index).await? {
            VarWrite::Conflict(current) => {
                let found = current.map_or(0, |var| var.meta.modify_index);
                bail!("Check-index {check_index:?} did not match the variable's modify index {found}")
            }
            VarWrite::Written(_) => {
                println!("Successfully purged variable {path:?}");
                Ok(ExitCode::SUCCESS)
            }
        },
        VarCommand::Lock {
            namespace,
            ttl,
            delay,
            path,
            command,
        } => {
            let ttl = parse_duration("ttl", &ttl)?;
            let delay = parse_duration("delay", &delay)?;
            run_locked(client, &namespace, &path, ttl, delay, &command).await
        }
    }
}

/// Waits for the lock, runs `command` while renewing it, releases it.
async fn run_locked(
    client: &Client,
    namespace: &str,
    path: &str,
    ttl: Duration,
    delay: Duration,
    command: &[String],
) -> anyhow::Result<ExitCode> {
    let Some((program, args)) = command.split_first() else {
        bail!("usage: drover var lock PATH COMMAND [ARGS...]");
    };
    let lock_id = loop {
        match client.var_lock_acquire(namespace, path, ttl, delay, None).await? {
            VarWrite::Written(Some(var)) => {
                break var.meta.lock.map(|lock| lock.id).unwrap_or_default();
            }
            VarWrite::Written(None) => bail!("the server answered a lock acquisition without the variable"),
            // Held by someone else, or in its lock-delay: try again soon.
            VarWrite::Conflict(_) => tokio::time::sleep(Duration::from_millis(500).min(ttl / 2)).await,
        }
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {program:?}"))?;
    let mut renew = tokio::time::interval(ttl / 2);
    renew.tick().await;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("wait for the command")?,
            _ = renew.tick() => {
                match client.var_lock_renew(namespace, path, &lock_id).await {
                    Ok(VarWrite::Written(_)) => {}
                    Ok(VarWrite::Conflict(_)) => {
                        let _ = child.kill().await;
                        bail!("lost the lock on {path:?}; stopped the command");
                    }
                    // The server may be briefly unreachable: keep trying
                    // until the TTL decides.
                    Err(error) => eprintln!("renewing the lock on {path:?}: {error}"),
                }
            }
        }
    };
    if let Err(error) = client.var_lock_release(namespace, path, &lock_id).await {
        eprintln!("releasing the lock on {path:?}: {error}");
    }
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_key_value_pairs() {
        let items = parse_items(&["a=1".to_string(), "b=x=y".to_string()]).expect("items");
        assert_eq!(items["b"], "x=y");
        assert!(parse_items(&["novalue".to_string()]).is_err());
        assert!(parse_items(&["=v".to_string()]).is_err());
    }

    #[test]
    fn renders_a_variable_and_a_list() {
        let var = Variable {
            meta: VariableMetadata {
                namespace: "default".to_string(),
                path: "app/db".to_string(),
                create_index: 5,
                modify_index: 7,
                create_time: 0,
                modify_time: 0,
                lock: None,
            },
            items: [("password".to_string(), "s3cret".to_string())].into(),
        };
        let text = render_variable(&var);
        assert!(text.contains("Path        = app/db"), "{text}");
        assert!(text.contains("Check Index = 7"), "{text}");
        assert!(text.contains("password = s3cret"), "{text}");
        let list = render_list(std::slice::from_ref(&var.meta));
        assert!(list.starts_with("Namespace"), "{list}");
        assert!(list.contains("app/db"), "{list}");
        assert_eq!(render_list(&[]), "No matching variables found\n");
        let keys = render_keys(&[api_types::RootKeyMeta {
            key_id: "k1".to_string(),
            state: "active".to_string(),
            ..api_types::RootKeyMeta::default()
        }]);
        assert!(keys.starts_with("Key"), "{keys}");
        assert!(keys.contains("k1") && keys.contains("active"), "{keys}");
    }
}
