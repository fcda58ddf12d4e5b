//! `flash simulate`: a flash crowd through the HTTP edge. (Being written.)

use std::process::ExitCode;

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {}

pub async fn run(_args: SimulateArgs) -> Result<ExitCode> {
    anyhow::bail!("flash simulate is not written yet")
}
