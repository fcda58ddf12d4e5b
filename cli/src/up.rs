//! `flash up`: the whole stack on this machine. (Being written.)

use std::process::ExitCode;

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct UpArgs {}

pub async fn run(_args: UpArgs) -> Result<ExitCode> {
    anyhow::bail!("flash up is not written yet")
}
