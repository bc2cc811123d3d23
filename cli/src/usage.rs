//! Usage errors: what `shoal` prints and returns when clap refuses the
//! command line, before anything is sent to a daemon.
//!
//! Docker's CLI exits 125 when the client itself refuses a command (an
//! unknown flag, a missing argument) and 1 when the daemon refuses it; shoal
//! does the same, so scripts can tell "never sent" from "refused".

/// Exit code of a command line the client refused (Docker's).
pub const EXIT_CODE: u8 = 125;

/// The text after `Error: ` for a clap error, given the process's arguments.
///
/// clap reads `-bad-image` as the short flags `-b -a -d …` and names only
/// `-b`, whose tip (`use '-- -b'`) would mislead; the whole word is named
/// instead, as Docker's "unknown shorthand flag: 'b' in -bad-image" does.
pub fn error_text(error: &clap::Error, argv: &[String]) -> String {
    let text = error.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text).to_owned();
    let Some(short) = unknown_short(error) else {
        return text;
    };
    let Some(word) = cluster_holding(argv, short) else {
        return text;
    };
    text.replacen(
        &format!("'-{short}' found"),
        &format!("'-{short}' found in '{word}'"),
        1,
    )
    .replacen(
        &format!("to pass '-{short}' as a value, use '-- -{short}'"),
        &format!("to pass '{word}' as a value, use '-- {word}'"),
        1,
    )
}

/// The letter of an unknown short flag clap stopped at, if that is the error.
fn unknown_short(error: &clap::Error) -> Option<char> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let mut chars = arg.strip_prefix('-')?.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c != '-' => Some(c),
        _ => None,
    }
}

/// The first word of several short flags (`-bad-image`) that holds `short`,
/// before any `--` (after it nothing is a flag).
fn cluster_holding(argv: &[String], short: char) -> Option<&str> {
    argv.iter()
        .skip(1)
        .take_while(|word| *word != "--")
        .map(String::as_str)
        .find(|word| {
            !word.starts_with("--")
                && word.len() > 2
                && word
                    .strip_prefix('-')
                    .is_some_and(|flags| flags.contains(short))
        })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::Cli;

    fn refused(line: &str) -> String {
        let argv: Vec<String> = line.split(' ').map(str::to_owned).collect();
        let error = Cli::try_parse_from(&argv).expect_err(line);
        error_text(&error, &argv)
    }

    #[test]
    fn an_unknown_flag_before_the_image_is_refused_with_a_suggestion() {
        let text = refused("shoal service create -d --replicass 3 --name web busybox");
        assert!(
            text.starts_with("unexpected argument '--replicass' found"),
            "{text}"
        );
        assert!(
            text.contains("a similar argument exists: '--replicas'"),
            "{text}"
        );
        let text = refused("shoal service create -d --publsh 80:80 busybox");
        assert!(
            text.starts_with("unexpected argument '--publsh' found"),
            "{text}"
        );
    }

    #[test]
    fn a_word_of_short_flags_is_named_whole() {
        let text = refused("shoal service create -d -bad-image");
        assert!(
            text.starts_with("unexpected argument '-b' found in '-bad-image'"),
            "{text}"
        );
        assert!(text.contains("use '-- -bad-image'"), "{text}");
        assert!(!text.contains("'-- -b'"), "{text}");
        let text = refused("shoal node ls -qx");
        assert!(
            text.starts_with("unexpected argument '-x' found in '-qx'"),
            "{text}"
        );
    }

    #[test]
    fn after_the_image_every_word_is_the_commands() {
        let cli = Cli::try_parse_from([
            "shoal", "service", "create", "-d", "busybox", "sleep", "--bogus", "-x",
        ])
        .unwrap();
        let crate::args::Command::Service(crate::args::ServiceCommand::Create(args)) = cli.command
        else {
            panic!("not a create");
        };
        assert!(args.wait.detach);
        assert_eq!(args.command, ["busybox", "sleep", "--bogus", "-x"]);
        // `--` still ends the flags, so an odd first word can be passed on.
        let cli = Cli::try_parse_from(["shoal", "service", "create", "--", "-bad-image"]).unwrap();
        let crate::args::Command::Service(crate::args::ServiceCommand::Create(args)) = cli.command
        else {
            panic!("not a create");
        };
        assert_eq!(args.command, ["-bad-image"]);
    }

    #[test]
    fn other_errors_pass_through() {
        let text = refused("shoal service bogus");
        assert!(
            text.starts_with("unrecognized subcommand 'bogus'"),
            "{text}"
        );
    }
}
