//! The broker binary (what the tests start); the same as `cargo run --example broker`.

fn main() -> anyhow::Result<()> {
    streamlog_broker::main()
}
