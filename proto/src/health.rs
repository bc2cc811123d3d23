//! A health check's `test`, in Docker's form, read in one place: the
//! manager refuses a malformed test when it accepts a spec, and the agent
//! runs what the same reading says, so the two can never disagree.

use std::fmt;

/// What a `HealthCheck.test` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthTest<'a> {
    /// Empty: no test of its own (a container keeps its image's HEALTHCHECK).
    Inherit,
    /// `["NONE"]`: no health check at all, not even the image's.
    Disabled,
    /// `["CMD", program, args…]`: the program and its arguments.
    Exec(&'a [String]),
    /// `["CMD-SHELL", "command line"]`: a line for `/bin/sh -c`.
    Shell(&'a str),
}

/// A test that is none of the forms above, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTest {
    pub test: Vec<String>,
    pub why: &'static str,
}

impl fmt::Display for InvalidTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid health check test {:?}: {}; use [\"CMD\", program, args…], \
             [\"CMD-SHELL\", command line] or [\"NONE\"]",
            self.test, self.why
        )
    }
}

impl std::error::Error for InvalidTest {}

/// Reads a health check's test.
pub fn parse_test(test: &[String]) -> Result<HealthTest<'_>, InvalidTest> {
    let invalid = |why| InvalidTest {
        test: test.to_vec(),
        why,
    };
    match test.split_first() {
        None => Ok(HealthTest::Inherit),
        Some((kind, rest)) if kind == "NONE" => {
            if rest.is_empty() {
                Ok(HealthTest::Disabled)
            } else {
                Err(invalid("NONE takes nothing after it"))
            }
        }
        Some((kind, rest)) if kind == "CMD" => match rest.first() {
            Some(program) if !program.trim().is_empty() => Ok(HealthTest::Exec(rest)),
            _ => Err(invalid("CMD names no program")),
        },
        Some((kind, rest)) if kind == "CMD-SHELL" => match rest {
            [line] if !line.trim().is_empty() => Ok(HealthTest::Shell(line)),
            [_] | [] => Err(invalid("CMD-SHELL has no command line")),
            _ => Err(invalid("CMD-SHELL takes one command line")),
        },
        Some(_) => Err(invalid("the first element is not CMD, CMD-SHELL or NONE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn reads_dockers_forms_and_says_what_is_wrong() {
        assert_eq!(parse_test(&[]), Ok(HealthTest::Inherit));
        assert_eq!(parse_test(&test(&["NONE"])), Ok(HealthTest::Disabled));
        let exec = test(&["CMD", "curl", "-f"]);
        assert_eq!(parse_test(&exec), Ok(HealthTest::Exec(&exec[1..])));
        assert_eq!(
            parse_test(&test(&["CMD-SHELL", "test -f ready"])),
            Ok(HealthTest::Shell("test -f ready"))
        );
        for (bad, why) in [
            (&["CMD"][..], "CMD names no program"),
            (&["CMD", " "], "CMD names no program"),
            (&["CMD-SHELL"], "CMD-SHELL has no command line"),
            (&["CMD-SHELL", " "], "CMD-SHELL has no command line"),
            (&["CMD-SHELL", "a", "b"], "CMD-SHELL takes one command line"),
            (&["NONE", "x"], "NONE takes nothing after it"),
            (
                &["curl", "-f"],
                "the first element is not CMD, CMD-SHELL or NONE",
            ),
        ] {
            let e = parse_test(&test(bad)).unwrap_err();
            assert_eq!(e.why, why, "{bad:?}");
            assert!(e.to_string().starts_with("invalid health check test"));
        }
    }
}
