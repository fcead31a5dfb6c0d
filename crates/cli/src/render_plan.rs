//! Rendering of `job plan`: the job diff with Nomad's `+`, `-` and `+/-`
//! markers, each group's counts, the scheduler's verdict and the
//! `job run -check-index` hint. Pure and snapshot-tested.

use api_types::job_diff::{ADDED, DELETED, EDITED, FieldDiff, JobDiff, ObjectDiff};
use std::fmt::Write as _;

fn marker(diff_type: &str) -> &'static str {
    match diff_type {
        ADDED => "+ ",
        DELETED => "- ",
        EDITED => "+/- ",
        _ => "",
    }
}

fn field_line(out: &mut String, indent: usize, field: &FieldDiff) {
    let pad = " ".repeat(indent);
    let text = match field.diff_type.as_str() {
        ADDED => format!("+ {}: {:?}", field.name, field.new),
        DELETED => format!("- {}: {:?}", field.name, field.old),
        _ => format!("+/- {}: {:?} => {:?}", field.name, field.old, field.new),
    };
    let _ = writeln!(out, "{pad}{text}");
}

fn object_lines(out: &mut String, indent: usize, object: &ObjectDiff) {
    let pad = " ".repeat(indent);
    let _ = writeln!(out, "{pad}{}{} {{", marker(&object.diff_type), object.name);
    for field in &object.fields {
        field_line(out, indent + 2, field);
    }
    for inner in &object.objects {
        object_lines(out, indent + 2, inner);
    }
    let _ = writeln!(out, "{pad}}}");
}

/// The diff, as `job plan` prints it.
pub fn job_diff(diff: &JobDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}Job: {:?}", marker(&diff.diff_type), diff.id);
    for field in &diff.fields {
        field_line(&mut out, 0, field);
    }
    for object in &diff.objects {
        object_lines(&mut out, 0, object);
    }
    for group in &diff.task_groups {
        let counts: Vec<String> = [
            "create",
            "destroy",
            "migrate",
            "in-place update",
            "create/destroy update",
            "canary",
            "ignore",
        ]
        .iter()
        .filter_map(|name| group.updates.get(*name).map(|count| format!("{count} {name}")))
        .collect();
        let counts = if counts.is_empty() {
            String::new()
        } else {
            format!(" ({})", counts.join(", "))
        };
        let _ = writeln!(out, "{}Task Group: {:?}{counts}", marker(&group.diff_type), group.name);
        for field in &group.fields {
            field_line(&mut out, 2, field);
        }
        for object in &group.objects {
            object_lines(&mut out, 2, object);
        }
        for task in &group.tasks {
            let annotations = if task.annotations.is_empty() {
                String::new()
            } else {
                format!(" ({})", task.annotations.join(", "))
            };
            let _ = writeln!(out, "  {}Task: {:?}{annotations}", marker(&task.diff_type), task.name);
            for field in &task.fields {
                field_line(&mut out, 4, field);
            }
            for object in &task.objects {
                object_lines(&mut out, 4, object);
            }
        }
    }
    out
}

/// The verdict and the `-check-index` hint after the diff.
pub fn plan_footer(failed_groups: &[(String, String)], job_modify_index: u64, file: &str) -> String {
    let mut out = String::from("\nScheduler dry-run:\n");
    if failed_groups.is_empty() {
        out.push_str("- All tasks successfully allocated.\n");
    } else {
        out.push_str("- WARNING: Failed to place all allocations.\n");
        for (group, why) in failed_groups {
            let _ = writeln!(out, "  Task Group {group:?}: {why}");
        }
    }
    let _ = write!(
        out,
        "\nJob Modify Index: {job_modify_index}\n\
         To submit the job with version verification run:\n\n\
         drover job run -check-index {job_modify_index} {file}\n\n\
         When running the job with the check-index flag, the job will only be run if the\n\
         job modify index given matches the server-side version. If the index has\n\
         changed, another user has modified the job and the plan's results are\n\
         potentially invalid.\n"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;
    use serde_json::json;

    #[test]
    fn an_edited_task_renders_with_markers_and_counts() {
        let old = json!({"ID": "web", "Priority": 50, "TaskGroups": [{"Name": "api", "Count": 3, "Tasks": [
            {"Name": "server", "Env": {"MARKER": "v0"}, "Config": {"args": ["-c", "v0"]}}]}]});
        let new = json!({"ID": "web", "Priority": 60, "Meta": {"team": "a"}, "TaskGroups": [{"Name": "api", "Count": 3, "Tasks": [
            {"Name": "server", "Env": {"MARKER": "v1"}, "Config": {"args": ["-c", "v1"]}}]}]});
        let mut diff = api_types::job_diff::job_diff(Some(&old), &new);
        diff.task_groups[0].updates.insert("create/destroy update".into(), 3);
        diff.task_groups[0].tasks[0]
            .annotations
            .push("forces create/destroy update".into());
        expect![[r#"
            +/- Job: "web"
            + Meta[team]: "a"
            +/- Priority: "50" => "60"
            +/- Task Group: "api" (3 create/destroy update)
              +/- Task: "server" (forces create/destroy update)
                +/- Env[MARKER]: "v0" => "v1"
                +/- Config {
                  +/- args[1]: "v0" => "v1"
                }
        "#]]
        .assert_eq(&job_diff(&diff));
        expect![[r#"

            Scheduler dry-run:
            - All tasks successfully allocated.

            Job Modify Index: 11
            To submit the job with version verification run:

            drover job run -check-index 11 web.nomad.hcl

            When running the job with the check-index flag, the job will only be run if the
            job modify index given matches the server-side version. If the index has
            changed, another user has modified the job and the plan's results are
            potentially invalid.
        "#]]
        .assert_eq(&plan_footer(&[], 11, "web.nomad.hcl"));
    }
}
