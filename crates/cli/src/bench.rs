//! Benchmarks.
#[derive(clap::Subcommand)]
pub enum BenchCmd {}
pub fn run(_b: BenchCmd) -> anyhow::Result<()> {
    Ok(())
}
