//! Fuzzes the API JSON decoder: any text must give a job or diagnostics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match jobspec::parse_json(text) {
        Ok(job) => {
            let again = jobspec::parse_json(&jobspec::render_json(&job));
            assert_eq!(again.ok(), Some(job));
        }
        Err(diags) => {
            let _ = diags.render(text, "fuzz.json");
        }
    }
});
