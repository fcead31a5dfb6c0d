//! A deterministic stand-in for the fuzzer that runs with `cargo test`:
//! every corpus file, cut and mutated in many ways, must give a job or
//! diagnostics, never a panic.

use std::path::Path;

fn sources() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["corpus", "diagnostics"] {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(dir);
        let mut paths: Vec<_> = std::fs::read_dir(root)
            .expect("directory exists")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.to_string_lossy().ends_with(".nomad.hcl"))
            .collect();
        paths.sort();
        for path in paths {
            out.push(std::fs::read_to_string(path).expect("reads"));
        }
    }
    out
}

/// xorshift64*, seeded, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "\"",
    "${",
    "%{",
    "~}",
    "<<-EOT\n",
    "\nEOT\n",
    "=",
    ",",
    "...",
    "*",
    ".",
    "var.",
    "local.",
    "dynamic \"x\" {",
    "for x in",
    ":",
    "?",
    "-1",
    "1e999",
    "null",
    "true",
    "\\",
    "#",
    "\n",
    "job \"j\" {",
    "0x",
    "é",
];

fn check(source: &str) {
    let opts = jobspec::ParseOptions::default();
    match jobspec::parse(source, "mutant.nomad.hcl", &opts) {
        Ok(job) => {
            let _ = jobspec::render_json(&job);
        }
        Err(diags) => {
            let _ = diags.render(source, "mutant.nomad.hcl");
        }
    }
}

#[test]
fn mutated_corpus_never_panics() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for source in sources() {
        for _ in 0..40 {
            let mut text = source.clone();
            for _ in 0..1 + rng.below(4) {
                let mut cut = rng.below(text.len() + 1);
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                match rng.below(3) {
                    0 => text.insert_str(cut, TOKENS[rng.below(TOKENS.len())]),
                    1 => {
                        let mut end = (cut + rng.below(20)).min(text.len());
                        while !text.is_char_boundary(end) {
                            end -= 1;
                        }
                        text.replace_range(cut..end, "");
                    }
                    _ => text.truncate(cut),
                }
            }
            check(&text);
        }
    }
}

#[test]
fn hostile_inputs_never_panic() {
    let deep_brackets = "[".repeat(100_000);
    let deep_parens = format!(
        "job \"x\" {{ meta = {{ a = {}1{} }} }}",
        "(".repeat(120),
        ")".repeat(120)
    );
    let long_chain = format!("job \"x\" {{ priority = {} }}", vec!["1"; 5_000].join(" + "));
    let negations = format!("job \"x\" {{ all_at_once = {}true }}", "!".repeat(5_000));
    let huge_range = "job \"x\" { meta = { a = jsonencode(range(100000000)) } }";
    let deep_blocks = format!("job \"x\" {{ {} {} }}", "a {".repeat(100), "}".repeat(100));
    for source in [
        deep_brackets.as_str(),
        deep_parens.as_str(),
        long_chain.as_str(),
        negations.as_str(),
        huge_range,
        deep_blocks.as_str(),
        "",
        "{",
        "{\"Job\": null}",
        "job",
        "job \"x\" { group \"g\" { count = 99999999999999999999 } }",
        "job \"x\" { priority = 1e308 * 10 }",
        "job \"x\" { meta = { a = format(\"%[0]s\", 1) } }",
        "job \"x\" { meta = { a = substr(\"héllo\", -3, 2) } }",
        "job \"x\" { meta = { a = cidrsubnet(\"::/0\", 128, 1) } }",
        "job \"x\" { meta = { a = cidrhost(\"10.0.0.0/8\", -99999999999) } }",
        "job \"x\" { meta = { a = regex(\"(\", \"x\") } }",
        "job \"x\" { meta = { a = formatdate(\"'\", timestamp()) } }",
        "job \"x\" { meta = { a = timeadd(\"9999-12-31T23:59:59Z\", \"99999999h\") } }",
        "job \"x\" { meta = { a = element([], 1) } }",
        "job \"x\" { meta = { a = parseint(\"-\", 10) } }",
        "job \"x\" { meta = { a = indent(-5, \"x\") } }",
        "job \"x\" { meta = { a = chunklist([1], -1) } }",
        "job \"x\" { periodic { cron = \"* * * * * * * * * *\" } }",
    ] {
        check(source);
    }
}
