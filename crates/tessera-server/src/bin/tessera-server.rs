//! `tessera-server [LISTEN] [DATA_DIR]`: runs the server until Ctrl-C (the `tessera` CLI's `serve` wraps the same code).
//! The URLs clients reach it at come from `TESSERA_PUBLIC_URL` (comma-separated); a PostgreSQL database URL in
//! `TESSERA_DATABASE` replaces the redb database of `DATA_DIR`.

use std::process::ExitCode;

use tessera_server::serve::{DATABASE_ENV, DEFAULT_DATA_DIR, PUBLIC_URL_ENV, ServeOptions, start};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        // Colours only for a terminal, never into a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let data_dir = args.next().unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned());
    let Ok(listen) = listen.parse() else {
        eprintln!("tessera-server: `{listen}` is not a socket address such as 127.0.0.1:8080");
        return ExitCode::from(2);
    };
    let options = ServeOptions {
        listen,
        data_dir: data_dir.into(),
        database: std::env::var(DATABASE_ENV)
            .ok()
            .filter(|url| !url.is_empty()),
        public_urls: std::env::var(PUBLIC_URL_ENV)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    let server = match start(&options).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("tessera-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Tests and scripts read this line to learn the port when listening on port 0.
    println!("listening on {}", server.local_addr());
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}
