//! One module per command group; [`dispatch`] routes a parsed command line.

pub mod example_server;
pub mod info;
pub mod listing;
pub mod logs;
pub mod network;
pub mod node;
pub mod secret;
pub mod service;
pub mod stack;
pub mod swarm;
pub mod swarm_ca;
pub mod swarm_inspect;
pub mod volume;

use crate::args::{Cli, Command};
use crate::daemon::{self, DaemonConfig};

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let host = cli.host.as_deref();
    match cli.command {
        Command::Daemon(args) => {
            init_tracing();
            let socket = match args.socket {
                Some(socket) => socket,
                None => crate::client::socket_path(host)?,
            };
            let config = DaemonConfig {
                data_dir: args.data_dir,
                socket,
                hostname: args.hostname.unwrap_or_else(daemon::system_hostname),
                socket_group: args
                    .group
                    .as_deref()
                    .map(daemon::private::SocketGroup::lookup)
                    .transpose()?,
                docker_api: args.docker_api,
            };
            daemon::run(config, shutdown_signal()).await
        }
        Command::Swarm(command) => swarm::run(host, command).await,
        Command::Node(command) => node::run(host, command).await,
        Command::Info(args) => info::run(host, args).await,
        Command::Service(command) => service::run(host, command).await,
        Command::Stack(command) => stack::run(host, command).await,
        Command::Network(command) => network::run(host, command).await,
        Command::Secret(command) => secret::run_secret(host, command).await,
        Command::Config(command) => secret::run_config(host, command).await,
        Command::Volume(command) => volume::run(host, command).await,
        Command::ExampleServer {
            base_port,
            listen,
            state_dir,
        } => {
            example_server::run(example_server::Options {
                base_port,
                listen,
                state_dir,
            })
            .await
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn,sled=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
}
