//! The `drover` command line for jobs, allocations, nodes, namespaces and services. It talks only
//! HTTP (through `api-client`) and parses job files locally with `jobspec`.
//! What it prints comes from the pure functions in [`render`].

pub mod acl;
pub mod fmt;
pub mod output;
pub mod render;
pub mod render_deployment;
pub mod render_plan;
pub mod tls;
pub mod var;

use anyhow::{Context, anyhow, bail};
use api_client::{ApiError, Client, LogsRequest};
use api_types::{AllocListStub, Evaluation};
use clap::{Args, Subcommand};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where and as whom the CLI talks: each setting comes from its flag
/// (one dash or two, as Nomad users type them), else the `DROVER_*`
/// variable, else Nomad's `NOMAD_*` one.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Address of the agent; `DROVER_ADDR`, else `NOMAD_ADDR`, else
    /// http://127.0.0.1:4646.
    #[arg(long, global = true)]
    pub address: Option<String>,
    /// The ACL token's secret; `DROVER_TOKEN`, else `NOMAD_TOKEN`.
    #[arg(long, global = true, env = "DROVER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The namespace to work in (`*` for every one in lists);
    /// `DROVER_NAMESPACE`, else `NOMAD_NAMESPACE`, else `default`.
    #[arg(long, global = true)]
    pub namespace: Option<String>,
    /// The region; Drover serves one region per cluster, so another one is
    /// refused. `DROVER_REGION`, else `NOMAD_REGION`.
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Print the answer as JSON (read commands).
    #[arg(long, global = true)]
    pub json: bool,
    /// Render the answer with a Go template (read commands).
    #[arg(short = 't', global = true, value_name = "TEMPLATE")]
    pub template: Option<String>,
    /// Show full IDs and more detail.
    #[arg(long, global = true)]
    pub verbose: bool,
    /// The CA certificate that signed the agent's HTTPS certificate;
    /// `DROVER_CACERT`, else `NOMAD_CACERT`.
    #[arg(long = "ca-cert", global = true, env = "DROVER_CACERT")]
    pub ca_cert: Option<PathBuf>,
    /// A client certificate for HTTPS; `DROVER_CLIENT_CERT`, else
    /// `NOMAD_CLIENT_CERT`.
    #[arg(long = "client-cert", global = true, env = "DROVER_CLIENT_CERT")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's key; `DROVER_CLIENT_KEY`, else
    /// `NOMAD_CLIENT_KEY`.
    #[arg(long = "client-key", global = true, env = "DROVER_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,
}

/// The first of `flag`, `$drover_var`, `$nomad_var` that is set and not
/// empty.
fn setting(flag: &Option<String>, drover_var: &str, nomad_var: &str) -> Option<String> {
    flag.clone()
        .filter(|value| !value.is_empty())
        .or_else(|| std::env::var(drover_var).ok().filter(|value| !value.is_empty()))
        .or_else(|| std::env::var(nomad_var).ok().filter(|value| !value.is_empty()))
}

impl GlobalArgs {
    /// The agent's address.
    pub fn address(&self) -> String {
        setting(&self.address, "DROVER_ADDR", "NOMAD_ADDR").unwrap_or_else(|| "http://127.0.0.1:4646".to_string())
    }

    /// The namespace asked for, if any.
    pub fn namespace(&self) -> Option<String> {
        setting(&self.namespace, "DROVER_NAMESPACE", "NOMAD_NAMESPACE")
    }

    /// The region asked for, if any.
    pub fn region(&self) -> Option<String> {
        setting(&self.region, "DROVER_REGION", "NOMAD_REGION")
    }

    fn path_or_env(value: &Option<PathBuf>, nomad_var: &str) -> Option<PathBuf> {
        value.clone().or_else(|| {
            std::env::var_os(nomad_var)
                .filter(|text| !text.is_empty())
                .map(PathBuf::from)
        })
    }

    /// The API client these arguments describe: address, token and TLS.
    pub fn client(&self) -> anyhow::Result<Client> {
        let mut client = Client::new(self.address())
            .with_token(self.token().unwrap_or_default())
            .with_namespace(self.namespace().unwrap_or_default());
        let ca = GlobalArgs::path_or_env(&self.ca_cert, "NOMAD_CACERT");
        let cert = GlobalArgs::path_or_env(&self.client_cert, "NOMAD_CLIENT_CERT");
        let key = GlobalArgs::path_or_env(&self.client_key, "NOMAD_CLIENT_KEY");
        if let Some(ca) = ca {
            let ca_pem = std::fs::read(&ca).with_context(|| format!("read {}", ca.display()))?;
            let identity = match (cert, key) {
                (Some(cert), Some(key)) => {
                    let mut pem = std::fs::read(&cert).with_context(|| format!("read {}", cert.display()))?;
                    pem.push(b'\n');
                    pem.extend(std::fs::read(&key).with_context(|| format!("read {}", key.display()))?);
                    Some(pem)
                }
                (None, None) => None,
                _ => bail!("--client-cert and --client-key go together"),
            };
            client = client.with_tls(&ca_pem, identity.as_deref())?;
        } else if cert.is_some() || key.is_some() {
            bail!("a client certificate needs --ca-cert (or NOMAD_CACERT) too");
        }
        Ok(client)
    }

    /// The token to send: `--token`, `DROVER_TOKEN`, else `NOMAD_TOKEN`.
    pub fn token(&self) -> Option<String> {
        self.token
            .clone()
            .filter(|token| !token.is_empty())
            .or_else(|| std::env::var("NOMAD_TOKEN").ok().filter(|token| !token.is_empty()))
    }
}

/// Commands that talk to an agent.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// Work with allocations.
    #[command(subcommand)]
    Alloc(AllocCommand),
    /// Work with client nodes.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Work with namespaces.
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// Work with deployments (rolling updates and canaries).
    #[command(subcommand)]
    Deployment(DeploymentCommand),
    /// Native service discovery: list, inspect and delete registrations.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Rewrite HCL job files in the canonical layout, keeping comments.
    Fmt(fmt::FmtArgs),
    /// Work with the servers.
    #[command(subcommand)]
    Server(ServerCommand),
    /// Operator commands: the Raft configuration and snapshots.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// System maintenance.
    #[command(subcommand)]
    System(SystemCommand),
    /// Access control: bootstrap, policies, tokens and roles.
    #[command(subcommand)]
    Acl(acl::AclCommand),
    /// Make a CA and agent certificates for mutual TLS.
    #[command(subcommand)]
    Tls(tls::TlsCommand),
    /// Work with evaluations.
    #[command(subcommand)]
    Eval(output::EvalCommand),
    /// List jobs, or show the one object (job, allocation, evaluation,
    /// node, deployment, namespace) whose ID starts with PREFIX.
    Status { prefix: Option<String> },
    /// Print the version.
    Version,
    /// Print the address of the web UI.
    Ui,
    /// Variables (encrypted at rest) and their locks.
    #[command(subcommand)]
    Var(var::VarCommand),
    /// Follow the cluster's event stream.
    #[command(subcommand)]
    Event(EventCommand),
    /// Stream the agent's own log lines (Nomad's `monitor`).
    Monitor {
        /// trace, debug, info, warn or error.
        #[arg(long = "log-level", default_value = "info")]
        log_level: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Print the event stream's frames (one JSON object a line) as they
    /// come; heartbeats are left out.
    Stream {
        /// `Topic` or `Topic:key` (Job, Evaluation, Allocation,
        /// Deployment, Node, ACLToken, ACLPolicy, ACLRole, or *); repeat
        /// for several. Every topic when none is given.
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Start from this Raft index (the server's oldest buffered one
        /// when it is older).
        #[arg(long, default_value_t = 0)]
        index: u64,
        /// The namespace to follow, or `*` for all.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Collect every eligible terminal object now.
    Gc,
    /// Reconcile job summaries.
    Reconcile {
        #[command(subcommand)]
        what: ReconcileCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// Job summaries.
    Summaries,
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// List the servers and their status.
    Members,
    /// Ask the agent to join servers (RPC addresses).
    Join { addresses: Vec<String> },
    /// Stop pinging a failed server.
    ForceLeave { node: String },
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// The Raft configuration and leadership.
    #[command(subcommand)]
    Raft(RaftCommand),
    /// Save or restore the whole cluster state.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// The root keyring that encrypts variables.
    #[command(subcommand)]
    Keyring(KeyringCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeyringCommand {
    /// List the root keys (metadata only).
    List,
    /// Make a new active root key.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum RaftCommand {
    /// List the Raft peers.
    ListPeers,
    /// Remove a server from the Raft configuration.
    RemovePeer {
        /// The peer's Raft ID.
        #[arg(long = "peer-id", conflicts_with = "peer_address")]
        peer_id: Option<String>,
        /// The peer's RPC address.
        #[arg(long = "peer-address")]
        peer_address: Option<String>,
    },
    /// Hand leadership to another server (the best one if none is named).
    TransferLeadership {
        #[arg(long = "peer-id", conflicts_with = "peer_address")]
        peer_id: Option<String>,
        #[arg(long = "peer-address")]
        peer_address: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save the cluster state to a file.
    Save { file: PathBuf },
    /// Replace the cluster state with a file's.
    Restore { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// List deployments.
    List,
    /// Show a deployment and its task groups.
    Status { id: String },
    /// Promote the canaries of a deployment (every group).
    Promote { id: String },
    /// Mark a deployment failed (reverting the job when auto_revert is set).
    Fail { id: String },
    /// Pause a deployment.
    Pause { id: String },
    /// Resume a paused deployment.
    Resume { id: String },
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Submit a job file and watch it get placed.
    Run(JobRunArgs),
    /// Show a job, or list all jobs.
    Status { id: Option<String> },
    /// Stop a running job.
    Stop {
        id: String,
        /// Remove the job from the state entirely.
        #[arg(long)]
        purge: bool,
        /// Return at once instead of watching the evaluation.
        #[arg(long)]
        detach: bool,
    },
    /// Check a job file for errors without submitting it.
    Validate(JobFileArgs),
    /// Change a task group's count: `job scale JOB [GROUP] COUNT` (the
    /// group may be left out when the job has only one).
    Scale {
        #[arg(num_args = 2..=3, required = true)]
        args: Vec<String>,
    },
    /// List a job's versions, newest first (`-p`: with each one's diff).
    History {
        id: String,
        /// Show each version's diff from the one before.
        #[arg(short = 'p')]
        diffs: bool,
    },
    /// Submit an earlier version of a job again, as its next version.
    Revert { id: String, version: u64 },
    /// Print a job as the servers hold it, as JSON.
    Inspect { id: String },
    /// Dry-run the scheduler: what submitting the file would change.
    /// Exits 0 when no allocation changes, 1 when some do, 255 on error.
    Plan(JobFileArgs),
    /// Dispatch a parameterized job: `job dispatch [-meta k=v] JOB
    /// [PAYLOAD_FILE|-]` (`-` reads the payload from standard input).
    Dispatch {
        /// Meta for the dispatched job, `key=value`; repeatable.
        #[arg(long = "meta")]
        meta: Vec<String>,
        /// A second dispatch with the same token makes no new job.
        #[arg(long = "idempotency-token", default_value = "")]
        idempotency_token: String,
        /// Return once the job is dispatched.
        #[arg(long)]
        detach: bool,
        id: String,
        payload: Option<PathBuf>,
    },
    /// Create an evaluation of a job (`-force-reschedule`: replace its
    /// failed allocations now, whatever their reschedule policy).
    Eval {
        #[arg(long = "force-reschedule")]
        force_reschedule: bool,
        /// Return once the evaluation is created.
        #[arg(long)]
        detach: bool,
        id: String,
    },
    /// Periodic jobs: `job periodic force JOB` launches one now.
    Periodic {
        #[command(subcommand)]
        command: PeriodicCommand,
    },
    /// Write an example job file.
    Init {
        /// Where to write it.
        #[arg(default_value = "example.nomad.hcl")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PeriodicCommand {
    /// Launch a periodic job now, whatever its schedule.
    Force {
        id: String,
        /// Return once the job is launched.
        #[arg(long)]
        detach: bool,
    },
}

#[derive(Debug, Args)]
pub struct JobFileArgs {
    /// The job file (HCL2 or JSON).
    pub file: PathBuf,
    /// Set an HCL variable: `--var name=value`.
    #[arg(long = "var")]
    pub vars: Vec<String>,
    /// Read HCL variables from a file.
    #[arg(long = "var-file")]
    pub var_files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct JobRunArgs {
    #[command(flatten)]
    pub file: JobFileArgs,
    /// Return once the job is submitted.
    #[arg(long)]
    pub detach: bool,
    /// Print the job as JSON and submit nothing.
    #[arg(long)]
    pub output: bool,
    /// Submit only if the job's modify index is still this one (from
    /// `job plan`); 0 means the job must not exist yet.
    #[arg(long = "check-index")]
    pub check_index: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum AllocCommand {
    /// Show an allocation and its tasks.
    Status { id: String },
    /// List a directory of an allocation, or print a file of it.
    Fs {
        alloc: String,
        /// A path in the allocation's directory (`/` by default).
        path: Option<String>,
    },
    /// Send a signal to a task of an allocation (every task without one).
    Signal {
        /// The signal, as a name (`SIGHUP`).
        #[arg(short = 's', long, default_value = "SIGKILL")]
        signal: String,
        alloc: String,
        task: Option<String>,
    },
    /// Restart a task of an allocation in place (every task without one).
    Restart { alloc: String, task: Option<String> },
    /// Print (or follow) a task's output.
    Logs {
        /// Follow new output.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Show stderr instead of stdout.
        #[arg(long)]
        stderr: bool,
        /// Show only the last N bytes... or lines, as `-tail` in Nomad.
        #[arg(long)]
        tail: bool,
        alloc: String,
        task: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Show a node, or list all nodes.
    Status { id: Option<String> },
    /// Start (`-enable`) or end (`-disable`) a node's drain: its
    /// allocations move elsewhere, by each group's `migrate` block.
    Drain {
        #[arg(long, conflicts_with = "disable", required_unless_present = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        /// How long allocations may take to move before they are stopped
        /// (a Go duration; 1h by default).
        #[arg(long, conflicts_with_all = ["no_deadline", "force"])]
        deadline: Option<String>,
        /// Let allocations move for as long as they need.
        #[arg(long = "no-deadline", conflicts_with = "force")]
        no_deadline: bool,
        /// Stop every allocation at once, ignoring `migrate`.
        #[arg(long)]
        force: bool,
        /// Leave system jobs' allocations running.
        #[arg(long = "ignore-system")]
        ignore_system: bool,
        /// With `-disable`: leave the node ineligible for new work.
        #[arg(long = "keep-ineligible")]
        keep_ineligible: bool,
        /// Return at once instead of following the drain.
        #[arg(long)]
        detach: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        id: String,
    },
    /// Allow (`-enable`) or forbid (`-disable`) new placements on a node.
    Eligibility {
        #[arg(long, conflicts_with = "disable", required_unless_present = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// List the services of a namespace (`*` for every namespace).
    List {
        #[arg(long, default_value = "default")]
        namespace: String,
    },
    /// Show the instances of a service.
    Info {
        #[arg(long, default_value = "default")]
        namespace: String,
        name: String,
    },
    /// Delete one registration (its client registers it again when the
    /// instance changes: a check status, a task restart).
    Delete {
        #[arg(long, default_value = "default")]
        namespace: String,
        name: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NamespaceCommand {
    /// Create a namespace, or update one.
    Apply {
        /// The namespace's description.
        #[arg(long)]
        description: Option<String>,
        /// Metadata as key=value; repeat for more.
        #[arg(long = "meta")]
        meta: Vec<String>,
        name: String,
    },
    /// List namespaces.
    List,
    /// Show a namespace.
    Status { name: String },
    /// Delete a namespace (it must hold no live job).
    Delete { name: String },
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Runs a command and returns the process exit code.
pub async fn run(command: Command, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if global.verbose {
        render::show_full_ids();
    }
    if let Command::Version = command {
        println!("Drover v{}", env!("CARGO_PKG_VERSION"));
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Ui = command {
        println!("{}", output::ui_address(&global.address()));
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Tls(command) = command {
        return tls::run_tls(command);
    }
    if let Command::Fmt(args) = &command {
        let mut stdin = std::io::stdin().lock();
        let mut stdout = std::io::stdout().lock();
        let mut stderr = std::io::stderr().lock();
        return Ok(fmt::run_fmt(args, &mut stdin, &mut stdout, &mut stderr)?);
    }
    let client = global.client()?;
    if let Some(region) = global.region() {
        let regions: Vec<String> = client.get("/v1/regions").await?.value;
        if !regions.contains(&region) {
            bail!(
                "region {region:?} is not served here (this cluster serves {}); Drover does not forward between regions",
                regions.join(", ")
            );
        }
    }
    let mut command = command;
    if let Command::Status { prefix: Some(prefix) } = &command {
        let matches = output::find_prefix(&client, prefix).await?;
        command = output::choose(prefix, &matches).map_err(|message| anyhow!(message))?;
    }
    if global.json || global.template.is_some() {
        let Some(path) = output::read_path(&command) else {
            bail!("-json and -t apply to read commands (status, list, inspect, info, history)");
        };
        let value: serde_json::Value = client.get(&path).await?.value;
        print!(
            "{}",
            output::format_output(global.json, global.template.as_deref(), &value)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    match command {
        Command::Fmt(_) | Command::Version | Command::Ui => Ok(ExitCode::SUCCESS),
        Command::Status { .. } => run_job(JobCommand::Status { id: None }, &client).await,
        Command::Eval(output::EvalCommand::List) => {
            let evals = client.evaluations("").await?;
            print!("{}", output::eval_list(&evals));
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval(output::EvalCommand::Status { id }) => {
            let eval = client.evaluation(&id).await?;
            print!("{}", output::eval_status(&eval));
            Ok(ExitCode::SUCCESS)
        }
        Command::Event(EventCommand::Stream {
            topics,
            index,
            namespace,
        }) => {
            let mut query = vec![
                format!("index={index}"),
                format!("namespace={}", api_client::encode(&namespace)),
            ];
            query.extend(
                topics
                    .iter()
                    .map(|topic| format!("topic={}", api_client::encode(topic))),
            );
            let stream = client
                .get_stream(&format!("/v1/event/stream?{}", query.join("&")))
                .await?;
            copy_lines(stream, |line| line.trim() != "{}").await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Monitor { log_level } => {
            let path = format!(
                "/v1/agent/monitor?log_level={}&plain=true",
                api_client::encode(&log_level)
            );
            copy_lines(client.get_stream(&path).await?, |_| true).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Job(job) => run_job(job, &client).await,
        Command::Alloc(alloc) => run_alloc(alloc, &client).await,
        Command::Node(node) => run_node(node, &client).await,
        Command::Server(command) => run_server(command, &client).await,
        Command::Operator(command) => run_operator(command, &client).await,
        Command::System(SystemCommand::Gc) => {
            client.put_empty("/v1/system/gc").await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::System(SystemCommand::Reconcile {
            what: ReconcileCommand::Summaries,
        }) => {
            client.put_empty("/v1/system/reconcile/summaries").await?;
            println!("Reconciled job summaries");
            Ok(ExitCode::SUCCESS)
        }
        Command::Namespace(namespace) => run_namespace(namespace, &client).await,
        Command::Deployment(command) => run_deployment(command, &client).await,
        Command::Service(command) => run_service(command, &client).await,
        Command::Acl(command) => acl::run_acl(command, &client).await,
        Command::Var(command) => var::run_var(command, &client).await,
        Command::Tls(_) => Ok(ExitCode::SUCCESS),
    }
}

async fn run_deployment(command: DeploymentCommand, client: &Client) -> anyhow::Result<ExitCode> {
    let (id, action) = match command {
        DeploymentCommand::List => {
            let deployments = client.deployments("").await?;
            print!("{}", render_deployment::deployment_list(&deployments));
            return Ok(ExitCode::SUCCESS);
        }
        DeploymentCommand::Status { id } => {
            let deployment = client.deployment(&id).await?;
            print!("{}", render_deployment::deployment_status(&deployment));
            return Ok(ExitCode::SUCCESS);
        }
        DeploymentCommand::Promote { id } => (id, "promote"),
        DeploymentCommand::Fail { id } => (id, "fail"),
        DeploymentCommand::Pause { id } => (id, "pause"),
        DeploymentCommand::Resume { id } => (id, "resume"),
    };
    let deployment = client.deployment(&id).await?;
    let answer = match action {
        "promote" => client.promote_deployment(&deployment.id).await?,
        "fail" => client.fail_deployment(&deployment.id).await?,
        "pause" => client.pause_deployment(&deployment.id, true).await?,
        _ => client.pause_deployment(&deployment.id, false).await?,
    };
    let short = render::short_id(&deployment.id);
    match action {
        "promote" => println!("Deployment {short:?} promoted"),
        "fail" => match answer.reverted_job_version {
            Some(version) => println!("Deployment {short:?} failed; job reverted (now version {version})"),
            None => println!("Deployment {short:?} failed"),
        },
        "pause" => println!("Deployment {short:?} paused"),
        _ => println!("Deployment {short:?} resumed"),
    }
    if !answer.eval_id.is_empty() {
        println!("==> Evaluation {:?} created", render::short_id(&answer.eval_id));
    }
    Ok(ExitCode::SUCCESS)
}

fn peer_query(id: Option<String>, address: Option<String>) -> String {
    match (id, address) {
        (Some(id), _) => format!("?id={}", api_client::encode(&id)),
        (None, Some(address)) => format!("?address={}", api_client::encode(&address)),
        (None, None) => String::new(),
    }
}

async fn run_server(command: ServerCommand, client: &Client) -> anyhow::Result<ExitCode> {
    match command {
        ServerCommand::Members => {
            let members: serde_json::Value = client.get("/v1/agent/members").await?.value;
            print!("{}", render::server_members(&members));
        }
        ServerCommand::Join { addresses } => {
            if addresses.is_empty() {
                bail!("name at least one server address to join");
            }
            let query: Vec<String> = addresses
                .iter()
                .map(|address| format!("address={}", api_client::encode(address)))
                .collect();
            let answer = client.put_empty(&format!("/v1/agent/join?{}", query.join("&"))).await?;
            println!("Joined {} servers successfully", answer["num_joined"]);
        }
        ServerCommand::ForceLeave { node } => {
            client
                .put_empty(&format!("/v1/agent/force-leave?node={}", api_client::encode(&node)))
                .await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_operator(command: OperatorCommand, client: &Client) -> anyhow::Result<ExitCode> {
    match command {
        OperatorCommand::Raft(RaftCommand::ListPeers) => {
            let configuration: serde_json::Value = client.get("/v1/operator/raft/configuration").await?.value;
            print!("{}", render::raft_peers(&configuration));
        }
        OperatorCommand::Raft(RaftCommand::RemovePeer { peer_id, peer_address }) => {
            if peer_id.is_none() && peer_address.is_none() {
                bail!("name the peer with --peer-id or --peer-address");
            }
            let query = peer_query(peer_id, peer_address);
            client.delete(&format!("/v1/operator/raft/peer{query}")).await?;
            println!("Removed peer");
        }
        OperatorCommand::Raft(RaftCommand::TransferLeadership { peer_id, peer_address }) => {
            let query = peer_query(peer_id, peer_address);
            let answer = client
                .put_empty(&format!("/v1/operator/raft/transfer-leadership{query}"))
                .await?;
            println!("Transferred leadership to {}", answer["Leader"].as_str().unwrap_or(""));
        }
        OperatorCommand::Snapshot(SnapshotCommand::Save { file }) => {
            let bytes = client.snapshot_save().await?;
            std::fs::write(&file, &bytes).with_context(|| format!("write {}", file.display()))?;
            println!("State file written to {}", file.display());
        }
        OperatorCommand::Snapshot(SnapshotCommand::Restore { file }) => {
            let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            client.snapshot_restore(bytes).await?;
            println!("Snapshot restored");
        }
        OperatorCommand::Keyring(KeyringCommand::List) => {
            let keys = client.keyring_keys().await?;
            print!("{}", var::render_keys(&keys));
        }
        OperatorCommand::Keyring(KeyringCommand::Rotate) => {
            let key = client.keyring_rotate().await?;
            print!("{}", var::render_keys(std::slice::from_ref(&key)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads and parses a job file locally, as Nomad's CLI does.
pub fn load_job(args: &JobFileArgs) -> anyhow::Result<Result<types::Job, String>> {
    let source = std::fs::read_to_string(&args.file).with_context(|| format!("read {}", args.file.display()))?;
    let filename = args.file.display().to_string();
    let mut variables = BTreeMap::new();
    for (key, value) in std::env::vars() {
        if let Some(name) = key
            .strip_prefix("NOMAD_VAR_")
            .or_else(|| key.strip_prefix("DROVER_VAR_"))
        {
            variables.insert(name.to_string(), value);
        }
    }
    for pair in &args.vars {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--var {pair:?} must be name=value"))?;
        variables.insert(name.to_string(), value.to_string());
    }
    let mut var_files = Vec::new();
    for path in &args.var_files {
        let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        var_files.push((path.display().to_string(), text));
    }
    let base = args.file.parent().map(PathBuf::from).unwrap_or_default();
    let read_file = move |name: &str| -> Result<String, String> {
        std::fs::read_to_string(base.join(name)).map_err(|error| format!("read {name}: {error}"))
    };
    // `uuidv4()` gets its bits from the operating system's generator.
    let random = || uuid::Uuid::new_v4().as_u128();
    let options = jobspec::ParseOptions {
        variables,
        var_files,
        now: now_nanos(),
        read_file: Some(&read_file),
        random: Some(&random),
        ..jobspec::ParseOptions::default()
    };
    Ok(jobspec::parse(&source, &filename, &options).map_err(|diagnostics| diagnostics.render(&source, &filename)))
}

/// Puts a job that names no namespace of its own into the `-namespace`
/// one, as Nomad's CLI does; a job file naming another namespace than the
/// flag is an error rather than a silent choice between them.
fn in_namespace(
    loaded: Result<types::Job, String>,
    namespace: Option<&str>,
) -> anyhow::Result<Result<types::Job, String>> {
    let (Ok(mut job), Some(namespace)) = (loaded.clone(), namespace) else {
        return Ok(loaded);
    };
    if namespace == "*" {
        bail!("-namespace=* names every namespace; a job goes into one");
    }
    if job.namespace.is_empty() || job.namespace == types::DEFAULT_NAMESPACE {
        job.namespace = namespace.to_string();
    } else if job.namespace != namespace {
        bail!(
            "the job file puts job {:?} in namespace {:?}, but -namespace asks for {namespace:?}",
            job.id,
            job.namespace
        );
    }
    Ok(Ok(job))
}

/// Resolves an ID or unique prefix through a prefix list.
fn resolve_prefix<T>(items: Vec<T>, prefix: &str, id_of: impl Fn(&T) -> &str, kind: &str) -> anyhow::Result<T> {
    let mut matches: Vec<T> = items
        .into_iter()
        .filter(|item| id_of(item).starts_with(prefix))
        .collect();
    if let Some(pos) = matches.iter().position(|item| id_of(item) == prefix) {
        return Ok(matches.swap_remove(pos));
    }
    match matches.len() {
        0 => bail!("No {kind} with prefix or ID {prefix:?} found"),
        1 => Ok(matches.remove(0)),
        _ => {
            let ids: Vec<&str> = matches.iter().map(&id_of).collect();
            bail!("Prefix {prefix:?} matched multiple {kind}s:\n{}", ids.join("\n"))
        }
    }
}

async fn run_job(command: JobCommand, client: &Client) -> anyhow::Result<ExitCode> {
    match command {
        JobCommand::Run(args) => job_run(args, client).await,
        JobCommand::Status { id: None } => {
            let jobs = client.jobs("").await?;
            print!("{}", render::job_list(&jobs));
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Status { id: Some(id) } => {
            let stub = resolve_prefix(client.jobs(&id).await?, &id, |job| job.id.as_str(), "job")?;
            let job = client.job(&stub.id).await?;
            let summary = client.job_summary(&stub.id).await.ok();
            let allocs = client.job_allocations(&stub.id).await?;
            print!("{}", render::job_status(&job, summary.as_ref(), &allocs, now_nanos()));
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Stop { id, purge, detach } => {
            let stub = resolve_prefix(client.jobs(&id).await?, &id, |job| job.id.as_str(), "job")?;
            let response = client.stop_job(&stub.id, purge).await?;
            if detach || response.eval_id.is_empty() {
                println!("{}", response.eval_id);
                return Ok(ExitCode::SUCCESS);
            }
            println!("==> Monitoring evaluation {:?}", render::short_id(&response.eval_id));
            let eval = wait_eval(client, &response.eval_id).await?;
            println!("    {}", render::eval_line(&eval));
            println!(
                "==> Evaluation {:?} finished with status {:?}",
                render::short_id(&eval.id),
                eval.status
            );
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Plan(args) => job_plan(args, client).await,
        JobCommand::Dispatch {
            meta,
            idempotency_token,
            detach,
            id,
            payload,
        } => {
            let mut pairs = std::collections::BTreeMap::new();
            for entry in &meta {
                let Some((key, value)) = entry.split_once('=') else {
                    bail!("meta {entry:?} is not key=value");
                };
                pairs.insert(key.to_string(), value.to_string());
            }
            let payload = match payload {
                None => Vec::new(),
                Some(path) => read_payload(&path)?,
            };
            let response = client
                .dispatch_job(&id, &payload, &pairs, &idempotency_token)
                .await
                .map_err(|error| match error {
                    ApiError::Status { status, message } => anyhow!("Failed to dispatch job ({status}): {message}"),
                    other => anyhow!(other),
                })?;
            println!("Dispatched Job ID = {}", response.dispatched_job_id);
            if response.eval_id.is_empty() {
                println!("Evaluation ID     = <none: waiting for a slot under max_concurrent>");
                return Ok(ExitCode::SUCCESS);
            }
            println!("Evaluation ID     = {}", types::short_id(&response.eval_id));
            monitor_launch(client, &response.eval_id, detach).await
        }
        JobCommand::Eval {
            force_reschedule,
            detach,
            id,
        } => {
            let body = serde_json::json!({
                "JobID": id,
                "EvalOptions": { "ForceReschedule": force_reschedule },
            });
            let response: api_types::JobRegisterResponse = client
                .put_json_value(&format!("/v1/job/{}/evaluate", api_client::encode(&id)), &body)
                .await
                .map_err(|error| match error {
                    ApiError::Status { status, message } => anyhow!("Error evaluating job ({status}): {message}"),
                    other => anyhow!(other),
                })?;
            println!("Evaluation ID: {}", response.eval_id);
            monitor_launch(client, &response.eval_id, detach).await
        }
        JobCommand::Periodic {
            command: PeriodicCommand::Force { id, detach },
        } => {
            let response = client.force_periodic(&id).await.map_err(|error| match error {
                ApiError::Status { status, message } => anyhow!("Error forcing periodic job ({status}): {message}"),
                other => anyhow!(other),
            })?;
            println!("Launched Job ID = {}", response.dispatched_job_id);
            if response.eval_id.is_empty() {
                println!("Evaluation ID   = <none: waiting for a slot under max_concurrent>");
                return Ok(ExitCode::SUCCESS);
            }
            monitor_launch(client, &response.eval_id, detach).await
        }
        JobCommand::History { id, diffs } => {
            let answer: serde_json::Value = client
                .get(&format!("/v1/job/{}/versions?diffs={diffs}", api_client::encode(&id)))
                .await?
                .value;
            let versions = answer["Versions"].as_array().cloned().unwrap_or_default();
            let diff_list: Vec<api_types::job_diff::JobDiff> =
                serde_json::from_value(answer["Diffs"].clone()).unwrap_or_default();
            for (position, version) in versions.iter().enumerate() {
                if position > 0 {
                    println!();
                }
                let submit = version["SubmitTime"].as_i64().unwrap_or(0);
                print!(
                    "{}",
                    render::key_values(&[
                        ("Version", version["Version"].to_string()),
                        ("Stable", version["Stable"].to_string()),
                        ("Submit Date", api_types::format_rfc3339(submit)),
                    ])
                );
                if let Some(diff) = diff_list.get(position) {
                    println!("Diff        =");
                    print!("{}", render_plan::job_diff(diff));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Revert { id, version } => {
            let body = serde_json::json!({ "JobID": id, "JobVersion": version });
            let response: api_types::JobRegisterResponse = client
                .put_json_value(&format!("/v1/job/{}/revert", api_client::encode(&id)), &body)
                .await
                .map_err(describe)?;
            println!("Job {id:?} reverted to version {version}");
            if !response.eval_id.is_empty() {
                println!("Evaluation ID: {}", response.eval_id);
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Inspect { id } => {
            let job = client.job(&id).await?;
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "Job": job }))?);
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Scale { args } => {
            let (job_id, group, count) = match args.as_slice() {
                [job_id, count] => {
                    let job = client.job(job_id).await?;
                    let groups: Vec<String> = job["TaskGroups"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|group| group["Name"].as_str().map(str::to_string))
                        .collect();
                    let [group] = groups.as_slice() else {
                        bail!(
                            "job {job_id:?} has {} task groups; name the group to scale",
                            groups.len()
                        );
                    };
                    (job_id.clone(), group.clone(), count.clone())
                }
                [job_id, group, count] => (job_id.clone(), group.clone(), count.clone()),
                _ => bail!("usage: drover job scale JOB [GROUP] COUNT"),
            };
            let count: i64 = count
                .parse()
                .map_err(|_| anyhow!("count {count:?} is not a whole number"))?;
            let response = client
                .scale_job(&job_id, &group, count, "submitted using the Drover CLI")
                .await
                .map_err(|error| match error {
                    ApiError::Status { status, message } => anyhow!("Error scaling job ({status}): {message}"),
                    other => anyhow!(other),
                })?;
            println!("Scaled task group {group:?} of job {job_id:?} to {count}");
            if !response.eval_id.is_empty() {
                println!("Evaluation ID: {}", response.eval_id);
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Validate(args) => match load_job(&args)? {
            Ok(_) => {
                println!("Job validation successful");
                Ok(ExitCode::SUCCESS)
            }
            Err(rendered) => {
                eprintln!("Job validation errors:\n{rendered}");
                Ok(ExitCode::from(1))
            }
        },
        JobCommand::Init { file } => {
            if file.exists() {
                bail!("Job file {} already exists", file.display());
            }
            std::fs::write(&file, EXAMPLE_JOB).with_context(|| format!("write {}", file.display()))?;
            println!("Example job file written to {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads a dispatch payload from a file, or standard input for `-`, within
/// the servers' limit.
fn read_payload(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let limit = types::limits::MAX_DISPATCH_PAYLOAD;
    let mut payload = Vec::new();
    let reader: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("open payload file {}", path.display()))?)
    };
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut payload)
        .with_context(|| format!("read payload {}", path.display()))?;
    if payload.len() > limit {
        bail!(
            "payload {} is larger than the {limit} bytes a dispatch may carry",
            path.display()
        );
    }
    Ok(payload)
}

/// Follows a launched child's evaluation, unless detached.
async fn monitor_launch(client: &Client, eval_id: &str, detach: bool) -> anyhow::Result<ExitCode> {
    if detach {
        return Ok(ExitCode::SUCCESS);
    }
    println!("==> Monitoring evaluation {:?}", types::short_id(eval_id));
    let eval = wait_eval(client, eval_id).await?;
    println!("    {}", render::eval_line(&eval));
    println!(
        "==> Evaluation {:?} finished with status {:?}",
        types::short_id(&eval.id),
        eval.status
    );
    Ok(ExitCode::SUCCESS)
}

/// Waits for an evaluation to reach a terminal status (blocking queries).
async fn wait_eval(client: &Client, eval_id: &str) -> anyhow::Result<Evaluation> {
    let mut index = 0;
    loop {
        let answer = client
            .get_blocking::<Evaluation>(&format!("/v1/evaluation/{eval_id}"), index, Duration::from_secs(30))
            .await?;
        let eval = answer.value;
        if matches!(eval.status.as_str(), "complete" | "failed" | "canceled" | "blocked") {
            return Ok(eval);
        }
        index = answer.index.max(index);
    }
}

/// `job plan`: 0 when nothing changes, 1 when allocations change, 255 on
/// any error (as Nomad's exit codes).
async fn job_plan(args: JobFileArgs, client: &Client) -> anyhow::Result<ExitCode> {
    let job = match load_job(&args).and_then(|loaded| in_namespace(loaded, client.namespace_asked())) {
        Ok(Ok(job)) => job,
        Ok(Err(rendered)) => {
            eprintln!("Error parsing job file {}:\n{rendered}", args.file.display());
            return Ok(ExitCode::from(255));
        }
        Err(error) => {
            eprintln!("Error: {error:#}");
            return Ok(ExitCode::from(255));
        }
    };
    let answer = match client.plan_job(&job.id, jobspec::job_to_api(&job)).await {
        Ok(answer) => answer,
        Err(error) => {
            eprintln!("Error during plan: {}", describe(error));
            return Ok(ExitCode::from(255));
        }
    };
    let diff: api_types::job_diff::JobDiff = match serde_json::from_value(answer["Diff"].clone()) {
        Ok(diff) => diff,
        Err(error) => {
            eprintln!("Error reading the plan's diff: {error}");
            return Ok(ExitCode::from(255));
        }
    };
    print!("{}", render_plan::job_diff(&diff));
    let mut failed = Vec::new();
    if let Some(groups) = answer["FailedTGAllocs"].as_object() {
        for (group, metric) in groups {
            let exhausted = metric["NodesExhausted"].as_u64().unwrap_or(0);
            let filtered = metric["NodesFiltered"].as_u64().unwrap_or(0);
            failed.push((
                group.clone(),
                format!("{exhausted} nodes exhausted, {filtered} filtered"),
            ));
        }
    }
    let modify_index = answer["JobModifyIndex"].as_u64().unwrap_or(0);
    print!(
        "{}",
        render_plan::plan_footer(&failed, modify_index, &args.file.display().to_string())
    );
    let changes = answer["Annotations"]["DesiredTGUpdates"]
        .as_object()
        .into_iter()
        .flat_map(|groups| groups.values())
        .any(|updates| {
            [
                "Place",
                "Stop",
                "Migrate",
                "InPlaceUpdate",
                "DestructiveUpdate",
                "Canary",
                "Preemptions",
            ]
            .iter()
            .any(|key| updates[*key].as_u64().unwrap_or(0) > 0)
        });
    Ok(if changes { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

async fn job_run(args: JobRunArgs, client: &Client) -> anyhow::Result<ExitCode> {
    let job = match in_namespace(load_job(&args.file)?, client.namespace_asked())? {
        Ok(job) => job,
        Err(rendered) => {
            eprintln!("Error parsing job file {}:\n{rendered}", args.file.file.display());
            return Ok(ExitCode::from(1));
        }
    };
    if args.output {
        println!("{}", jobspec::render_json(&job));
        return Ok(ExitCode::SUCCESS);
    }
    let job_type = job.job_type;
    let job_id = job.id.clone();
    let response = client
        .register_job_checked(jobspec::job_to_api(&job), args.check_index)
        .await
        .map_err(describe)?;
    if args.detach || response.eval_id.is_empty() {
        println!("Job registration successful");
        if !response.eval_id.is_empty() {
            println!("Evaluation ID: {}", response.eval_id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("==> Monitoring evaluation {:?}", render::short_id(&response.eval_id));
    let eval = wait_eval(client, &response.eval_id).await?;
    println!("    {}", render::eval_line(&eval));
    let failures = render::placement_failures(&eval);
    if !failures.is_empty() {
        println!(
            "==> Evaluation {:?} finished with placement failures:",
            render::short_id(&eval.id)
        );
        print!("{failures}");
        return Ok(ExitCode::from(2));
    }
    if eval.status != "complete" {
        println!(
            "==> Evaluation {:?} finished with status {:?}",
            render::short_id(&eval.id),
            eval.status
        );
        return Ok(ExitCode::from(2));
    }
    let job_value = client.job(&job_id).await?;
    let version = job_value.get("Version").and_then(|v| v.as_u64()).unwrap_or(0);
    let wanted: u64 = job.task_groups.iter().map(|group| u64::from(group.count)).sum();
    let started = std::time::Instant::now();
    let mut reported: BTreeMap<String, String> = BTreeMap::new();
    let mut index = 0;
    loop {
        let answer = client
            .get_blocking::<Vec<AllocListStub>>(&format!("/v1/job/{job_id}/allocations"), index, Duration::from_secs(5))
            .await?;
        index = answer.index.max(index);
        let current: Vec<&AllocListStub> = answer
            .value
            .iter()
            .filter(|alloc| alloc.job_version == version && alloc.desired_status == "run")
            .collect();
        for alloc in &current {
            if reported.get(&alloc.id) != Some(&alloc.client_status) {
                println!(
                    "    Allocation {:?} on node {:?}: {}",
                    render::short_id(&alloc.id),
                    render::short_id(&alloc.node_id),
                    alloc.client_status
                );
                reported.insert(alloc.id.clone(), alloc.client_status.clone());
            }
        }
        let done = match job_type {
            // A batch job is done once placed; a service once its tasks run.
            types::JobType::Batch | types::JobType::Sysbatch => !current.is_empty(),
            types::JobType::Service => {
                current.iter().filter(|alloc| alloc.client_status == "running").count() as u64 >= wanted
            }
            types::JobType::System => {
                !current.is_empty() && current.iter().all(|alloc| alloc.client_status == "running")
            }
        };
        let failed = current.iter().any(|alloc| alloc.client_status == "failed");
        if done {
            println!(
                "==> Job {job_id:?} is {}",
                if job_type == types::JobType::Service {
                    "running"
                } else {
                    "placed"
                }
            );
            return Ok(ExitCode::SUCCESS);
        }
        if failed && job_type == types::JobType::Service {
            println!("==> An allocation of job {job_id:?} failed; see `drover alloc status`");
            return Ok(ExitCode::from(2));
        }
        if started.elapsed() > Duration::from_secs(300) {
            println!("==> Gave up waiting for job {job_id:?}");
            return Ok(ExitCode::from(2));
        }
    }
}

fn describe(error: ApiError) -> anyhow::Error {
    match error {
        ApiError::Status { status, message } => anyhow!("Error submitting job ({status}): {message}"),
        other => anyhow!(other),
    }
}

async fn run_alloc(command: AllocCommand, client: &Client) -> anyhow::Result<ExitCode> {
    match command {
        AllocCommand::Status { id } => {
            let stub = resolve_prefix(
                client.allocations(&id).await?,
                &id,
                |alloc| alloc.id.as_str(),
                "allocation",
            )?;
            let alloc = client.allocation(&stub.id).await?;
            print!("{}", render::alloc_status(&alloc, now_nanos()));
            Ok(ExitCode::SUCCESS)
        }
        AllocCommand::Fs { alloc, path } => {
            let stub = resolve_prefix(
                client.allocations(&alloc).await?,
                &alloc,
                |alloc| alloc.id.as_str(),
                "allocation",
            )?;
            let path = path.unwrap_or_else(|| "/".to_string());
            let stat = client.alloc_fs_stat(&stub.id, &path).await?;
            if stat.get("IsDir").and_then(serde_json::Value::as_bool) == Some(true) {
                let entries = client.alloc_fs_ls(&stub.id, &path).await?;
                print!("{}", render::fs_listing(&entries));
            } else {
                let mut stream = Box::pin(client.alloc_fs_cat(&stub.id, &path).await?);
                let mut stdout = std::io::stdout();
                while let Some(chunk) = stream.next().await {
                    stdout.write_all(&chunk?)?;
                }
                stdout.flush()?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AllocCommand::Signal { signal, alloc, task } => {
            let stub = resolve_prefix(
                client.allocations(&alloc).await?,
                &alloc,
                |alloc| alloc.id.as_str(),
                "allocation",
            )?;
            client.alloc_signal(&stub.id, task.as_deref(), &signal).await?;
            Ok(ExitCode::SUCCESS)
        }
        AllocCommand::Restart { alloc, task } => {
            let stub = resolve_prefix(
                client.allocations(&alloc).await?,
                &alloc,
                |alloc| alloc.id.as_str(),
                "allocation",
            )?;
            client.alloc_restart(&stub.id, task.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
        AllocCommand::Logs {
            follow,
            stderr,
            tail,
            alloc,
            task,
        } => {
            let stub = resolve_prefix(
                client.allocations(&alloc).await?,
                &alloc,
                |alloc| alloc.id.as_str(),
                "allocation",
            )?;
            let task = match task {
                Some(task) => task,
                None => {
                    let full = client.allocation(&stub.id).await?;
                    let names: Vec<String> = full
                        .job
                        .as_ref()
                        .and_then(|job| job.get("TaskGroups"))
                        .and_then(|groups| groups.as_array())
                        .and_then(|groups| {
                            groups
                                .iter()
                                .find(|group| group.get("Name").and_then(|n| n.as_str()) == Some(&stub.task_group))
                        })
                        .and_then(|group| group.get("Tasks"))
                        .and_then(|tasks| tasks.as_array())
                        .map(|tasks| {
                            tasks
                                .iter()
                                .filter_map(|task| task.get("Name").and_then(|n| n.as_str()).map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    match names.as_slice() {
                        [only] => only.clone(),
                        _ => bail!(
                            "Allocation {} has several tasks; name one: {}",
                            stub.id,
                            names.join(", ")
                        ),
                    }
                }
            };
            let request = LogsRequest {
                task,
                log_type: if stderr { "stderr" } else { "stdout" }.to_string(),
                follow,
                offset: if tail { 10 * 1024 } else { 0 },
                origin: if tail { "end" } else { "start" }.to_string(),
            };
            let mut stream = Box::pin(client.logs(&stub.id, &request).await?);
            let mut stdout = std::io::stdout();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                stdout.write_all(&chunk)?;
                stdout.flush()?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Copies a streamed body to stdout line by line, keeping the lines
/// `keep` accepts, until the stream ends. A line longer than 16 MiB is an
/// error rather than unbounded memory.
async fn copy_lines<B: AsRef<[u8]>>(
    stream: impl futures::Stream<Item = Result<B, ApiError>>,
    keep: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    const MAX_LINE: usize = 16 << 20;
    let mut stream = Box::pin(stream);
    let mut pending: Vec<u8> = Vec::new();
    let mut stdout = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        pending.extend_from_slice(chunk?.as_ref());
        while let Some(at) = pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            let text = String::from_utf8_lossy(&line);
            if keep(&text) {
                stdout.write_all(text.as_bytes())?;
                stdout.flush()?;
            }
        }
        if pending.len() > MAX_LINE {
            bail!("a streamed line is longer than {MAX_LINE} bytes");
        }
    }
    Ok(())
}

async fn run_node(command: NodeCommand, client: &Client) -> anyhow::Result<ExitCode> {
    match command {
        NodeCommand::Drain {
            enable,
            deadline,
            no_deadline,
            force,
            ignore_system,
            keep_ineligible,
            detach,
            yes,
            id,
            ..
        } => {
            let stub = resolve_prefix(client.nodes(&id).await?, &id, |node| node.id.as_str(), "node")?;
            let spec = if enable {
                let nanos = if force {
                    -1
                } else if no_deadline {
                    0
                } else {
                    let text = deadline.as_deref().unwrap_or("1h");
                    let duration = types::duration::parse_duration(text)
                        .map_err(|error| anyhow!("invalid -deadline {text:?}: {error}"))?;
                    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX).max(1)
                };
                serde_json::json!({ "Deadline": nanos, "IgnoreSystemJobs": ignore_system })
            } else {
                serde_json::Value::Null
            };
            if enable && !yes && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!(
                    "Are you sure you want to enable drain mode for node {:?}? [y/N] ",
                    types::short_id(&stub.id)
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer).context("read the answer")?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    println!("Canceling drain toggle");
                    return Ok(ExitCode::from(1));
                }
            }
            let body = serde_json::json!({
                "NodeID": stub.id,
                "DrainSpec": spec,
                "MarkEligible": !enable && !keep_ineligible,
            });
            let _: api_types::NodeDrainUpdateResponse = client
                .put_json_value(&format!("/v1/node/{}/drain", api_client::encode(&stub.id)), &body)
                .await
                .map_err(|error| match error {
                    ApiError::Status { status, message } => {
                        anyhow!("Error updating drain specification ({status}): {message}")
                    }
                    other => anyhow!(other),
                })?;
            if !enable {
                println!("Node {:?} drain strategy unset", types::short_id(&stub.id));
                return Ok(ExitCode::SUCCESS);
            }
            println!("Node {:?} drain strategy set", types::short_id(&stub.id));
            if detach {
                return Ok(ExitCode::SUCCESS);
            }
            loop {
                let node = client.node(&stub.id).await?;
                if node.drain_strategy.is_none() {
                    let status = node.last_drain.map(|last| last.status).unwrap_or_default();
                    println!("Node {:?} drain {status}", types::short_id(&stub.id));
                    return Ok(if status == "complete" {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    });
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        NodeCommand::Eligibility { enable, id, .. } => {
            let stub = resolve_prefix(client.nodes(&id).await?, &id, |node| node.id.as_str(), "node")?;
            let body = serde_json::json!({
                "NodeID": stub.id,
                "Eligibility": if enable { "eligible" } else { "ineligible" },
            });
            let _: serde_json::Value = client
                .put_json_value(&format!("/v1/node/{}/eligibility", api_client::encode(&stub.id)), &body)
                .await?;
            println!(
                "Node {:?} scheduling eligibility set: {}",
                render::short_id(&stub.id),
                if enable {
                    "eligible for scheduling"
                } else {
                    "ineligible for scheduling"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Status { id: None } => {
            print!("{}", render::node_list(&client.nodes("").await?));
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Status { id: Some(id) } => {
            let stub = resolve_prefix(client.nodes(&id).await?, &id, |node| node.id.as_str(), "node")?;
            let node = client.node(&stub.id).await?;
            let allocs = client.node_allocations(&stub.id).await?;
            print!("{}", render::node_status(&node, &allocs, now_nanos()));
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run_service(command: ServiceCommand, client: &Client) -> anyhow::Result<ExitCode> {
    match command {
        ServiceCommand::List { namespace } => {
            let path = format!("/v1/services?namespace={}", api_client::encode(&namespace));
            let list: Vec<api_types::ServiceListEntry> = client.get(&path).await?.value;
            print!("{}", render::service_list(&list, namespace == "*"));
        }
        ServiceCommand::Info { namespace, name } => {
            let path = format!(
                "/v1/service/{}?namespace={}",
                api_client::encode(&name),
                api_client::encode(&namespace)
            );
            let instances: Vec<api_types::ServiceRegistration> = client.get(&path).await?.value;
            if instances.is_empty() {
                eprintln!("No service registrations found for {name:?} in namespace {namespace:?}");
                return Ok(ExitCode::FAILURE);
            }
            print!("{}", render::service_info(&instances));
        }
        ServiceCommand::Delete { namespace, name, id } => {
            let path = format!(
                "/v1/service/{}/{}?namespace={}",
                api_client::encode(&name),
                api_client::encode(&id),
                api_client::encode(&namespace)
            );
            client.delete(&path).await?;
            println!("Successfully deleted service registration");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_namespace(command: NamespaceCommand, client: &Client) -> anyhow::Result<ExitCode> {
    match command {
        NamespaceCommand::Apply {
            description,
            meta,
            name,
        } => {
            // As Nomad's CLI: an existing namespace keeps what the flags
            // do not change.
            let mut namespace = match client.namespace(&name).await {
                Ok(existing) => existing,
                Err(error) if error.status() == Some(404) => api_types::Namespace {
                    name: name.clone(),
                    ..api_types::Namespace::default()
                },
                Err(error) => return Err(error.into()),
            };
            if let Some(description) = description {
                namespace.description = description;
            }
            for pair in &meta {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--meta {pair:?} must be key=value"))?;
                namespace
                    .meta
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key.to_string(), value.to_string());
            }
            client.apply_namespace(&namespace).await?;
            println!("Successfully applied namespace {name:?}!");
            Ok(ExitCode::SUCCESS)
        }
        NamespaceCommand::List => {
            print!("{}", render::namespace_list(&client.namespaces("").await?));
            Ok(ExitCode::SUCCESS)
        }
        NamespaceCommand::Status { name } => {
            let namespace = resolve_prefix(
                client.namespaces(&name).await?,
                &name,
                |namespace| namespace.name.as_str(),
                "namespace",
            )?;
            print!("{}", render::namespace_status(&namespace));
            Ok(ExitCode::SUCCESS)
        }
        NamespaceCommand::Delete { name } => {
            client.delete_namespace(&name).await?;
            println!("Successfully deleted namespace {name:?}!");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What `job init` writes.
pub const EXAMPLE_JOB: &str = r#"# An example Drover (Nomad-compatible) job: a service that prints a line
# every few seconds. Run it with `drover job run example.nomad.hcl`.
job "example" {
  # Run anywhere; list datacenters to narrow it down.
  datacenters = ["*"]
  type        = "service"

  group "app" {
    count = 1

    # Restart a failing task twice within 30 minutes, then give up.
    restart {
      attempts = 2
      interval = "30m"
      delay    = "15s"
      mode     = "fail"
    }

    task "hello" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "while true; do echo hello from $NOMAD_ALLOC_ID; sleep 5; done"]
      }

      resources {
        cpu    = 100 # MHz
        memory = 64  # MB
      }
    }
  }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_resolve_or_explain() {
        let ids = vec!["abc1".to_string(), "abd2".to_string(), "abd".to_string()];
        assert_eq!(
            resolve_prefix(ids.clone(), "abc", |id| id.as_str(), "job").expect("unique"),
            "abc1"
        );
        // An exact match wins over longer IDs sharing the prefix.
        assert_eq!(
            resolve_prefix(ids.clone(), "abd", |id| id.as_str(), "job").expect("exact"),
            "abd"
        );
        let error = resolve_prefix(ids.clone(), "ab", |id| id.as_str(), "job").expect_err("ambiguous");
        assert!(error.to_string().contains("matched multiple jobs"), "{error}");
        let error = resolve_prefix(ids, "zz", |id| id.as_str(), "job").expect_err("missing");
        assert!(error.to_string().contains("No job with prefix"), "{error}");
    }

    #[test]
    fn uuidv4_works_in_job_files_the_cli_parses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("job.nomad.hcl");
        std::fs::write(
            &file,
            r#"job "u" {
  meta { run = uuidv4() }
  task "t" {
    driver = "raw_exec"
    config { command = "/bin/true" }
  }
}
"#,
        )
        .expect("write");
        let args = JobFileArgs {
            file,
            vars: Vec::new(),
            var_files: Vec::new(),
        };
        let first = load_job(&args).expect("read").expect("valid job");
        let second = load_job(&args).expect("read").expect("valid job");
        let id = &first.meta["run"];
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.as_bytes()[14], b'4', "{id}");
        assert_ne!(id, &second.meta["run"]);
        // The task directly in the job is a group of its own.
        assert_eq!(first.task_groups[0].name, "t");
    }

    #[test]
    fn example_job_parses() {
        let options = jobspec::ParseOptions::default();
        let job = jobspec::parse(EXAMPLE_JOB, "example.nomad.hcl", &options).expect("example job is valid");
        assert_eq!(job.id, "example");
        assert_eq!(job.task_groups[0].tasks[0].driver, "raw_exec");
    }
}

#[cfg(test)]
mod namespace_tests {
    use super::in_namespace;

    fn job(namespace: &str) -> types::Job {
        let mut job = types::Job {
            id: "web".to_string(),
            ..types::Job::default()
        };
        job.namespace = namespace.to_string();
        job
    }

    #[test]
    fn the_namespace_flag_fills_in_a_job_without_one_and_never_overrides_one() {
        let moved = in_namespace(Ok(job("default")), Some("prod"))
            .expect("fills in")
            .expect("a job");
        assert_eq!(moved.namespace, "prod");
        let kept = in_namespace(Ok(job("prod")), Some("prod"))
            .expect("same")
            .expect("a job");
        assert_eq!(kept.namespace, "prod");
        let untouched = in_namespace(Ok(job("team")), None).expect("no flag").expect("a job");
        assert_eq!(untouched.namespace, "team");
        let clash = in_namespace(Ok(job("team")), Some("prod")).expect_err("two namespaces");
        assert!(clash.to_string().contains("\"team\""), "{clash}");
        assert!(in_namespace(Ok(job("default")), Some("*")).is_err());
        assert!(
            in_namespace(Err("parse error".to_string()), Some("prod"))
                .expect("passes")
                .is_err()
        );
    }
}
