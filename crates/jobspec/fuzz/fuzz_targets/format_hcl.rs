//! Fuzzes the formatter: any text gives formatted text or diagnostics; the
//! formatted text is stable, and a job parses to the same value before and
//! after formatting.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(formatted) = jobspec::format_hcl(text) else { return };
    let again = jobspec::format_hcl(&formatted).expect("formatted text formats again");
    assert_eq!(again, formatted, "formatting is not stable");
    let opts = jobspec::ParseOptions {
        now: 1_700_000_000_000_000_000,
        ..Default::default()
    };
    let before = jobspec::parse_hcl(text, "fuzz.nomad.hcl", &opts);
    let after = jobspec::parse_hcl(&formatted, "fuzz.nomad.hcl", &opts);
    if let (Ok(before), Ok(after)) = (before, after) {
        assert_eq!(before, after, "formatting changed the job");
    }
});
