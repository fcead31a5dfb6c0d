//! `drover fmt`: rewrites HCL job and variable files in the canonical layout
//! of [`jobspec::format_hcl`], keeping comments. Flags follow `nomad fmt`:
//! `--check` changes nothing and exits 1 when a file is not formatted,
//! `--write=false` leaves files alone, `--list=false` stops naming changed
//! files, `--recursive` descends into directories, and `-` (or `--stdout`)
//! prints the result instead of writing it.

use clap::Args;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `drover fmt`.
#[derive(Debug, Clone, Args)]
pub struct FmtArgs {
    /// Files or directories to format; `-` reads standard input and prints
    /// the result. Default: the current directory.
    pub paths: Vec<PathBuf>,
    /// Change nothing; exit 1 if any file is not formatted (or does not parse).
    #[arg(long)]
    pub check: bool,
    /// Rewrite files whose formatting differs.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub write: bool,
    /// Print the names of files whose formatting differs.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub list: bool,
    /// Also format files in subdirectories.
    #[arg(long)]
    pub recursive: bool,
    /// Print the formatted text instead of writing the files.
    #[arg(long)]
    pub stdout: bool,
}

/// What happened to one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already in canonical form.
    Unchanged,
    /// Differs from the canonical form (and was rewritten unless checking).
    Changed,
    /// Does not parse; the rendered diagnostics.
    Invalid(String),
}

/// Whether a directory entry is a file `fmt` looks at.
fn is_hcl(path: &Path) -> bool {
    let name = path.file_name().map(|name| name.to_string_lossy()).unwrap_or_default();
    name.ends_with(".nomad") || name.ends_with(".hcl")
}

/// The files to format under `path`: the path itself if it is a file, its
/// HCL files if it is a directory (and their subdirectories' with
/// `recursive`), sorted.
pub fn collect_files(path: &Path, recursive: bool) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if entry.is_dir() {
            if recursive && !hidden {
                files.extend(collect_files(&entry, true)?);
            }
        } else if is_hcl(&entry) {
            files.push(entry);
        }
    }
    Ok(files)
}

/// Formats one text: the outcome and the formatted text (when it parses).
pub fn format_text(source: &str, name: &str) -> (Outcome, Option<String>) {
    match jobspec::format_hcl(source) {
        Ok(formatted) if formatted == source => (Outcome::Unchanged, Some(formatted)),
        Ok(formatted) => (Outcome::Changed, Some(formatted)),
        Err(diagnostics) => (Outcome::Invalid(diagnostics.render(source, name)), None),
    }
}

/// Runs `drover fmt` with the given streams; returns the exit code.
pub fn run_fmt(
    args: &FmtArgs,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> std::io::Result<ExitCode> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let mut failed = false;
    for path in paths {
        if path.as_os_str() == "-" {
            let mut source = String::new();
            stdin.read_to_string(&mut source)?;
            match format_text(&source, "<stdin>") {
                (Outcome::Invalid(rendered), _) => {
                    write!(stderr, "{rendered}")?;
                    failed = true;
                }
                (outcome, Some(formatted)) => {
                    if args.check {
                        failed |= outcome == Outcome::Changed;
                    } else {
                        stdout.write_all(formatted.as_bytes())?;
                    }
                }
                (_, None) => {}
            }
            continue;
        }
        let files = match collect_files(&path, args.recursive) {
            Ok(files) => files,
            Err(error) => {
                writeln!(stderr, "Error reading {}: {error}", path.display())?;
                failed = true;
                continue;
            }
        };
        for file in files {
            let name = file.display().to_string();
            let source = match std::fs::read_to_string(&file) {
                Ok(source) => source,
                Err(error) => {
                    writeln!(stderr, "Error reading {name}: {error}")?;
                    failed = true;
                    continue;
                }
            };
            match format_text(&source, &name) {
                (Outcome::Invalid(rendered), _) => {
                    write!(stderr, "{rendered}")?;
                    failed = true;
                }
                (outcome, Some(formatted)) => {
                    let changed = outcome == Outcome::Changed;
                    if args.stdout {
                        stdout.write_all(formatted.as_bytes())?;
                    } else if changed && args.list {
                        writeln!(stdout, "{name}")?;
                    }
                    if args.check {
                        failed |= changed;
                    } else if changed && args.write && !args.stdout {
                        std::fs::write(&file, formatted)?;
                    }
                }
                (_, None) => {}
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSY: &str = "job \"x\" {\ntype=\"batch\"\n  # keep me\n}\n";
    const CLEAN: &str = "job \"x\" {\n  type = \"batch\"\n  # keep me\n}\n";

    fn args(paths: Vec<PathBuf>) -> FmtArgs {
        FmtArgs {
            paths,
            check: false,
            write: true,
            list: true,
            recursive: false,
            stdout: false,
        }
    }

    fn run(args: &FmtArgs, input: &str) -> (ExitCode, String, String) {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let code = run_fmt(args, &mut input.as_bytes(), &mut stdout, &mut stderr).expect("runs");
        (
            code,
            String::from_utf8(stdout).expect("utf-8"),
            String::from_utf8(stderr).expect("utf-8"),
        )
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("drover-fmt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("nested")).expect("create temp dir");
        dir
    }

    #[test]
    fn the_init_example_is_already_formatted() {
        assert_eq!(
            jobspec::format_hcl(crate::EXAMPLE_JOB).expect("formats"),
            crate::EXAMPLE_JOB
        );
    }

    #[test]
    fn stdin_to_stdout() {
        let (code, out, err) = run(&args(vec![PathBuf::from("-")]), MESSY);
        assert_eq!((code, out.as_str(), err.as_str()), (ExitCode::SUCCESS, CLEAN, ""));
    }

    #[test]
    fn check_exits_one_and_writes_nothing() {
        let dir = temp_dir("check");
        let file = dir.join("job.nomad.hcl");
        std::fs::write(&file, MESSY).expect("write");
        let mut check = args(vec![file.clone()]);
        check.check = true;
        let (code, out, _) = run(&check, "");
        assert_eq!(code, ExitCode::from(1));
        assert_eq!(out, format!("{}\n", file.display()));
        assert_eq!(std::fs::read_to_string(&file).expect("read"), MESSY);

        let (code, out, _) = run(&args(vec![file.clone()]), "");
        assert_eq!((code, out), (ExitCode::SUCCESS, format!("{}\n", file.display())));
        assert_eq!(std::fs::read_to_string(&file).expect("read"), CLEAN);

        let (code, out, _) = run(&check, "");
        assert_eq!((code, out.as_str()), (ExitCode::SUCCESS, ""));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn directories_recursion_and_stdout() {
        let dir = temp_dir("dirs");
        std::fs::write(dir.join("a.nomad.hcl"), MESSY).expect("write");
        std::fs::write(dir.join("notes.txt"), MESSY).expect("write");
        std::fs::write(dir.join("nested").join("b.hcl"), MESSY).expect("write");
        let mut flat = args(vec![dir.clone()]);
        flat.stdout = true;
        let (code, out, _) = run(&flat, "");
        assert_eq!((code, out.as_str()), (ExitCode::SUCCESS, CLEAN));
        assert_eq!(std::fs::read_to_string(dir.join("a.nomad.hcl")).expect("read"), MESSY);

        let mut deep = args(vec![dir.clone()]);
        deep.recursive = true;
        deep.list = false;
        let (code, out, _) = run(&deep, "");
        assert_eq!((code, out.as_str()), (ExitCode::SUCCESS, ""));
        assert_eq!(
            std::fs::read_to_string(dir.join("nested").join("b.hcl")).expect("read"),
            CLEAN
        );
        assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).expect("read"), MESSY);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn syntax_errors_are_rendered_with_positions() {
        let (code, out, err) = run(&args(vec![PathBuf::from("-")]), "job \"x\" {\n  type = \n");
        assert_eq!(code, ExitCode::from(1));
        assert_eq!(out, "");
        expect_test::expect![[r#"
            error: syntax error: invalid expression; expected `"`, `[`, `{`, `-`, `!`, `(`, `_`, `<`, letter or digit
             --> <stdin>:2:10
              |
            2 |   type = 
              |          ^

        "#]]
        .assert_eq(&err);
    }
}
