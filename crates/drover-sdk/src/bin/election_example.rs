//! The leader-election example (`examples/election.nomad.hcl` runs three
//! replicas of it with raw_exec). Each replica campaigns; the leader says
//! so in its log and, every 100 ms, makes a *fenced* write to a ledger
//! variable: it reads the ledger and writes its own fencing token there
//! with check-and-set, unless a higher token is already recorded, in which
//! case it has been deposed and steps down. Followers log who leads.
//!
//! Settings come from the environment: `DROVER_ADDR` (else `NOMAD_ADDR`,
//! else `http://127.0.0.1:4646`), `DROVER_TOKEN`/`NOMAD_TOKEN`,
//! `ELECTION_PATH` (`election/leader`), `LEDGER_PATH` (`election/ledger`),
//! `ELECTION_TTL_MS` (2000), `ELECTION_DELAY_MS` (1000). The replica's
//! identity is its allocation ID (`NOMAD_ALLOC_ID`).

use drover_sdk::{CasResult, Election, LockOptions, Variables};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What the leaders record, one write at a time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Ledger {
    token: u64,
    holder: String,
    writes: u64,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn env_ms(name: &str, default: u64) -> Duration {
    Duration::from_millis(env(name).and_then(|value| value.parse().ok()).unwrap_or(default))
}

/// One fenced write; `false` when a newer leader has written already.
async fn fenced_write(vars: &Variables, path: &str, token: u64, me: &str) -> Result<bool, drover_sdk::SdkError> {
    loop {
        let current = vars.get::<Ledger>(path).await?;
        let (ledger, cas) = match current {
            Some(versioned) => (versioned.value, versioned.modify_index),
            None => (Ledger::default(), 0),
        };
        if ledger.token > token {
            return Ok(false);
        }
        let next = Ledger {
            token,
            holder: me.to_string(),
            writes: ledger.writes + 1,
        };
        match vars.put(path, &next, Some(cas)).await? {
            CasResult::Written { .. } => return Ok(true),
            // Someone wrote between our read and write: read again.
            CasResult::Conflict(_) => continue,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let address = env("DROVER_ADDR")
        .or_else(|| env("NOMAD_ADDR"))
        .unwrap_or_else(|| "http://127.0.0.1:4646".to_string());
    let token = env("DROVER_TOKEN").or_else(|| env("NOMAD_TOKEN")).unwrap_or_default();
    let client = drover_sdk::api_client::Client::new(address).with_token(token);
    let namespace = env("NOMAD_NAMESPACE").unwrap_or_else(|| "default".to_string());
    let election_path = env("ELECTION_PATH").unwrap_or_else(|| "election/leader".to_string());
    let ledger_path = env("LEDGER_PATH").unwrap_or_else(|| "election/ledger".to_string());
    let options = LockOptions {
        ttl: env_ms("ELECTION_TTL_MS", 2000),
        lock_delay: env_ms("ELECTION_DELAY_MS", 1000),
    };
    let me = env("NOMAD_ALLOC_ID").unwrap_or_else(|| format!("pid-{}", std::process::id()));
    let election = Election::new(client.clone(), &namespace, &election_path, options);
    let vars = Variables::new(client, &namespace);

    // Followers say who leads, whenever it changes.
    let observer = election.clone();
    tokio::spawn(async move {
        let mut index = 0;
        let mut last = None;
        loop {
            match observer.observe(index, Duration::from_secs(5)).await {
                Ok((leader, next)) => {
                    let name = leader.map(|leader| (leader.identity, leader.fencing_token));
                    if name != last {
                        match &name {
                            Some((identity, token)) => println!("observed leader {identity} (token {token})"),
                            None => println!("observed no leader"),
                        }
                        last = name;
                    }
                    index = next;
                }
                Err(error) => {
                    eprintln!("observing the election: {error}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });

    loop {
        let leadership = match election.campaign(&me).await {
            Ok(leadership) => leadership,
            Err(error) => {
                eprintln!("campaign: {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let token = leadership.fencing_token();
        println!("elected leader {me} with fencing token {token}");
        loop {
            tokio::select! {
                _ = leadership.lost() => {
                    println!("lost leadership (token {token})");
                    break;
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            match fenced_write(&vars, &ledger_path, token, &me).await {
                Ok(true) => {}
                Ok(false) => {
                    println!("fenced off by a newer leader (token {token})");
                    break;
                }
                Err(error) => eprintln!("ledger write: {error}"),
            }
        }
        drop(leadership);
    }
}
