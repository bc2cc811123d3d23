//! `shoal`: parse the command line, run it, print errors as `Error: …`.

#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = match shoal_cli::args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return std::process::ExitCode::SUCCESS;
        }
        Err(e) => {
            // Usage errors follow the CLI contract too: `Error: …` on stderr,
            // and Docker's exit code for a command the client refused.
            let argv: Vec<String> = std::env::args_os()
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect();
            eprint!("Error: {}", shoal_cli::usage::error_text(&e, &argv));
            return std::process::ExitCode::from(shoal_cli::usage::EXIT_CODE);
        }
    };
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
