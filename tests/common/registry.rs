//! The Schema Registry side of the harness: a real registry (Apicurio Registry, through
//! `scripts/registry/apicurio.sh`, its Confluent-compatible API at `/apis/ccompat/v7`) and
//! Confluent's own serializers (`tests/registry/serde.py` in the venv of
//! `scripts/registry/pyenv.sh`) to write and read records as Confluent clients do.
//!
//! - [`registry_url`]: the registry all tests share (`KWB_SCHEMA_REGISTRY_URL`, which
//!   `scripts/test.sh` sets; else one Apicurio started for this test process).
//! - [`OwnRegistry`]: a registry of a test's own, which it can pause (SIGSTOP: connections are
//!   accepted and never answered, as with a hung or unreachable registry) and resume.
//! - [`serde_py`]: runs serde.py (produce, consume, register) and returns its JSON lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::{blocking, http_get, TempDir};

/// How long one serde.py run may take before the test fails (its own waits are shorter: 30 s
/// for a consume by default, 10 s per registry request).
const SERDE_DEADLINE: Duration = Duration::from_secs(120);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn apicurio_script() -> PathBuf {
    root().join("scripts/registry/apicurio.sh")
}

/// The URL of the Confluent-compatible API of a running registry, such as
/// `http://127.0.0.1:PORT/apis/ccompat/v7`: `KWB_SCHEMA_REGISTRY_URL` when set (scripts/test.sh
/// starts one Apicurio for the whole run and sets it), else one Apicurio Registry started for
/// this test process on its first call (a few seconds; stopped when the process exits, its log
/// left in a `kwb-registry-*` temp dir). Shared: tests use subjects of their own (topics with
/// random names give them).
pub async fn registry_url() -> String {
    if let Ok(url) = std::env::var("KWB_SCHEMA_REGISTRY_URL") {
        return url;
    }
    static SHARED: OnceLock<String> = OnceLock::new();
    blocking(|| {
        SHARED
            .get_or_init(|| {
                // Not a TempDir: a static is never dropped. The registry stops when this
                // process exits (--owner).
                let dir =
                    std::env::temp_dir().join(format!("kwb-registry-{}", super::random_suffix()));
                start_apicurio(&dir, super::free_port())
            })
            .clone()
    })
}

/// Runs `scripts/registry/apicurio.sh start DIR PORT --owner <this process>`; returns the URL it
/// prints, or fails the test with the script's output (the end of the registry's log).
fn start_apicurio(dir: &Path, port: u16) -> String {
    let output = Command::new(apicurio_script())
        .arg("start")
        .arg(dir)
        .arg(port.to_string())
        .args(["--owner", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/registry/apicurio.sh");
    assert!(
        output.status.success(),
        "scripts/registry/apicurio.sh start {} {port} failed ({}):\n{}{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A registry of a test's own (Apicurio Registry, storage in memory): for outages. Its start
/// blocks for a few seconds: use it in multi-threaded tests. Stopped on drop (paused or not).
pub struct OwnRegistry {
    /// Log (`registry.log`) and pid.
    dir: TempDir,
    url: String,
    pid: u32,
    pub port: u16,
}

impl OwnRegistry {
    /// Starts one on a free port; returns once its ccompat API answers.
    pub fn start() -> OwnRegistry {
        let dir = TempDir::new("own-registry");
        let port = super::free_port();
        let url = blocking(|| start_apicurio(&dir.path, port));
        let pid = std::fs::read_to_string(dir.path.join("registry.pid"))
            .expect("registry.pid")
            .trim()
            .parse()
            .expect("a pid in registry.pid");
        OwnRegistry {
            dir,
            url,
            pid,
            port,
        }
    }

    /// Its Confluent-compatible API: `http://127.0.0.1:PORT/apis/ccompat/v7`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Freezes the registry (SIGSTOP): connections are still accepted by the kernel, requests
    /// get no answer, as from a hung or unreachable registry.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets it run again (SIGCONT); requests sent meanwhile are answered then.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// Its log so far (`registry.log`: Quarkus' log and one access-log line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("registry.log")).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid);
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        // SIGCONT then SIGTERM (the script's stop); Quarkus exits in well under a second.
        let dir = self.dir.path.clone();
        blocking(|| {
            let _ = Command::new(apicurio_script())
                .arg("stop")
                .arg(&dir)
                .stdin(Stdio::null())
                .output();
        });
    }
}

/// GET `path` under a registry URL (`registry_url()`, `OwnRegistry::url()`) over a fresh
/// connection: status and body.
pub async fn registry_get(url: &str, path: &str) -> (u16, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http:// URL: {url}"));
    let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let addr = tokio::net::lookup_host(authority)
        .await
        .unwrap_or_else(|e| panic!("{authority}: {e}"))
        .next()
        .unwrap_or_else(|| panic!("{authority}: no address"));
    http_get(addr, &format!("/{prefix}{path}")).await
}

/// The absolute path of a schema under `tests/registry/schemas/` (`order.avsc`, `orders.proto`,
/// ...), for serde.py's `--schema`.
pub fn schema_file(name: &str) -> String {
    let path = root().join("tests/registry/schemas").join(name);
    assert!(path.exists(), "no schema {}", path.display());
    path.to_str().unwrap().to_owned()
}

/// The python of the venv made by `scripts/registry/pyenv.sh` (made once per machine, cached).
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let output = Command::new(root().join("scripts/registry/pyenv.sh"))
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/registry/pyenv.sh");
        assert!(
            output.status.success(),
            "scripts/registry/pyenv.sh failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
        );
        PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
    })
}

/// Runs `tests/registry/serde.py ARGS` (Confluent's serializers; its docstring has the commands)
/// with `stdin_lines` on its standard input, one per line; returns its output lines as JSON.
/// Fails the test with the script's stderr when it exits non-zero or runs past two minutes.
/// What it says on stderr otherwise (notes such as a registry answer it had to work around) is
/// printed to the test's output.
///
/// ```ignore
/// let produced = serde_py(
///     &["produce", "--bootstrap", &bootstrap(), "--registry", &registry_url().await,
///       "--topic", &topic, "--format", "avro", "--schema", &schema_file("order.avsc")],
///     &[json!({"key": "c1", "value": {...}}).to_string()],
/// );
/// // [{"partition": 0, "offset": 0, "schema_id": 1, "key_schema_id": null}]
/// ```
pub fn serde_py(args: &[&str], stdin_lines: &[String]) -> Vec<Value> {
    let python = blocking(python);
    let mut child = Command::new(python)
        .arg(root().join("tests/registry/serde.py"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tests/registry/serde.py");
    let pid = child.id();
    let mut input = stdin_lines.join("\n");
    input.push('\n');
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        // A script that fails early closes its input: its stderr says why.
        let _ = stdin.write_all(input.as_bytes());
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let output = blocking(|| done_rx.recv_timeout(SERDE_DEADLINE));
    let _ = writer.join();
    let output = match output {
        Ok(output) => output.expect("wait for serde.py"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!(
                "serde.py {} ran past {SERDE_DEADLINE:?}: killed",
                args.join(" ")
            );
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "serde.py {} failed ({}):\n{stderr}",
        args.join(" "),
        output.status,
    );
    if !stderr.trim().is_empty() {
        println!("serde.py {}: {}", args[0], stderr.trim());
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("serde.py printed a line that is not JSON ({e}): {line}")
            })
        })
        .collect()
}
