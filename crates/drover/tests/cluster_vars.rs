//! The root keyring and variables on a 3-server cluster of real
//! processes: every server's keystore gets the first key and each rotated
//! one; variables written through a follower read back through every
//! server; a server that was down during a rotation fetches the key it
//! missed; after the leader dies the new leader still decrypts; and no
//! server's data dir holds a variable's plaintext.

mod common;

use api_client::VarWrite;
use common::cluster::{Cluster, Shape, eventually};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const CANARY: &str = "cluster-plaintext-canary-93b7";

fn keys_on_disk(server_dir: &Path) -> usize {
    std::fs::read_dir(server_dir.join("server/keystore"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

fn contains(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && !path.to_string_lossy().ends_with(".log")
                && std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|window| window == needle))
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn items(value: &str) -> BTreeMap<String, String> {
    [("secret".to_string(), value.to_string())].into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyring_replicates_and_variables_survive_server_loss() {
    let mut cluster = Cluster::start(&Shape {
        servers: 3,
        ..Shape::default()
    });
    let leader = cluster.leader(Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let via_follower = cluster.servers[follower].api();

    // The first leader made a key; every server holds it.
    eventually(Duration::from_secs(10), "the first key on every server", async || {
        cluster
            .servers
            .iter()
            .all(|server| keys_on_disk(&server.dir) == 1)
            .then_some(())
    })
    .await;
    // The material reaches the keystores before the metadata commits.
    let keys = eventually(Duration::from_secs(10), "the first key's metadata", async || {
        via_follower.keyring_keys().await.ok().filter(|keys| !keys.is_empty())
    })
    .await;
    assert_eq!(keys.len(), 1);

    // Written through a follower, read through every server.
    let written = eventually(
        Duration::from_secs(10),
        "a write through a follower",
        async || match via_follower
            .var_put("default", "app/one", &items(CANARY), Some(0), None)
            .await
        {
            Ok(VarWrite::Written(Some(var))) => Some(var),
            _ => None,
        },
    )
    .await;
    for server in &cluster.servers {
        let var = server
            .api()
            .var_get("default", "app/one")
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(var.items["secret"], CANARY);
        assert_eq!(var.meta.modify_index, written.meta.modify_index);
    }

    // A rotation with one server down still reaches a majority; the
    // server fetches the key it missed when it comes back.
    cluster.servers[other].stop();
    let rotated = via_follower.keyring_rotate().await.expect("rotate with a majority");
    via_follower
        .var_put("default", "app/two", &items(CANARY), None, None)
        .await
        .expect("write with the new key");
    cluster.servers[other].start();
    eventually(
        Duration::from_secs(15),
        "the missed key on the restarted server",
        async || (keys_on_disk(&cluster.servers[other].dir) == 2).then_some(()),
    )
    .await;
    let back = cluster.servers[other].api();
    let var = eventually(
        Duration::from_secs(15),
        "a read through the restarted server",
        async || back.var_get("default", "app/two").await.ok().flatten(),
    )
    .await;
    assert_eq!(var.items["secret"], CANARY);
    assert!(
        back.keyring_keys()
            .await
            .expect("keys")
            .iter()
            .any(|key| key.key_id == rotated.key_id && key.state == "active")
    );

    // The leader dies: the new one decrypts old and new variables, and
    // takes locks.
    cluster.servers[leader].kill();
    let new_leader = cluster.leader(Duration::from_secs(30)).await;
    assert_ne!(new_leader, leader);
    let api = cluster.servers[new_leader].api();
    for path in ["app/one", "app/two"] {
        let var = eventually(Duration::from_secs(15), "a read after the leader died", async || {
            api.var_get("default", path).await.ok().flatten()
        })
        .await;
        assert_eq!(var.items["secret"], CANARY);
    }
    assert!(matches!(
        api.var_lock_acquire("default", "locks/x", Duration::from_secs(5), Duration::ZERO, None)
            .await
            .expect("lock"),
        VarWrite::Written(Some(_))
    ));
    assert_eq!(contains(cluster.root.path(), CANARY.as_bytes()), Vec::<String>::new());
    cluster.kill_all();
}
