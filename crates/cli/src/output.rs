//! What read commands share: `-json` and Go-template (`-t`) output over the
//! API's own JSON (the same answer the command renders as a table), the
//! API path each read command reads, `drover status PREFIX` (one prefix
//! looked up across every object type), `drover eval list|status`,
//! `version` and `ui`. Formatting is pure: a JSON value in, text out.

use crate::{Command, DeploymentCommand, JobCommand, NamespaceCommand, NodeCommand, render};
use anyhow::{Context, anyhow, bail};
use api_client::{Client, encode};
use api_types::Evaluation;
use clap::Subcommand;
use serde_json::Value;
use std::collections::HashMap;

/// Longest template accepted with `-t`.
const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Longest a template may take to render.
const TEMPLATE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Every `{{` must be closed by a `}}` before the next `{{`: gtmpl's lexer
/// does not stop on an unclosed action.
fn check_delimiters(template: &str) -> anyhow::Result<()> {
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after.find("}}");
        let next_open = after.find("{{");
        match (close, next_open) {
            (Some(close), Some(next)) if next < close => {
                bail!(
                    "template: action opened at byte {} is not closed before the next one",
                    offset + open
                )
            }
            (Some(close), _) => {
                offset += open + 2 + close + 2;
                rest = &after[close + 2..];
            }
            (None, _) => bail!("template: action opened at byte {} is never closed", offset + open),
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// List evaluations.
    List,
    /// Show an evaluation (by ID or unique prefix).
    Status { id: String },
}

/// The JSON value as gtmpl's value: objects keep their field names, so
/// `{{ .ID }}` and `{{ range . }}` read as in Nomad's `-t`.
pub fn to_template_value(value: &Value) -> gtmpl::Value {
    match value {
        Value::Null => gtmpl::Value::Nil,
        Value::Bool(flag) => gtmpl::Value::Bool(*flag),
        Value::Number(number) => {
            if let Some(integer) = number.as_u64() {
                gtmpl::Value::from(integer)
            } else if let Some(integer) = number.as_i64() {
                gtmpl::Value::from(integer)
            } else {
                gtmpl::Value::from(number.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(text) => gtmpl::Value::String(text.clone()),
        Value::Array(items) => gtmpl::Value::Array(items.iter().map(to_template_value).collect()),
        Value::Object(map) => gtmpl::Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), to_template_value(value)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

/// Renders `value` as `-json` (indented, as Nomad prints it) or through
/// the Go template `template`.
pub fn format_output(json: bool, template: Option<&str>, value: &Value) -> anyhow::Result<String> {
    match template {
        Some(_) if json => bail!("-json and -t go apart: use one"),
        Some(template) => {
            if template.len() > MAX_TEMPLATE_BYTES {
                bail!("template is {} bytes, more than {MAX_TEMPLATE_BYTES}", template.len());
            }
            check_delimiters(template)?;
            // gtmpl is not hardened against every malformed template, so it
            // renders on its own thread under a deadline: a template that
            // never finishes is an error, not a hung CLI.
            let template = template.to_string();
            let data = to_template_value(value);
            let (sender, receiver) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = sender.send(gtmpl::template(&template, data).map_err(|error| error.to_string()));
            });
            match receiver.recv_timeout(TEMPLATE_DEADLINE) {
                Ok(Ok(text)) => Ok(text),
                Ok(Err(error)) => Err(anyhow!("template: {error}")),
                Err(_) => bail!("template did not finish rendering within {TEMPLATE_DEADLINE:?}"),
            }
        }
        None => Ok(format!("{}\n", serde_json::to_string_pretty(value)?)),
    }
}

/// The API path whose JSON a read command shows with `-json` / `-t`, or
/// `None` for commands that change something.
pub fn read_path(command: &Command) -> Option<String> {
    use crate::acl::{AclCommand, PolicyCommand, RoleCommand, TokenCommand};
    Some(match command {
        Command::Job(JobCommand::Status { id: None }) => "/v1/jobs".to_string(),
        Command::Job(JobCommand::Status { id: Some(id) } | JobCommand::Inspect { id }) => {
            format!("/v1/job/{}", encode(id))
        }
        Command::Job(JobCommand::History { id, diffs }) => format!("/v1/job/{}/versions?diffs={diffs}", encode(id)),
        Command::Alloc(crate::AllocCommand::Status { id }) => format!("/v1/allocation/{}", encode(id)),
        Command::Node(NodeCommand::Status { id: None }) => "/v1/nodes".to_string(),
        Command::Node(NodeCommand::Status { id: Some(id) }) => format!("/v1/node/{}", encode(id)),
        Command::Namespace(NamespaceCommand::List) => "/v1/namespaces".to_string(),
        Command::Namespace(NamespaceCommand::Status { name }) => format!("/v1/namespace/{}", encode(name)),
        Command::Deployment(DeploymentCommand::List) => "/v1/deployments".to_string(),
        Command::Deployment(DeploymentCommand::Status { id }) => format!("/v1/deployment/{}", encode(id)),
        Command::Eval(EvalCommand::List) => "/v1/evaluations".to_string(),
        Command::Eval(EvalCommand::Status { id }) => format!("/v1/evaluation/{}", encode(id)),
        Command::Server(crate::ServerCommand::Members) => "/v1/agent/members".to_string(),
        Command::Operator(crate::OperatorCommand::Raft(crate::RaftCommand::ListPeers)) => {
            "/v1/operator/raft/configuration".to_string()
        }
        Command::Acl(AclCommand::Policy(PolicyCommand::List)) => "/v1/acl/policies".to_string(),
        Command::Acl(AclCommand::Policy(PolicyCommand::Info { name })) => format!("/v1/acl/policy/{}", encode(name)),
        Command::Acl(AclCommand::Token(TokenCommand::List)) => "/v1/acl/tokens".to_string(),
        Command::Acl(AclCommand::Token(TokenCommand::Self_)) => "/v1/acl/token/self".to_string(),
        Command::Acl(AclCommand::Token(TokenCommand::Info { accessor_id })) => {
            format!("/v1/acl/token/{}", encode(accessor_id))
        }
        Command::Acl(AclCommand::Role(RoleCommand::List)) => "/v1/acl/roles".to_string(),
        Command::Acl(AclCommand::Role(RoleCommand::Info { id })) => format!("/v1/acl/role/{}", encode(id)),
        Command::Status { prefix: None } => "/v1/jobs".to_string(),
        _ => return None,
    })
}

/// `drover eval list` as a table.
pub fn eval_list(evals: &[Evaluation]) -> String {
    let mut rows = vec![vec![
        "ID".to_string(),
        "Priority".to_string(),
        "Triggered By".to_string(),
        "Job ID".to_string(),
        "Namespace".to_string(),
        "Node ID".to_string(),
        "Status".to_string(),
        "Placement Failures".to_string(),
    ]];
    for eval in evals {
        rows.push(vec![
            render::short_id(&eval.id),
            eval.priority.to_string(),
            eval.triggered_by.clone(),
            eval.job_id.clone(),
            eval.namespace.clone(),
            if eval.node_id.is_empty() {
                "<none>".to_string()
            } else {
                render::short_id(&eval.node_id)
            },
            eval.status.clone(),
            eval.failed_tg_allocs
                .as_ref()
                .is_some_and(|failed| !failed.is_empty())
                .to_string(),
        ]);
    }
    render::columns(&rows)
}

/// `drover eval status ID`.
pub fn eval_status(eval: &Evaluation) -> String {
    let mut out = render::key_values(&[
        ("ID", render::short_id(&eval.id)),
        ("Create Time", eval.create_time.to_string()),
        ("Status", eval.status.clone()),
        ("Status Description", eval.status_description.clone()),
        ("Type", eval.job_type.clone()),
        ("TriggeredBy", eval.triggered_by.clone()),
        ("Job ID", eval.job_id.clone()),
        ("Namespace", eval.namespace.clone()),
        ("Priority", eval.priority.to_string()),
        (
            "Placement Failures",
            eval.failed_tg_allocs
                .as_ref()
                .is_some_and(|failed| !failed.is_empty())
                .to_string(),
        ),
    ]);
    let failures = render::placement_failures(eval);
    if !failures.is_empty() {
        out.push('\n');
        out.push_str(&failures);
    }
    out
}

/// One object a status prefix matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub kind: &'static str,
    pub id: String,
}

fn ids_of(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item[field].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Every object whose ID (a namespace's name) starts with `prefix`, across
/// jobs, allocations, evaluations, nodes, deployments and namespaces.
pub async fn find_prefix(client: &Client, prefix: &str) -> anyhow::Result<Vec<Match>> {
    let encoded = encode(prefix);
    let mut matches = Vec::new();
    for (kind, path, field) in [
        ("job", "/v1/jobs", "ID"),
        ("allocation", "/v1/allocations", "ID"),
        ("evaluation", "/v1/evaluations", "ID"),
        ("node", "/v1/nodes", "ID"),
        ("deployment", "/v1/deployments", "ID"),
        ("namespace", "/v1/namespaces", "Name"),
    ] {
        let list: Value = client
            .get(&format!("{path}?prefix={encoded}"))
            .await
            .with_context(|| format!("look up {kind}s"))?
            .value;
        matches.extend(ids_of(&list, field).into_iter().map(|id| Match { kind, id }));
    }
    Ok(matches)
}

/// What `status PREFIX` does with the matches: the one object's command,
/// or the list of candidates when the prefix is ambiguous. A job whose ID
/// is exactly the prefix wins, as in Nomad.
pub fn choose(prefix: &str, matches: &[Match]) -> Result<Command, String> {
    let exact_job = matches.iter().find(|found| found.kind == "job" && found.id == prefix);
    let chosen = match (exact_job, matches) {
        (Some(job), _) => job,
        (None, [only]) => only,
        (None, []) => return Err(format!("No matches found for {prefix:?}")),
        (None, _) => {
            let mut rows = vec![vec!["Type".to_string(), "ID".to_string()]];
            rows.extend(
                matches
                    .iter()
                    .map(|found| vec![found.kind.to_string(), found.id.clone()]),
            );
            return Err(format!(
                "Prefix {prefix:?} matched {} objects; use a longer one:\n{}",
                matches.len(),
                render::columns(&rows)
            ));
        }
    };
    let id = chosen.id.clone();
    Ok(match chosen.kind {
        "job" => Command::Job(JobCommand::Status { id: Some(id) }),
        "allocation" => Command::Alloc(crate::AllocCommand::Status { id }),
        "evaluation" => Command::Eval(EvalCommand::Status { id }),
        "node" => Command::Node(NodeCommand::Status { id: Some(id) }),
        "deployment" => Command::Deployment(DeploymentCommand::Status { id }),
        _ => Command::Namespace(NamespaceCommand::Status { name: id }),
    })
}

/// The UI's address on the agent.
pub fn ui_address(agent_address: &str) -> String {
    format!("{}/ui/", agent_address.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_read_the_api_json_as_go_templates_do() {
        let jobs = json!([{ "ID": "web", "Status": "running", "Priority": 50 }, { "ID": "db", "Status": "dead", "Priority": 70 }]);
        let text =
            format_output(false, Some("{{ range . }}{{ .ID }}={{ .Status }} {{ end }}"), &jobs).expect("renders");
        assert_eq!(text, "web=running db=dead ");
        let one = format_output(false, Some("{{ .Priority }}"), &jobs[1]).expect("renders");
        assert_eq!(one, "70");
        let pretty = format_output(true, None, &jobs[0]).expect("renders");
        assert!(pretty.starts_with("{\n  \""), "{pretty}");
        assert!(format_output(false, Some("{{ .ID "), &jobs).is_err());
        assert!(format_output(false, Some("{{ .ID {{ .Status }}"), &jobs).is_err());
        assert!(format_output(false, Some("{{ range . }}{{ .ID }}"), &jobs).is_err());
        assert!(format_output(true, Some("{{ .ID }}"), &jobs).is_err());
        let huge = "x".repeat(MAX_TEMPLATE_BYTES + 1);
        assert!(format_output(false, Some(&huge), &jobs).is_err());
    }

    #[test]
    fn status_prefix_picks_one_object_or_lists_the_candidates() {
        let found = |kind, id: &str| Match {
            kind,
            id: id.to_string(),
        };
        assert!(matches!(
            choose("ab", &[found("allocation", "abcd")]),
            Ok(Command::Alloc(crate::AllocCommand::Status { id })) if id == "abcd"
        ));
        assert!(matches!(
            choose("web", &[found("job", "web"), found("job", "web-2")]),
            Ok(Command::Job(JobCommand::Status { id: Some(id) })) if id == "web"
        ));
        let ambiguous = choose("a", &[found("node", "a1"), found("evaluation", "a2")]).expect_err("ambiguous");
        assert!(
            ambiguous.contains("matched 2 objects") && ambiguous.contains("evaluation  a2"),
            "{ambiguous}"
        );
        assert!(choose("zz", &[]).expect_err("none").contains("No matches"));
    }
}
