//! The command line: `glm-proxy [serve]`, `glm-proxy keys ...` and `glm-proxy health`.

mod health;
mod keys;
pub mod limits;
mod usage;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::log_format::LogFormat;
use crate::server;

#[derive(Parser)]
#[command(name = "glm-proxy", version, about = "OpenAI-compatible proxy in front of Cerebras, with key rotation")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start the proxy (the default when no command is given).
    Serve,
    /// Manage client API keys (used when ENABLE_INCOMING_AUTH=true).
    Keys(Box<keys::KeysArgs>),
    /// Check that the proxy at HOST:PORT answers /health (exit 0), for container health checks.
    Health(health::HealthArgs),
}

/// Runs the program; the exit code is 0 on a clean stop, 2 on bad configuration (an address
/// that cannot be bound and a folder that cannot be written included), 1 otherwise.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(problem) = load_dotenv() {
        eprintln!("glm-proxy: {problem}");
        return ExitCode::from(2);
    }
    let format = match LogFormat::from_env() {
        Ok(format) => format,
        Err(problem) => {
            eprintln!("glm-proxy: {problem}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(move |out, record| format.write(out, record))
        .init();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Keys(args) => keys::run(*args),
        Command::Health(args) => health::run(args),
    }
}

/// Loads `.env` from the working directory if there is one. A parse error names the line,
/// never its content, which may hold a key.
fn load_dotenv() -> Result<(), String> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(dotenvy::Error::LineParse(_, index)) => Err(format!(".env cannot be parsed near character {index}")),
        Err(e @ dotenvy::Error::Io(_)) => Err(format!(".env cannot be read: {e}")),
        Err(_) => Err(".env cannot be parsed".to_owned()),
    }
}

fn serve() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(problem) => {
            eprintln!("glm-proxy: {problem}");
            return ExitCode::from(2);
        }
    };
    let outcome = actix_web::rt::System::new().block_on(async move {
        let running = server::start(config)?;
        running.serve().await.map_err(server::StartError::Serve)
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem @ (server::StartError::Config(_) | server::StartError::Bind { .. })) => {
            eprintln!("glm-proxy: {problem}");
            ExitCode::from(2)
        }
        Err(problem) => {
            eprintln!("glm-proxy: {problem}");
            ExitCode::FAILURE
        }
    }
}
