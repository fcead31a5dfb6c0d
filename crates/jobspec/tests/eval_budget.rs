//! Hostile job files against the evaluation budget: each bomb stops with
//! one diagnostic naming the limit it hit, instead of running for seconds
//! or allocating gigabytes. The budget is deterministic (steps and bytes,
//! not time), so these tests are too.

use jobspec::{EvalBudget, ParseOptions};

const JOB: &str = r#"
job "bomb" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
        args    = [tostring(length(local.boom))]
      }
    }
  }
}
"#;

/// Parses `locals` + a job using `local.boom`, both as a job and as
/// `/v1/jobs/parse` does, and returns the one diagnostic.
fn bomb_message(locals: &str) -> String {
    let source = format!("{locals}\n{JOB}");
    let options = ParseOptions::default();
    let errors = jobspec::parse_hcl(&source, "bomb.nomad.hcl", &options).expect_err("the bomb is refused");
    let api_errors =
        jobspec::parse_hcl_to_api(&source, "bomb.nomad.hcl", &options, false).expect_err("the bomb is refused");
    assert_eq!(errors, api_errors);
    assert_eq!(errors.0.len(), 1, "one diagnostic: {errors}");
    let message = errors.0[0].message.clone();
    assert!(message.contains("evaluation budget exceeded"), "{message}");
    message
}

/// The probe's request: nested `for` expressions, about 10^9 iterations
/// in a few hundred bytes.
#[test]
fn nested_for_expressions_run_out_of_steps() {
    let message = bomb_message(
        r#"locals {
  a    = range(1000)
  boom = [for x in local.a : [for y in local.a : [for z in local.a : z]]]
}"#,
    );
    assert!(message.contains("steps"), "{message}");
}

/// Strings that double at every local: 2^40 bytes if nothing stops them.
#[test]
fn doubling_strings_run_out_of_bytes() {
    let mut locals = String::from("locals {\n  s0 = \"0123456789abcdef\"\n");
    for level in 1..=40 {
        let previous = level - 1;
        locals.push_str(&format!(
            "  s{level} = \"${{local.s{previous}}}${{local.s{previous}}}\"\n"
        ));
    }
    locals.push_str("  boom = local.s40\n}");
    let message = bomb_message(&locals);
    assert!(message.contains("bytes"), "{message}");
}

/// `try` and `can` catch evaluation errors, but not the budget's.
#[test]
fn try_and_can_do_not_swallow_the_budget() {
    bomb_message(
        r#"locals {
  a    = range(1000)
  boom = can([for x in local.a : [for y in local.a : [for z in local.a : z]]]) ? [1] : [2]
}"#,
    );
    bomb_message(
        r#"locals {
  a    = range(1000)
  boom = try([for x in local.a : [for y in local.a : [for z in local.a : z]]], [])
}"#,
    );
}

/// Lists larger than the collection limit are refused, however cheap.
#[test]
fn huge_lists_are_refused() {
    let message = bomb_message(
        r#"locals {
  boom = range(100000000)
}"#,
    );
    assert!(message.contains("elements"), "{message}");
    let message = bomb_message(
        r#"locals {
  a    = range(100)
  boom = setproduct(local.a, local.a, local.a, local.a)
}"#,
    );
    assert!(message.contains("elements"), "{message}");
}

/// A value nested one level per local is refused before it is deep enough
/// to overflow a stack anywhere.
#[test]
fn deeply_nested_values_are_refused() {
    let mut locals = String::from("locals {\n  v0 = 1\n");
    for level in 1..=300 {
        locals.push_str(&format!("  v{level} = [local.v{}]\n", level - 1));
    }
    locals.push_str("  boom = local.v300\n}");
    let message = bomb_message(&locals);
    assert!(message.contains("nested"), "{message}");
}

/// Nested `dynamic` blocks generate blocks, and each counts.
#[test]
fn nested_dynamic_blocks_run_out_of_steps() {
    let source = r#"
job "bomb" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
      dynamic "template" {
        for_each = range(10000)
        content {
          data        = "x"
          destination = "local/${template.key}"
          dynamic "wait" {
            for_each = range(10000)
            content {
              min = "1s"
            }
          }
        }
      }
    }
  }
}
"#;
    let errors = jobspec::parse_hcl(source, "bomb.nomad.hcl", &ParseOptions::default()).expect_err("refused");
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert!(errors.0[0].message.contains("steps"), "{errors}");
}

/// A smaller budget, as a caller may set it, is honoured.
#[test]
fn the_budget_is_the_callers() {
    let source = format!("locals {{\n  boom = [for x in range(50) : x]\n}}\n{JOB}");
    let options = ParseOptions::default();
    jobspec::parse_hcl(&source, "small.nomad.hcl", &options).expect("fits the default budget");
    let tight = ParseOptions {
        budget: EvalBudget {
            max_steps: 20,
            ..EvalBudget::DEFAULT
        },
        ..ParseOptions::default()
    };
    let errors = jobspec::parse_hcl(&source, "small.nomad.hcl", &tight).expect_err("not the tight one");
    assert!(errors.0[0].message.contains("more than 20 steps"), "{errors}");
}
