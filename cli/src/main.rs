//! `shoal`: parse the command line, run it, print errors as `Error: …`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = shoal_cli::args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(shoal_cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", shoal_cli::client::describe_error(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
