//! Fuzzes the ACL policy language: any text gives a policy or errors with
//! positions, never a panic; a policy that parses compiles into an ACL
//! whose checks never panic, and a denied namespace grants nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match acl::parse_policy(text) {
        Ok(policy) => {
            let compiled = acl::Acl::compile([&policy]);
            for namespace in ["default", "prod", "prod-api", "", "*"] {
                for capability in ["read-job", "submit-job", "list-jobs", "deny", "alloc-exec"] {
                    let allowed = compiled.allow_namespace_op(namespace, capability);
                    if capability == "deny" {
                        // "deny" is never a grant.
                        assert!(!allowed || compiled.is_management());
                    }
                }
                let _ = compiled.allow_namespace(namespace);
                let _ = compiled.allow_variable(namespace, "app/config", "read");
            }
            let _ = compiled.allow_host_volume("data", "mount-readonly");
            let _ = compiled.allow_node(acl::Level::Read);
            let _ = compiled.allow_in_some_namespace("submit-job");
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "an error result names at least one error");
            for error in errors {
                assert!(error.line >= 1 && error.column >= 1);
                let _ = error.to_string();
            }
        }
    }
});
