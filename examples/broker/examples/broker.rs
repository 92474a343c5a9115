//! `cargo run --release --example broker -- --data-dir DIR --listen 127.0.0.1:9092` from the
//! workspace root. The broker itself is this package's library (see `src/lib.rs`).

fn main() -> anyhow::Result<()> {
    streamlog_broker::main()
}
