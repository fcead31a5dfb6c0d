//! `drover acl …`: bootstrap, policies, tokens and roles, as Nomad's
//! `nomad acl` commands. Output comes from the pure renderers below, which
//! are snapshot-tested.

use crate::render::{columns, key_values};
use anyhow::{Context, bail};
use api_client::Client;
use api_types::acl::{
    AclBootstrapRequest, AclPolicy, AclPolicyListStub, AclRole, AclRolePolicyLink, AclToken, AclTokenRoleLink, TtlNanos,
};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Create the first management token (once).
    Bootstrap {
        /// A file holding the secret to use (a UUID), `-` for stdin.
        file: Option<PathBuf>,
    },
    /// Work with ACL policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Work with ACL tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Work with ACL roles.
    #[command(subcommand)]
    Role(RoleCommand),
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create or replace a policy from a rules file (`-` for stdin).
    Apply {
        #[arg(long)]
        description: Option<String>,
        name: String,
        file: PathBuf,
    },
    /// List policies.
    List,
    /// Show a policy and its rules.
    Info { name: String },
    /// Delete a policy.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token.
    Create {
        #[arg(long)]
        name: Option<String>,
        /// `client` or `management`.
        #[arg(long = "type", default_value = "client")]
        token_type: String,
        /// A policy to attach; repeatable.
        #[arg(long = "policy")]
        policies: Vec<String>,
        /// A role to attach, by name; repeatable.
        #[arg(long = "role-name")]
        role_names: Vec<String>,
        /// A role to attach, by ID; repeatable.
        #[arg(long = "role-id")]
        role_ids: Vec<String>,
        /// Replicate the token to every region.
        #[arg(long)]
        global: bool,
        /// Expire the token after this long ("1h").
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List tokens.
    List,
    /// Show the token in use.
    #[command(name = "self")]
    Self_,
    /// Show a token.
    Info { accessor_id: String },
    /// Delete a token.
    Delete { accessor_id: String },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create a role.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// A policy to attach; repeatable.
        #[arg(long = "policy")]
        policies: Vec<String>,
    },
    /// List roles.
    List,
    /// Show a role.
    Info { id: String },
    /// Delete a role.
    Delete { id: String },
}

fn read_input(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("read stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
    }
}

/// Runs an `acl` command.
pub async fn run_acl(command: AclCommand, client: &Client) -> anyhow::Result<ExitCode> {
    match command {
        AclCommand::Bootstrap { file } => {
            let request = AclBootstrapRequest {
                bootstrap_secret: match file {
                    Some(path) => read_input(&path)?.trim().to_string(),
                    None => String::new(),
                },
            };
            let token: AclToken = client.put_json("/v1/acl/bootstrap", &request).await?;
            print!("{}", token_info(&token));
        }
        AclCommand::Policy(PolicyCommand::Apply {
            description,
            name,
            file,
        }) => {
            let policy = AclPolicy {
                name: name.clone(),
                description: description.unwrap_or_default(),
                rules: read_input(&file)?,
                ..AclPolicy::default()
            };
            let _: serde_json::Value = client
                .put_json(&format!("/v1/acl/policy/{}", api_client::encode(&name)), &policy)
                .await?;
            println!("Successfully wrote {name:?} ACL policy!");
        }
        AclCommand::Policy(PolicyCommand::List) => {
            let policies: Vec<AclPolicyListStub> = client.get("/v1/acl/policies").await?.value;
            print!("{}", policy_list(&policies));
        }
        AclCommand::Policy(PolicyCommand::Info { name }) => {
            let policy: AclPolicy = client
                .get(&format!("/v1/acl/policy/{}", api_client::encode(&name)))
                .await?
                .value;
            print!(
                "{}",
                key_values(&[
                    ("Name", policy.name.clone()),
                    ("Description", policy.description.clone()),
                    ("CreateIndex", policy.create_index.to_string()),
                    ("ModifyIndex", policy.modify_index.to_string()),
                ])
            );
            println!("\nRules\n\n{}", policy.rules.trim_end());
        }
        AclCommand::Policy(PolicyCommand::Delete { name }) => {
            client
                .delete(&format!("/v1/acl/policy/{}", api_client::encode(&name)))
                .await?;
            println!("Successfully deleted {name:?} ACL policy!");
        }
        AclCommand::Token(TokenCommand::Create {
            name,
            token_type,
            policies,
            role_names,
            role_ids,
            global,
            ttl,
        }) => {
            let ttl = match ttl {
                Some(text) => {
                    let duration = types::duration::parse_duration(&text).map_err(anyhow::Error::msg)?;
                    TtlNanos(i64::try_from(duration.as_nanos()).context("TTL is too long")?)
                }
                None => TtlNanos(0),
            };
            let mut roles: Vec<AclTokenRoleLink> = role_names
                .into_iter()
                .map(|name| AclTokenRoleLink {
                    name,
                    ..AclTokenRoleLink::default()
                })
                .collect();
            roles.extend(role_ids.into_iter().map(|id| AclTokenRoleLink {
                id,
                ..AclTokenRoleLink::default()
            }));
            let request = AclToken {
                name: name.unwrap_or_default(),
                token_type,
                policies,
                roles,
                global,
                expiration_ttl: ttl,
                ..AclToken::default()
            };
            let token: AclToken = client.put_json("/v1/acl/token", &request).await?;
            print!("{}", token_info(&token));
        }
        AclCommand::Token(TokenCommand::List) => {
            let tokens: Vec<AclToken> = client.get("/v1/acl/tokens").await?.value;
            print!("{}", token_list(&tokens));
        }
        AclCommand::Token(TokenCommand::Self_) => {
            let token: AclToken = client.get("/v1/acl/token/self").await?.value;
            print!("{}", token_info(&token));
        }
        AclCommand::Token(TokenCommand::Info { accessor_id }) => {
            let token: AclToken = client
                .get(&format!("/v1/acl/token/{}", api_client::encode(&accessor_id)))
                .await?
                .value;
            print!("{}", token_info(&token));
        }
        AclCommand::Token(TokenCommand::Delete { accessor_id }) => {
            client
                .delete(&format!("/v1/acl/token/{}", api_client::encode(&accessor_id)))
                .await?;
            println!("Token {accessor_id} successfully deleted");
        }
        AclCommand::Role(RoleCommand::Create {
            name,
            description,
            policies,
        }) => {
            if policies.is_empty() {
                bail!("a role needs at least one --policy");
            }
            let request = AclRole {
                name,
                description: description.unwrap_or_default(),
                policies: policies.into_iter().map(|name| AclRolePolicyLink { name }).collect(),
                ..AclRole::default()
            };
            let role: AclRole = client.put_json("/v1/acl/role", &request).await?;
            print!("{}", role_info(&role));
        }
        AclCommand::Role(RoleCommand::List) => {
            let roles: Vec<AclRole> = client.get("/v1/acl/roles").await?.value;
            print!("{}", role_list(&roles));
        }
        AclCommand::Role(RoleCommand::Info { id }) => {
            let role: AclRole = client
                .get(&format!("/v1/acl/role/{}", api_client::encode(&id)))
                .await?
                .value;
            print!("{}", role_info(&role));
        }
        AclCommand::Role(RoleCommand::Delete { id }) => {
            client
                .delete(&format!("/v1/acl/role/{}", api_client::encode(&id)))
                .await?;
            println!("ACL role {id} successfully deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn or_na(items: Vec<String>) -> String {
    if items.is_empty() {
        "n/a".to_string()
    } else {
        items.join(", ")
    }
}

/// A token, as `nomad acl token info` prints it.
pub fn token_info(token: &AclToken) -> String {
    key_values(&[
        ("Accessor ID", token.accessor_id.clone()),
        ("Secret ID", token.secret_id.clone().unwrap_or_default()),
        ("Name", token.name.clone()),
        ("Type", token.token_type.clone()),
        ("Global", token.global.to_string()),
        ("Create Time", token.create_time.clone()),
        (
            "Expiry Time",
            token.expiration_time.clone().unwrap_or_else(|| "<none>".to_string()),
        ),
        ("Create Index", token.create_index.to_string()),
        ("Modify Index", token.modify_index.to_string()),
        ("Policies", or_na(token.policies.clone())),
        (
            "Roles",
            or_na(token.roles.iter().map(|role| role.name.clone()).collect()),
        ),
    ])
}

/// `nomad acl token list`.
pub fn token_list(tokens: &[AclToken]) -> String {
    let mut rows = vec![vec![
        "Name".to_string(),
        "Type".to_string(),
        "Global".to_string(),
        "Accessor ID".to_string(),
        "Expiry Time".to_string(),
    ]];
    for token in tokens {
        rows.push(vec![
            token.name.clone(),
            token.token_type.clone(),
            token.global.to_string(),
            token.accessor_id.clone(),
            token.expiration_time.clone().unwrap_or_else(|| "<none>".to_string()),
        ]);
    }
    columns(&rows)
}

/// `nomad acl policy list`.
pub fn policy_list(policies: &[AclPolicyListStub]) -> String {
    if policies.is_empty() {
        return "No policies found\n".to_string();
    }
    let mut rows = vec![vec!["Name".to_string(), "Description".to_string()]];
    for policy in policies {
        rows.push(vec![policy.name.clone(), policy.description.clone()]);
    }
    columns(&rows)
}

/// `nomad acl role info`.
pub fn role_info(role: &AclRole) -> String {
    key_values(&[
        ("ID", role.id.clone()),
        ("Name", role.name.clone()),
        ("Description", role.description.clone()),
        (
            "Policies",
            or_na(role.policies.iter().map(|link| link.name.clone()).collect()),
        ),
        ("Create Index", role.create_index.to_string()),
        ("Modify Index", role.modify_index.to_string()),
    ])
}

/// `nomad acl role list`.
pub fn role_list(roles: &[AclRole]) -> String {
    if roles.is_empty() {
        return "No ACL roles found\n".to_string();
    }
    let mut rows = vec![vec![
        "ID".to_string(),
        "Name".to_string(),
        "Description".to_string(),
        "Policies".to_string(),
    ]];
    for role in roles {
        rows.push(vec![
            role.id.clone(),
            role.name.clone(),
            role.description.clone(),
            role.policies
                .iter()
                .map(|link| link.name.clone())
                .collect::<Vec<_>>()
                .join(","),
        ]);
    }
    columns(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn renders_tokens_policies_and_roles() {
        let token = AclToken {
            accessor_id: "a1".to_string(),
            secret_id: Some("s1".to_string()),
            name: "ops".to_string(),
            token_type: "client".to_string(),
            policies: vec!["read".to_string()],
            create_time: "2026-12-05T15:00:00Z".to_string(),
            create_index: 7,
            modify_index: 7,
            ..AclToken::default()
        };
        expect![[r#"
            Accessor ID  = a1
            Secret ID    = s1
            Name         = ops
            Type         = client
            Global       = false
            Create Time  = 2026-12-05T15:00:00Z
            Expiry Time  = <none>
            Create Index = 7
            Modify Index = 7
            Policies     = read
            Roles        = n/a
        "#]]
        .assert_eq(&token_info(&token));
        expect![[r#"
            Name  Type    Global  Accessor ID  Expiry Time
            ops   client  false   a1           <none>
        "#]]
        .assert_eq(&token_list(&[token]));
        expect![[r#"
            No policies found
        "#]]
        .assert_eq(&policy_list(&[]));
        let role = AclRole {
            id: "r1".to_string(),
            name: "dev".to_string(),
            policies: vec![AclRolePolicyLink {
                name: "read".to_string(),
            }],
            ..AclRole::default()
        };
        expect![[r#"
            ID  Name  Description  Policies
            r1  dev                read
        "#]]
        .assert_eq(&role_list(&[role]));
    }
}
