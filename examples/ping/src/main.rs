//! `ping`: the example app. `ping --help` lists its settings.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;

/// The example app Flotilla ships changes of: `GET /ping` answers `pong` (or
/// `{"value":"pong"}` with `--answer json`), `GET /metrics` counts requests by status code and
/// their latency for canary analysis, and `--error-rate` / `--extra-latency` make a bad version.
#[derive(Debug, Parser)]
#[command(name = "ping", version)]
struct Cli {
    /// Where to listen.
    #[arg(long, env = "PING_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    #[command(flatten)]
    settings: ping::Settings,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.settings.check() {
        eprintln!("ping: {e}");
        return ExitCode::from(64);
    }
    let listener = match tokio::net::TcpListener::bind(cli.addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("ping: cannot listen on {}: {e}", cli.addr);
            return ExitCode::from(69);
        }
    };
    let addr = listener.local_addr().map_or(cli.addr, |a| a);
    eprintln!(
        "ping: listening on http://{addr} ({:?})",
        cli.settings.answer
    );
    // Ctrl-C here, SIGTERM from Kubernetes: both drain and exit 0.
    let stop = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    match axum::serve(listener, ping::router(cli.settings))
        .with_graceful_shutdown(stop)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ping: {e}");
            ExitCode::FAILURE
        }
    }
}
