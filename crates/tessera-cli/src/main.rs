//! The `tessera` command: run a server, watch the demonstration, and the everyday commands over the SDK.
//!
//! Exit codes: 0 on success, 1 on failure (including a failed check of `tessera demo`), 2 on a usage error.

mod cli;
mod commands;
mod demo;
mod keys;
mod trust;
mod ui;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    // `parse` prints help and version with exit code 0 and usage errors with exit code 2.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", ui::describe(&error));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => commands::serve(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Owner(command) => commands::owner(command).await,
        Command::Entity(command) => commands::entity(command).await,
        Command::Attachment(command) => commands::attachment(command).await,
        Command::Whoami(args) => commands::whoami(args).await,
        Command::Admin(cli::AdminCommand::Compact(args)) => commands::compact(&args),
        Command::Keys(cli::KeysCommand::Protect(args)) => {
            keys::protect(&args)?;
            ui::print_json(&serde_json::json!({
                "key_file": args.key.display().to_string(),
                "protected": true,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
