//! The manifest corpus: `apimount validate` (no AWS involved) against a folder
//! of bad manifests, each of which must be refused with the message listed in
//! `tests/corpus/bad/EXPECTED.tsv` (the format is described at its top), a
//! folder of good ones that must all be accepted, cross-file clashes under
//! `tests/corpus/dupes/<case>/`, and files that can only be made at run time
//! (oversize, symlinks, unreadable, FIFO, directories named like manifests).
//!
//! Every error line must name its file: an expectation is only searched in the
//! lines that start with `error: <folder>/<file>:`. The corpus is checked once
//! as a whole (one file's error cannot hide another's, good files stay good
//! among bad ones) and once file by file.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::support::mount_yaml;

const BIN: &str = env!("CARGO_BIN_EXE_apimount");
const MAX_MANIFEST_BYTES: usize = 64 * 1024;
/// A validate run of the whole corpus takes well under a second; an alias bomb
/// that got expanded would not.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

// ---- expectations -------------------------------------------------------------------

/// One expectation: pieces that must appear in this order on one error line of
/// the file, or (negated) must appear on none.
#[derive(Debug, Clone)]
struct Expect {
    negated: bool,
    pieces: Vec<String>,
    raw: String,
}

impl Expect {
    fn parse(raw: &str) -> Expect {
        let (negated, body) = match raw.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        assert!(!body.is_empty(), "empty expectation {raw:?}");
        Expect {
            negated,
            pieces: body.split('…').map(str::to_string).collect(),
            raw: raw.to_string(),
        }
    }

    fn matches(&self, line: &str) -> bool {
        let mut rest = line;
        for p in &self.pieces {
            match rest.find(p.as_str()) {
                Some(i) => rest = &rest[i + p.len()..],
                None => return false,
            }
        }
        true
    }
}

/// What one file must produce.
#[derive(Debug, Clone)]
struct Case {
    file: String,
    /// The file must be refused (at least one error line).
    must_fail: bool,
    expects: Vec<Expect>,
}

impl Case {
    fn bad(file: &str, expects: &[&str]) -> Case {
        Case {
            file: file.to_string(),
            must_fail: true,
            expects: expects.iter().map(|e| Expect::parse(e)).collect(),
        }
    }

    fn good(file: &str) -> Case {
        Case {
            file: file.to_string(),
            must_fail: false,
            expects: Vec::new(),
        }
    }

    /// Problems with this file's error lines; empty when all is as expected.
    fn problems(&self, lines: &[&str], dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        if self.must_fail && lines.is_empty() {
            out.push("was accepted: no error line names it".to_string());
        }
        if !self.must_fail && !lines.is_empty() {
            out.push("is valid but was reported".to_string());
        }
        let dir = dir.display().to_string();
        for e in &self.expects {
            let e = Expect::parse(&e.raw.replace("{dir}", &dir));
            let hit = lines.iter().any(|l| e.matches(l));
            if e.negated && hit {
                out.push(format!("an error line contains {:?}", &e.raw[1..]));
            }
            if !e.negated && !hit {
                out.push(format!("no error line matches {:?}", e.raw));
            }
        }
        out
    }
}

/// Reads an EXPECTED.tsv.
fn read_expected(path: &Path) -> Vec<Case> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut cases: Vec<Case> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut cols = line.split('\t');
        let file = cols.next().unwrap();
        let expects: Vec<Expect> = cols.map(Expect::parse).collect();
        assert!(
            !expects.iter().all(|e| e.negated),
            "{}:{}: {file} needs at least one positive expectation",
            path.display(),
            n + 1
        );
        assert!(
            !cases.iter().any(|c| c.file == file),
            "{}:{}: {file} is listed twice",
            path.display(),
            n + 1
        );
        cases.push(Case {
            file: file.to_string(),
            must_fail: true,
            expects,
        });
    }
    cases
}

/// File names in `dir` (not recursive), without EXPECTED.tsv.
fn file_names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n != "EXPECTED.tsv")
        .collect()
}

fn bad_cases() -> Vec<Case> {
    let dir = corpus().join("bad");
    let cases = read_expected(&dir.join("EXPECTED.tsv"));
    let listed: BTreeSet<String> = cases.iter().map(|c| c.file.clone()).collect();
    let present = file_names(&dir);
    let unlisted: Vec<_> = present.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&present).collect();
    assert!(
        unlisted.is_empty() && missing.is_empty(),
        "tests/corpus/bad and its EXPECTED.tsv disagree: not listed {unlisted:?}, listed but absent {missing:?}"
    );
    cases
}

fn good_cases() -> Vec<Case> {
    let names = file_names(&corpus().join("good"));
    names.iter().map(|n| Case::good(n)).collect()
}

// ---- running apimount ------------------------------------------------------------------

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The error lines naming `file` (with `dir` as passed to --manifests),
    /// each cut to what follows the file name.
    fn lines_of(&self, dir: &Path, file: &str) -> Vec<&str> {
        let prefix = format!("error: {}", dir.join(file).display());
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .filter(|rest| rest.starts_with(':'))
            .collect()
    }

    fn dump(&self) -> String {
        format!(
            "exit code {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn validate(dir: &Path) -> Run {
    let mut child = Command::new(BIN)
        .arg("validate")
        .arg("--manifests")
        .arg(dir)
        .env_remove("RUST_LOG")
        .env_remove("APIMOUNT_MANIFESTS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start apimount");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "apimount validate {} did not finish within {RUN_DEADLINE:?}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let run = Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(
        run.code.is_some() && !run.stderr.contains("panicked"),
        "apimount crashed on {}\n{}",
        dir.display(),
        run.dump()
    );
    run
}

/// Checks every case against one run; returns one message per failure.
fn check_cases(run: &Run, dir: &Path, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases {
        let lines = run.lines_of(dir, &c.file);
        let problems = c.problems(&lines, dir);
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n    its error lines: {lines:#?}",
                c.file,
                problems.join("; ")
            ));
        }
    }
    // No error line may name anything but the files of the cases.
    for line in run.stdout.lines().filter(|l| l.starts_with("error: ")) {
        let owned = cases.iter().any(|c| {
            line.strip_prefix(format!("error: {}", dir.join(&c.file).display()).as_str())
                .is_some_and(|rest| rest.starts_with(':'))
        });
        if !owned {
            failures.push(format!("error line naming no corpus file: {line}"));
        }
    }
    failures
}

fn assert_no_failures(what: &str, failures: &[String], run: &Run) {
    assert!(
        failures.is_empty(),
        "{what}: {} problem(s):\n  {}\n\n{}",
        failures.len(),
        failures.join("\n  "),
        run.dump()
    );
}

/// The `N of M manifest file(s)` summary: M, the files apimount looked at.
fn files_seen(run: &Run) -> usize {
    let last = run.stdout.lines().last().unwrap_or_default();
    let of = last
        .split(" of ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok());
    of.unwrap_or_else(|| panic!("no summary line\n{}", run.dump()))
}

fn copy_files(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

// ---- files made at run time ----------------------------------------------------------

fn manifest(name: &str) -> String {
    mount_yaml(name, &format!("/{name}"), "fn", "")
}

/// A valid manifest padded with a comment to exactly `len` bytes.
fn padded_manifest(name: &str, len: usize) -> Vec<u8> {
    let mut text = manifest(name);
    text.push('#');
    while text.len() < len - 1 {
        text.push('x');
    }
    text.push('\n');
    assert_eq!(text.len(), len);
    text.into_bytes()
}

/// How a file named `caf\xe9.yaml` (Latin-1, not UTF-8) is shown.
const NON_UTF8_NAME: &str = "caf\u{FFFD}.yaml";

/// Makes one special file in `dir` (with `outside` a folder beside it) and
/// says what apimount must make of it.
type Maker = fn(dir: &Path, outside: &Path) -> Made;

enum Made {
    Case(Case),
    /// Not a manifest: no error line may name it and it is not counted.
    Ignored,
    /// This environment cannot run the check; the reason is printed. The
    /// flag says whether a manifest file was left behind (apimount counts it).
    Skipped(String, bool),
}

const SPECIALS: &[(&str, Maker)] = &[
    ("oversize.yaml", |dir, _| {
        fs::write(
            dir.join("oversize.yaml"),
            padded_manifest("oversize", MAX_MANIFEST_BYTES + 1),
        )
        .unwrap();
        Made::Case(Case::bad(
            "oversize.yaml",
            &[": file is 65537 bytes; manifests are limited to 65536 bytes"],
        ))
    }),
    ("huge-sparse.yaml", |dir, _| {
        // 1 GiB that takes no disk: it must be refused by its size, unread.
        let f = fs::File::create(dir.join("huge-sparse.yaml")).unwrap();
        f.set_len(1 << 30).unwrap();
        Made::Case(Case::bad(
            "huge-sparse.yaml",
            &[": file is 1073741824 bytes; manifests are limited to 65536 bytes"],
        ))
    }),
    ("exactly-64k.yaml", |dir, _| {
        fs::write(
            dir.join("exactly-64k.yaml"),
            padded_manifest("exactly-64k", MAX_MANIFEST_BYTES),
        )
        .unwrap();
        Made::Case(Case::good("exactly-64k.yaml"))
    }),
    ("link-outside.yaml", |dir, outside| {
        let target = outside.join("elsewhere.yaml");
        fs::write(&target, manifest("elsewhere")).unwrap();
        std::os::unix::fs::symlink(&target, dir.join("link-outside.yaml")).unwrap();
        Made::Case(Case::bad(
            "link-outside.yaml",
            &[": is a symlink that leads outside the manifest folder; only links that stay inside it are followed"],
        ))
    }),
    ("link-outside-dir.yaml", |dir, outside| {
        std::os::unix::fs::symlink(outside, dir.join("link-outside-dir.yaml")).unwrap();
        Made::Case(Case::bad(
            "link-outside-dir.yaml",
            &[": is a symlink that leads outside the manifest folder; only links that stay inside it are followed"],
        ))
    }),
    ("link-loop.yaml", |dir, _| {
        std::os::unix::fs::symlink("link-loop.yaml", dir.join("link-loop.yaml")).unwrap();
        Made::Case(Case::bad("link-loop.yaml", &[": is a symlink loop"]))
    }),
    ("link-loop-pair.yaml", |dir, _| {
        std::os::unix::fs::symlink(".link-loop-pair.yaml", dir.join("link-loop-pair.yaml"))
            .unwrap();
        std::os::unix::fs::symlink("link-loop-pair.yaml", dir.join(".link-loop-pair.yaml"))
            .unwrap();
        Made::Case(Case::bad("link-loop-pair.yaml", &[": is a symlink loop"]))
    }),
    ("link-dangling.yaml", |dir, _| {
        std::os::unix::fs::symlink("no-such-file.yaml", dir.join("link-dangling.yaml")).unwrap();
        Made::Case(Case::bad(
            "link-dangling.yaml",
            &[": is a symlink whose target does not exist"],
        ))
    }),
    ("unreadable.yaml", |dir, _| {
        let p = dir.join("unreadable.yaml");
        fs::write(&p, manifest("unreadable")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
        if fs::read(&p).is_ok() {
            // Root (or CAP_DAC_OVERRIDE) reads it anyway: then it is a valid manifest.
            return Made::Skipped(
                "unreadable.yaml: mode 000 files are readable here (running as root); the permission-denied check runs as an unprivileged user in corpus::an_unreadable_manifest_is_reported_even_when_tests_run_as_root"
                    .into(),
                true,
            );
        }
        Made::Case(Case::bad(
            "unreadable.yaml",
            &[": cannot be read: permission denied"],
        ))
    }),
    ("fifo.yaml", |dir, _| {
        let made = Command::new("mkfifo")
            .arg(dir.join("fifo.yaml"))
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !made {
            return Made::Skipped("fifo.yaml: mkfifo is not available; skipped".into(), false);
        }
        Made::Case(Case::bad("fifo.yaml", &[": is not a regular file"]))
    }),
    ("dir.yaml", |dir, _| {
        // A directory named like a manifest is skipped, and not read into.
        let sub = dir.join("dir.yaml");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("inside.yaml"), "{{{ not yaml").unwrap();
        Made::Ignored
    }),
    ("ignored files", |dir, _| {
        for name in [
            ".hidden.yaml",
            "backup.yaml~",
            ".backup.yaml.swp",
            "README.md",
            "notes.txt",
            "yaml",
        ] {
            fs::write(dir.join(name), "{{{ not yaml\0").unwrap();
        }
        Made::Ignored
    }),
    (NON_UTF8_NAME, |dir, _| {
        // A file whose name is not UTF-8 must not be skipped in silence: its
        // mount would vanish (and its routes be removed) without a word.
        let name = OsString::from_vec(b"caf\xe9.yaml".to_vec());
        fs::write(dir.join(name), manifest("latin-name")).unwrap();
        Made::Case(Case::bad(NON_UTF8_NAME, &["file name that is not UTF-8"]))
    }),
];

/// Makes every special file in `dir`; returns their cases and how many
/// manifest files apimount should count.
fn make_specials(dir: &Path, outside: &Path, notes: &mut BTreeSet<String>) -> (Vec<Case>, usize) {
    let mut cases = Vec::new();
    let mut counted = 0;
    for (_, make) in SPECIALS {
        match make(dir, outside) {
            Made::Case(c) => {
                counted += 1;
                cases.push(c);
            }
            Made::Ignored => {}
            Made::Skipped(note, left_behind) => {
                counted += usize::from(left_behind);
                notes.insert(note);
            }
        }
    }
    (cases, counted)
}

fn print_notes(notes: &BTreeSet<String>) {
    for n in notes {
        eprintln!("note: {n}");
    }
}

// ---- tests ----------------------------------------------------------------------------

#[test]
fn corpus_is_complete_and_listed() {
    let bad = bad_cases();
    assert!(bad.len() >= 45, "only {} bad manifests", bad.len());
    let good = good_cases();
    let clash: Vec<_> = good
        .iter()
        .filter(|g| bad.iter().any(|b| b.file == g.file))
        .collect();
    assert!(clash.is_empty(), "good and bad share file names: {clash:?}");
    for (name, _) in SPECIALS {
        assert!(
            !bad.iter().chain(&good).any(|c| c.file == *name),
            "{name} is both committed and made at run time"
        );
    }
}

/// Everything in one folder: each bad file is named in its own error lines,
/// the good ones are not named at all, nothing else is.
#[test]
fn whole_corpus_in_one_folder() {
    let tmp = TempDir::new().unwrap();
    let outside = TempDir::new().unwrap();
    let dir = tmp.path().join("manifests");
    fs::create_dir(&dir).unwrap();
    copy_files(&corpus().join("bad"), &dir);
    copy_files(&corpus().join("good"), &dir);
    let mut notes = BTreeSet::new();
    let (specials, special_count) = make_specials(&dir, outside.path(), &mut notes);
    let mut cases = bad_cases();
    cases.extend(good_cases());
    let committed = cases.len();
    cases.extend(specials);

    let run = validate(&dir);
    assert_eq!(run.code, Some(1), "validate must exit 1\n{}", run.dump());
    let failures = check_cases(&run, &dir, &cases);
    assert_no_failures("whole corpus", &failures, &run);
    assert_eq!(
        files_seen(&run),
        committed + special_count,
        "apimount counted a different number of manifest files (ignored files counted, or manifests skipped?)\n{}",
        run.dump()
    );
    print_notes(&notes);
}

/// Each file alone in a folder: its own message, and exit 1 (0 for good files).
#[test]
fn each_file_alone() {
    let mut failures = Vec::new();
    let mut notes = BTreeSet::new();
    let committed: Vec<(Case, PathBuf)> = bad_cases()
        .into_iter()
        .map(|c| (c, corpus().join("bad")))
        .chain(good_cases().into_iter().map(|c| (c, corpus().join("good"))))
        .collect();
    for (case, from) in committed {
        let tmp = TempDir::new().unwrap();
        fs::copy(from.join(&case.file), tmp.path().join(&case.file)).unwrap();
        failures.extend(check_alone(tmp.path(), &case));
    }
    for (_, make) in SPECIALS {
        let tmp = TempDir::new().unwrap();
        let outside = TempDir::new().unwrap();
        let dir = tmp.path().join("m");
        fs::create_dir(&dir).unwrap();
        match make(&dir, outside.path()) {
            Made::Case(case) => failures.extend(check_alone(&dir, &case)),
            Made::Ignored => {
                let run = validate(&dir);
                if run.code != Some(0) || run.stdout.contains("error: ") {
                    failures.push(format!("ignored files were not ignored\n{}", run.dump()));
                }
            }
            Made::Skipped(note, _) => {
                notes.insert(note);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} file(s) misbehave on their own:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    print_notes(&notes);
}

fn check_alone(dir: &Path, case: &Case) -> Vec<String> {
    let run = validate(dir);
    let mut problems = check_cases(&run, dir, std::slice::from_ref(case));
    let want = if case.must_fail { 1 } else { 0 };
    if run.code != Some(want) {
        problems.push(format!(
            "{}: exit code {:?}, want {want}",
            case.file, run.code
        ));
    }
    if problems.is_empty() {
        Vec::new()
    } else {
        vec![format!("{}\n{}", problems.join("\n"), run.dump())]
    }
}

/// Two manifests with the same name or path: the first by file name wins and
/// the other's error names both files.
#[test]
fn cross_file_duplicates() {
    let root = corpus().join("dupes");
    let mut case_dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    case_dirs.sort();
    assert!(
        case_dirs.len() >= 3,
        "too few clash cases in {}",
        root.display()
    );
    let tmp = TempDir::new().unwrap();
    let mut failures = Vec::new();
    for from in case_dirs {
        let name = from.file_name().unwrap().to_owned();
        let dir = tmp.path().join(&name);
        fs::create_dir(&dir).unwrap();
        copy_files(&from, &dir);
        let mut cases = read_expected(&from.join("EXPECTED.tsv"));
        for f in file_names(&from) {
            if !cases.iter().any(|c| c.file == f) {
                cases.push(Case::good(&f));
            }
        }
        failures.extend(check_dir(&dir, &cases));
    }

    // A symlink inside the folder to another manifest is that manifest twice.
    let dir = tmp.path().join("symlink-inside");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("a.yaml"), manifest("linked")).unwrap();
    std::os::unix::fs::symlink("a.yaml", dir.join("b.yaml")).unwrap();
    let cases = vec![
        Case::good("a.yaml"),
        Case::bad(
            "b.yaml",
            &["metadata.name: name 'linked' is already used by {dir}/a.yaml"],
        ),
    ];
    failures.extend(check_dir(&dir, &cases));

    assert!(
        failures.is_empty(),
        "{} clash case(s) misbehave:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn check_dir(dir: &Path, cases: &[Case]) -> Vec<String> {
    let run = validate(dir);
    let mut problems = check_cases(&run, dir, cases);
    let want = if cases.iter().any(|c| c.must_fail) {
        1
    } else {
        0
    };
    if run.code != Some(want) {
        problems.push(format!("exit code {:?}, want {want}", run.code));
    }
    if problems.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "{}:\n  {}\n{}",
            dir.display(),
            problems.join("\n  "),
            run.dump()
        )]
    }
}

/// The permission-denied case, run as an unprivileged user when the tests
/// run as root (as CI does), where mode 000 files are readable and the
/// corpus cannot check it.
#[test]
fn an_unreadable_manifest_is_reported_even_when_tests_run_as_root() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let p = dir.path().join("unreadable.yaml");
    fs::write(&p, manifest("unreadable")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o000)).unwrap();
    fs::write(dir.path().join("fine.yaml"), manifest("fine")).unwrap();
    let binary = env!("CARGO_BIN_EXE_apimount");
    let args = ["validate", "--manifests", dir.path().to_str().unwrap()];
    let as_root = fs::read(&p).is_ok();
    let out = if as_root {
        // As nobody: the file is refused as it would be for a real user.
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", binary])
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("the tests run as root and need setpriv to drop privileges for this check ({e}); install it with `apt-get install util-linux`")
            })
    } else {
        Command::new(binary).args(args).output().unwrap()
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("unreadable.yaml: cannot be read: permission denied"),
        "{text}"
    );
    assert!(!text.contains("fine.yaml"), "{text}");
}
