//! `agent.toml` with a typo is refused with the key's name, by the library and by
//! `streamlog ingest` (exit status 2, nothing started).

use streamlog::ingest::AgentConfig;

#[test]
fn unknown_keys_are_named() {
    let top = AgentConfig::from_toml("data_dir = \"d\"\nlinger = 5\n").unwrap_err();
    assert!(top.to_string().contains("linger"), "{top}");
    let source = AgentConfig::from_toml(
        "data_dir = \"d\"\n[[source]]\ntype = \"file\"\nname = \"a\"\ntopic = \"t\"\npaths = [\"x\"]\nmax_line = 3\n",
    )
    .unwrap_err();
    assert!(source.to_string().contains("max_line"), "{source}");
    let kind =
        AgentConfig::from_toml("data_dir = \"d\"\n[[source]]\ntype = \"kafka\"\n").unwrap_err();
    assert!(kind.to_string().contains("kafka"), "{kind}");
    let codec = AgentConfig::from_toml("data_dir = \"d\"\ncompression = \"brotli\"\n").unwrap_err();
    assert!(codec.to_string().contains("brotli"), "{codec}");
}

#[test]
fn cli_refuses_a_bad_config_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!("data_dir = \"{}\"\nlinger_mss = 5\n", data.display()),
    )
    .unwrap();
    let out = crate::common::child::run(
        env!("CARGO_BIN_EXE_streamlog"),
        &["ingest", "--config", config.to_str().unwrap()],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("linger_mss") && stderr.contains("agent.toml"),
        "{stderr}"
    );
    assert!(!data.exists(), "nothing is created for a refused config");
}
