//! Real, unmodified Kafka clients (confluent-kafka on librdkafka, kafka-python) against the
//! broker binary started as a process.
//!
//! Each scenario is a Python script in `tests/clients/`, run with a hard timeout against a
//! broker on a free loopback port with its own temporary data directory. The clients are
//! installed into a venv under `target/` from the pinned `tests/clients/requirements.txt`
//! (once; reused while the requirements are unchanged). `STREAMLOG_PYTHON` picks the Python
//! interpreter (default `python3`).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

const BROKER: &str = env!("CARGO_BIN_EXE_broker");
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);
const PIP_TIMEOUT: Duration = Duration::from_secs(600);
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Runs `cmd` to completion within `limit`, output to `log`; kills it on timeout.
fn run_bounded(mut cmd: Command, limit: Duration, log: &Path) -> Result<(), String> {
    let out = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawning {cmd:?}: {e}"))?;
    let status = match child.wait_timeout(limit).map_err(|e| e.to_string())? {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?} timed out after {limit:?}\n{}", tail(log)));
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})\n{}", tail(log)))
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The venv's python, created on first use by any test in this binary.
fn python() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    VENV.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("broker-clients-venv");
        let requirements = clients_dir().join("requirements.txt");
        let wanted = std::fs::read_to_string(&requirements).expect("requirements.txt");
        let stamp = venv.join("installed-requirements.txt");
        let py = venv.join("bin/python");
        if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) && py.exists() {
            return py;
        }
        let _ = std::fs::remove_dir_all(&venv);
        std::fs::create_dir_all(venv.parent().unwrap()).unwrap();
        let log = venv.with_extension("log");
        let interpreter = std::env::var("STREAMLOG_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut mk = Command::new(interpreter);
        mk.arg("-m").arg("venv").arg(&venv);
        run_bounded(mk, Duration::from_secs(120), &log).expect("python3 -m venv");
        let mut pip = Command::new(&py);
        pip.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            "-r",
        ])
        .arg(&requirements);
        run_bounded(pip, PIP_TIMEOUT, &log).expect("pip install of the pinned clients");
        std::fs::write(&stamp, wanted).unwrap();
        py
    })
}

/// A broker process; killed when dropped.
struct Broker {
    child: Child,
    addr: SocketAddr,
    data_dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
}

impl Broker {
    fn start(work: &Path, config_toml: &str) -> Broker {
        let data_dir = work.join("data");
        let config = work.join("broker.toml");
        std::fs::write(&config, config_toml).unwrap();
        Self::spawn(data_dir, config, work.join("broker.log"))
    }

    fn spawn(data_dir: PathBuf, config: PathBuf, log: PathBuf) -> Broker {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(BROKER)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting the broker");
        // The broker prints `listening on ADDR` once it serves.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let addr: SocketAddr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("broker did not start\n{}", tail(&log));
            }
        };
        // And the port accepts, within the same deadline.
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
            assert!(Instant::now() < deadline, "broker port never accepted");
        }
        Broker {
            child,
            addr,
            data_dir,
            config,
            log,
        }
    }

    /// SIGKILL, then start again on the same data directory (on a new free port).
    fn kill_and_restart(mut self) -> Broker {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let (data_dir, config, log) =
            (self.data_dir.clone(), self.config.clone(), self.log.clone());
        std::mem::forget(self);
        Self::spawn(data_dir, config, log)
    }

    fn run(&self, script: &str, args: &[&str], work: &Path) {
        let mut cmd = Command::new(python());
        cmd.arg(clients_dir().join(script))
            .arg(self.addr.to_string())
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(clients_dir());
        let log = work.join(format!("{script}.log"));
        if let Err(e) = run_bounded(cmd, SCENARIO_TIMEOUT, &log) {
            panic!("{script}: {e}\n--- broker log ---\n{}", tail(&self.log));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CONFIG: &str = "request_read_timeout_ms = 2000\ntransaction_state_log_num_partitions = 3\n\
    offsets_topic_num_partitions = 3\ngroup_initial_rebalance_delay_ms = 0\n";

#[test]
fn metadata_and_topic_admin() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start(work.path(), CONFIG);
    broker.run("admin.py", &[], work.path());
}

#[test]
fn idempotent_lz4_20000_keyed_messages_consumed_once_in_key_order() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start(work.path(), CONFIG);
    broker.run("idempotent_lz4.py", &[], work.path());
}

#[test]
fn kafka_python_gzip_with_headers_reads_the_same_in_both_clients() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start(work.path(), CONFIG);
    broker.run("gzip_headers.py", &[], work.path());
}

#[test]
fn sigkill_after_last_ack_keeps_every_acknowledged_message_once() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start(work.path(), CONFIG);
    let acked = work.path().join("acked.json");
    let acked = acked.to_str().unwrap();
    broker.run("crash_produce.py", &[acked], work.path());
    let broker = broker.kill_and_restart();
    broker.run("crash_verify.py", &[acked], work.path());
}

#[test]
fn transactions_committed_and_aborted_seen_per_isolation_level() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start(work.path(), CONFIG);
    broker.run("transactions.py", &[], work.path());
}

/// One kind of bad input on a raw socket (`bad_inputs.py CASE`), on a broker of its own:
/// Kafka's error or a closed connection, then the messages stored before are intact and
/// clients still work.
fn bad_input(case: &str) {
    let work = tempfile::tempdir().unwrap();
    let max_connections = 12;
    let broker = Broker::start(
        work.path(),
        &format!("{CONFIG}max_connections = {max_connections}\n"),
    );
    broker.run(
        "bad_inputs.py",
        &[case, &max_connections.to_string()],
        work.path(),
    );
}

#[test]
fn bad_input_oversized_length_prefix_closes_the_connection() {
    bad_input("oversized");
}

#[test]
fn bad_input_garbage_closes_the_connection() {
    bad_input("garbage");
}

#[test]
fn bad_input_truncated_or_stalled_request_closes_at_the_deadline() {
    bad_input("truncated");
}

#[test]
fn bad_input_unknown_api_key_or_version_gets_kafkas_answer() {
    bad_input("unknown_api");
}

#[test]
fn bad_input_corrupt_record_batch_is_corrupt_message_and_not_stored() {
    bad_input("bad_batch");
}

#[test]
fn bad_input_connection_flood_is_capped_at_max_connections() {
    bad_input("flood");
}

#[test]
fn group_commits_halfway_and_a_new_member_resumes_there() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start(work.path(), CONFIG);
    broker.run("group_commit_resume.py", &[], work.path());
}

#[test]
fn group_of_two_rebalances_with_range_and_the_survivor_takes_over() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start(work.path(), CONFIG);
    broker.run("group_rebalance.py", &["range"], work.path());
}

#[test]
fn group_of_two_rebalances_with_cooperative_sticky_and_the_survivor_takes_over() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start(work.path(), CONFIG);
    broker.run("group_rebalance.py", &["cooperative-sticky"], work.path());
}

#[test]
fn static_member_rejoins_without_a_rebalance() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start(work.path(), CONFIG);
    broker.run("static_membership.py", &[], work.path());
}

#[test]
fn exactly_once_consume_transform_produce() {
    let work = tempfile::tempdir().unwrap();
    let broker = Broker::start(work.path(), CONFIG);
    broker.run("exactly_once.py", &[], work.path());
}

/// Test-only certificates, made fresh for each run (no key is kept in the repository): a CA,
/// and a second CA that signed nothing the broker trusts; certificates they sign are
/// written as PEM files into `dir`.
struct Pki {
    dir: PathBuf,
    ca: (rcgen::Certificate, rcgen::KeyPair),
    wrong: (rcgen::Certificate, rcgen::KeyPair),
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            (cert, key)
        };
        let pki = Pki {
            dir: dir.to_path_buf(),
            ca: ca("streamlog test CA"),
            wrong: ca("another test CA"),
        };
        pki.write("ca.pem", pki.ca.0.pem());
        pki.write("wrong-ca.pem", pki.wrong.0.pem());
        pki
    }

    fn write(&self, name: &str, pem: String) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A leaf certificate and key named `NAME.pem`, `NAME-key.pem`: for 127.0.0.1 and
    /// localhost (a server), or for client authentication (subject `CN=cn`); signed by the
    /// good CA or the wrong one.
    fn leaf(&self, name: &str, client_cn: Option<&str>, by_wrong_ca: bool) -> (PathBuf, PathBuf) {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
        let mut params = match client_cn {
            None => {
                let mut p =
                    CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                        .unwrap();
                p.distinguished_name
                    .push(DnType::CommonName, "streamlog test broker");
                p
            }
            Some(cn) => {
                let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
                p.distinguished_name.push(DnType::CommonName, cn);
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                p
            }
        };
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let (issuer, issuer_key) = if by_wrong_ca { &self.wrong } else { &self.ca };
        let cert = params.signed_by(&key, issuer, issuer_key).unwrap();
        (
            self.write(&format!("{name}.pem"), cert.pem()),
            self.write(&format!("{name}-key.pem"), key.serialize_pem()),
        )
    }

    /// The `[tls]` section for a broker with the server certificate, requiring client
    /// certificates of the good CA when `mtls`.
    fn tls_section(&self, mtls: bool) -> String {
        let (cert, key) = self.leaf("server", None, false);
        let mut section = format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        );
        if mtls {
            section += &format!(
                "client_ca = {:?}\n",
                self.path("ca.pem").display().to_string()
            );
        }
        section
    }
}

#[test]
fn tls_listener_serves_clients_of_its_ca_and_refuses_others() {
    let work = tempfile::tempdir().unwrap();
    let pki = Pki::new(work.path());
    let config = format!("{CONFIG}{}", pki.tls_section(false));
    let broker = Broker::start(work.path(), &config);
    broker.run(
        "tls.py",
        &[
            pki.path("ca.pem").to_str().unwrap(),
            pki.path("wrong-ca.pem").to_str().unwrap(),
        ],
        work.path(),
    );
}

#[test]
fn mtls_client_certificate_is_the_principal_acls_check() {
    let work = tempfile::tempdir().unwrap();
    let pki = Pki::new(work.path());
    for (name, cn, wrong) in [
        ("admin", "admin", false),
        ("alice", "alice", false),
        ("bob", "bob", false),
        ("mallory", "alice", true),
    ] {
        pki.leaf(name, Some(cn), wrong);
    }
    let config = format!(
        "{CONFIG}[authorizer]\nsuper_users = [\"User:CN=admin\"]\n{}",
        pki.tls_section(true)
    );
    let broker = Broker::start(work.path(), &config);
    broker.run("mtls.py", &[work.path().to_str().unwrap()], work.path());
}

#[test]
fn sasl_ssl_authenticates_over_tls() {
    let work = tempfile::tempdir().unwrap();
    let pki = Pki::new(work.path());
    let config = format!(
        "{CONFIG}[sasl]\nusers = {{ alice = \"alice-secret\" }}\n{}",
        pki.tls_section(false)
    );
    let broker = Broker::start(work.path(), &config);
    broker.run(
        "sasl_ssl.py",
        &[pki.path("ca.pem").to_str().unwrap()],
        work.path(),
    );
}

#[test]
fn sasl_plain_and_scram_accept_the_right_password_only() {
    let work = tempfile::tempdir().unwrap();
    let config = format!("{CONFIG}[sasl]\nusers = {{ alice = \"alice-secret\" }}\n");
    let broker = Broker::start(work.path(), &config);
    broker.run("sasl.py", &[], work.path());
    // Salted and hashed in the data directory: the password itself is nowhere in it.
    let stored = std::fs::read_to_string(broker.data_dir.join("sasl-credentials")).unwrap();
    assert!(stored.contains("alice") && !stored.contains("alice-secret"));
}

#[test]
fn acls_deny_one_principal_and_serve_another() {
    let work = tempfile::tempdir().unwrap();
    let config = format!(
        "{CONFIG}[sasl]\nusers = {{ admin = \"admin-secret\", alice = \"alice-secret\", bob = \"bob-secret\" }}\n\
         [authorizer]\nsuper_users = [\"User:admin\"]\n"
    );
    let broker = Broker::start(work.path(), &config);
    broker.run("acl.py", &[], work.path());
    // The ACLs left are in the data directory.
    let stored = std::fs::read_to_string(broker.data_dir.join("acls.toml")).unwrap();
    assert!(stored.contains("User:alice") && stored.contains("acl-orders"));
}
