//! Fuzzes the HCL front end: any text must give a job or diagnostics, and
//! rendering the diagnostics must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let read_file = |name: &str| -> Result<String, String> { Ok(format!("contents of {name}")) };
    let random = || 0x1234_5678_9abc_def0_u128;
    let opts = jobspec::ParseOptions {
        variables: [("image".to_string(), "busybox".to_string())].into_iter().collect(),
        now: 1_700_000_000_000_000_000,
        read_file: Some(&read_file),
        random: Some(&random),
        ..Default::default()
    };
    match jobspec::parse_hcl(text, "fuzz.nomad.hcl", &opts) {
        Ok(job) => {
            let _ = jobspec::render_json(&job);
        }
        Err(diags) => {
            let _ = diags.render(text, "fuzz.nomad.hcl");
        }
    }
});
