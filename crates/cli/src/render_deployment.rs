//! Rendering of deployments: `deployment list` and `deployment status`,
//! laid out as Nomad's CLI lays them out. Pure and snapshot-tested.

use crate::render::{columns, key_values};
use api_types::Deployment;

fn short(id: &str) -> String {
    crate::render::short_id(id)
}

/// `deployment list`.
pub fn deployment_list(deployments: &[Deployment]) -> String {
    if deployments.is_empty() {
        return "No deployments found\n".to_string();
    }
    let mut rows = vec![vec![
        "ID".to_string(),
        "Job ID".to_string(),
        "Job Version".to_string(),
        "Status".to_string(),
        "Description".to_string(),
    ]];
    for deployment in deployments {
        rows.push(vec![
            short(&deployment.id),
            deployment.job_id.clone(),
            deployment.job_version.to_string(),
            deployment.status.clone(),
            deployment.status_description.clone(),
        ]);
    }
    columns(&rows)
}

/// `deployment status ID`: the header and one row per task group, with
/// the canary columns when a group has canaries.
pub fn deployment_status(deployment: &Deployment) -> String {
    let mut out = key_values(&[
        ("ID", short(&deployment.id)),
        ("Job ID", deployment.job_id.clone()),
        ("Job Version", deployment.job_version.to_string()),
        ("Status", deployment.status.clone()),
        ("Description", deployment.status_description.clone()),
    ]);
    out.push_str("\nDeployed\n");
    out.push_str(&deployment_groups(deployment));
    out
}

/// The per-group table of a deployment (also under `job status`).
pub fn deployment_groups(deployment: &Deployment) -> String {
    let canaries = deployment.task_groups.values().any(|state| state.desired_canaries > 0);
    let auto_revert = deployment.task_groups.values().any(|state| state.auto_revert);
    let deadlines = deployment.task_groups.values().any(|state| state.progress_deadline > 0);
    let mut header = vec!["Task Group".to_string()];
    if auto_revert {
        header.push("Auto Revert".to_string());
    }
    if canaries {
        header.push("Promoted".to_string());
    }
    header.push("Desired".to_string());
    if canaries {
        header.push("Canaries".to_string());
    }
    header.extend(["Placed", "Healthy", "Unhealthy"].map(str::to_string));
    if deadlines {
        header.push("Progress Deadline".to_string());
    }
    let mut rows = vec![header];
    for (name, state) in &deployment.task_groups {
        let mut row = vec![name.clone()];
        if auto_revert {
            row.push(state.auto_revert.to_string());
        }
        if canaries {
            row.push(if state.desired_canaries > 0 {
                state.promoted.to_string()
            } else {
                "N/A".to_string()
            });
        }
        row.push(state.desired_total.to_string());
        if canaries {
            row.push(state.desired_canaries.to_string());
        }
        row.push(state.placed_allocs.to_string());
        row.push(state.healthy_allocs.to_string());
        row.push(state.unhealthy_allocs.to_string());
        if deadlines {
            row.push(if state.require_progress_by.starts_with("0001-") {
                "N/A".to_string()
            } else {
                state.require_progress_by.clone()
            });
        }
        rows.push(row);
    }
    columns(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_types::DeploymentState;
    use expect_test::expect;

    fn deployment(canaries: u32) -> Deployment {
        Deployment {
            id: "5f0e9a7c-1111-4222-8333-444455556666".into(),
            job_id: "web".into(),
            job_version: 3,
            status: "running".into(),
            status_description: "Deployment is running but requires manual promotion".into(),
            task_groups: [(
                "api".to_string(),
                DeploymentState {
                    desired_total: 5,
                    desired_canaries: canaries,
                    placed_allocs: 2,
                    healthy_allocs: 1,
                    progress_deadline: 600_000_000_000,
                    require_progress_by: "2026-12-05T15:30:00Z".into(),
                    ..DeploymentState::default()
                },
            )]
            .into(),
            ..Deployment::default()
        }
    }

    #[test]
    fn deployment_list_and_status_render_like_nomad() {
        expect![[r#"
            ID        Job ID  Job Version  Status   Description
            5f0e9a7c  web     3            running  Deployment is running but requires manual promotion
        "#]]
        .assert_eq(&deployment_list(&[deployment(1)]));
        expect![[r#"
            ID          = 5f0e9a7c
            Job ID      = web
            Job Version = 3
            Status      = running
            Description = Deployment is running but requires manual promotion

            Deployed
            Task Group  Promoted  Desired  Canaries  Placed  Healthy  Unhealthy  Progress Deadline
            api         false     5        1         2       1        0          2026-12-05T15:30:00Z
        "#]]
        .assert_eq(&deployment_status(&deployment(1)));
        expect![[r#"
            Task Group  Desired  Placed  Healthy  Unhealthy  Progress Deadline
            api         5        2       1        0          2026-12-05T15:30:00Z
        "#]]
        .assert_eq(&deployment_groups(&deployment(0)));
        expect![[r#"
            No deployments found
        "#]]
        .assert_eq(&deployment_list(&[]));
    }
}
