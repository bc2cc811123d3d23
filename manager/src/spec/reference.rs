//! What a task may name as the thing it runs: a container image reference
//! (Docker's grammar) or a process's program (a path or a name, never a flag).
//!
//! Both checks exist for one failure: a mistyped flag that reached the
//! manager as the image or program (`--replicass`, `-bad-image`) must be
//! refused, not become a service the orchestrator keeps failing to run.
//! Pure functions; [`super::validate_service_spec`] calls them for every
//! spec, whichever client sent it.

use std::ops::Range;

use container_image_dist_ref::err::Kind;
use container_image_dist_ref::ImgRef;

/// What a valid reference looks like, appended to every refusal.
pub const REFERENCE_FORM: &str = "expected [REGISTRY[:PORT]/]NAME[:TAG][@DIGEST] with a \
     lowercase NAME, e.g. nginx, nginx:1.25, localhost/app or \
     registry:5000/team/app@sha256:<64 hex digits>";

/// Longer than any reference Docker accepts (name 255, tag 128, digest a few
/// hundred): refused before parsing, so the parser's 16-bit offsets hold.
const MAX_REFERENCE_LEN: usize = 2048;

/// Docker Hub's name, put in front of a reference without a registry so that
/// the whole reference parses as a path, as Docker normalizes it.
const DEFAULT_REGISTRY: &str = "docker.io/";

/// Checks `image` against the distribution reference grammar with Docker's
/// normalization: the first component is a registry only if it has a '.' or a
/// ':' or is `localhost`; otherwise it is part of the repository name, which
/// must be lowercase. So `UPPER/case` is refused. (distribution/reference
/// has lately read an uppercase first component as a registry host; shoal
/// keeps the older rule, because on a cluster an uppercase first word is far
/// likelier a typo than a registry, and a refusal is cheap to correct.)
pub fn validate_image_reference(image: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "invalid image reference {image:?}: {why}; {REFERENCE_FORM}"
        ))
    };
    if image.is_empty() {
        return refuse("it is empty");
    }
    if image.len() > MAX_REFERENCE_LEN {
        return refuse(&format!("longer than {MAX_REFERENCE_LEN} bytes"));
    }
    if image.starts_with('-') {
        return refuse(
            "an image cannot start with '-' (a mistyped flag? flags go before the image)",
        );
    }
    if image.len() == 64
        && image
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return refuse("a 64-digit hexadecimal string is an image ID, not a reference");
    }
    let first = image.split_once('/').map(|(first, _)| first);
    let has_registry = first.is_some_and(|f| f.contains(['.', ':']) || f == "localhost");
    let full = if has_registry {
        image.to_owned()
    } else {
        format!("{DEFAULT_REGISTRY}{image}")
    };
    if let Err(e) = ImgRef::new(&full) {
        let path_start = if has_registry {
            image.find('/').map_or(0, |i| i + 1)
        } else {
            0
        };
        let path_end = image[path_start..]
            .find([':', '@'])
            .map_or(image.len(), |i| path_start + i);
        return refuse(&reason(image, path_start..path_end, e.kind()));
    }
    Ok(())
}

/// Why the grammar refused `image`, in words a person can act on; `path` is
/// where the repository name is. The parser's own offsets are not used:
/// after a registry they do not point at the offending character.
fn reason(image: &str, path: Range<usize>, kind: Kind) -> String {
    let at = |i: usize, c: char| format!("{c:?} at position {}", image[..i].chars().count() + 1);
    if image.contains(char::is_whitespace) {
        return "it contains whitespace".into();
    }
    let name = &image[path.clone()];
    if let Some((i, c)) = name.char_indices().find(|(_, c)| c.is_ascii_uppercase()) {
        return format!(
            "repository names must be lowercase ({})",
            at(path.start + i, c)
        );
    }
    let outside_alphabet = image.char_indices().find(|(_, c)| {
        !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@' | '[' | ']'))
    });
    if let Some((i, c)) = outside_alphabet {
        return format!("unexpected {}", at(i, c));
    }
    match kind {
        Kind::NameTooLong | Kind::HostOrPathTooLong | Kind::PathTooLong | Kind::HostTooLong => {
            "the name is longer than 255 characters".into()
        }
        Kind::TagTooLong => "the tag is longer than 128 characters".into(),
        Kind::TagMissing | Kind::PortOrTagMissing | Kind::PortMissing => {
            "nothing follows ':'".into()
        }
        Kind::TagInvalidChar | Kind::PortOrTagInvalidChar => "a tag holds up to 128 letters, \
             digits, '_', '.' and '-', and does not start with '.' or '-'"
            .into(),
        Kind::AlgorithmMissing
        | Kind::InvalidOciAlgorithm
        | Kind::AlgorithmInvalidNumericPrefix
        | Kind::OciRegisteredAlgorithmWrongDigestLength
        | Kind::AlgorithmInvalidChar
        | Kind::AlgorithmTooLong
        | Kind::EncodedMissing
        | Kind::EncodedInvalidChar
        | Kind::EncodedNonLowerHex
        | Kind::OciRegisteredDigestInvalidChar
        | Kind::EncodingTooShort
        | Kind::EncodingTooLong => {
            "a digest is ALGORITHM:HEX, e.g. sha256:<64 lowercase hex digits>".into()
        }
        Kind::HostMissing
        | Kind::HostComponentInvalidEnd
        | Kind::HostInvalidChar
        | Kind::Ipv6InvalidChar
        | Kind::Ipv6TooLong
        | Kind::Ipv6BadColon
        | Kind::Ipv6TooManyHexDigits
        | Kind::Ipv6TooManyGroups
        | Kind::Ipv6TooFewGroups
        | Kind::Ipv6MissingClosingBracket
        | Kind::Port
        | Kind::PortInvalidChar
        | Kind::PortTooLong => "invalid registry host or port".into(),
        _ => "each part of the name starts and ends with a lowercase letter or \
              digit; parts are joined by '/', and words by '.', '_', '__' or '-'"
            .into(),
    }
}

/// A process task's program: a path or a name to look up in `PATH`. Refuses
/// what is surely not one: a flag (a mistyped shoal flag, taken for the
/// program), control characters, and a bare name with whitespace (a whole
/// command line quoted as one word).
pub fn validate_program(program: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "invalid program {program:?}: {why}; expected a path or a program name, \
             e.g. shoal service create --runtime process sleep 600"
        ))
    };
    if program.trim().is_empty() {
        return refuse("it is empty");
    }
    if program.starts_with('-') {
        return refuse(
            "a program cannot start with '-' (a mistyped flag? flags go before the command)",
        );
    }
    if program.chars().any(char::is_control) {
        return refuse("it contains control characters");
    }
    if program.trim() != program {
        return refuse("it starts or ends with whitespace");
    }
    if !program.contains('/') && program.contains(char::is_whitespace) {
        return refuse(
            "a program name cannot contain spaces (pass the arguments as separate words, \
             or run sh -c '…')",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SHA256: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_dockers_examples() {
        let digested = format!("registry:5000/team/app@{SHA256}");
        let tagged_digested = format!("nginx:1.25@{SHA256}");
        for image in [
            "nginx",
            "nginx:1.25",
            "nginx:latest",
            "library/nginx",
            "docker.io/library/nginx:1.27",
            "localhost/x",
            "localhost:5000/x:tag",
            "registry:5000/team/app",
            digested.as_str(),
            tagged_digested.as_str(),
            "ghcr.io/owner/repo-name_x.y:v1.0.0-rc1",
            "Registry.Example.com/app",
            "shoal-test/busybox:1",
            "a/b/c/d",
            "nginx:UPPER_tag",
            "[::1]:5000/app",
        ] {
            assert_eq!(validate_image_reference(image), Ok(()), "{image}");
        }
    }

    #[test]
    fn refuses_flags_uppercase_and_spaces_saying_what_is_valid() {
        let cases = [
            ("--replicass", "cannot start with '-'"),
            ("-bad-image", "cannot start with '-'"),
            ("UPPER/case", "must be lowercase ('U' at position 1)"),
            ("Nginx", "must be lowercase"),
            ("team/App", "must be lowercase ('A' at position 6)"),
            ("a b", "whitespace"),
            ("", "empty"),
            ("nginx:", "nothing follows ':'"),
            ("nginx@sha256:abc", "a digest is ALGORITHM:HEX"),
            (
                "nginx@sha256:0123456789abcdef0123456789abcdef",
                "a digest is ALGORITHM:HEX",
            ),
            ("nginx@", "a digest is"),
            ("ngi%nx", "unexpected '%' at position 4"),
            ("localhost:5000/a%b", "unexpected '%' at position 17"),
            (
                "localhost:5000/App",
                "must be lowercase ('A' at position 16)",
            ),
            ("nginx..x", "each part of the name"),
            ("nginx/", "each part of the name"),
            ("/nginx", "each part of the name"),
            ("nginx:1.25:x", "a tag holds"),
            ("nginx:-x", "a tag holds"),
            ("bad_host!:5000/x", "unexpected '!'"),
            (
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "image ID",
            ),
        ];
        for (image, why) in cases {
            let err = validate_image_reference(image).unwrap_err();
            assert!(err.contains(why), "{image}: {err}");
            assert!(err.contains(&format!("{image:?}")), "{err}");
            assert!(err.ends_with(REFERENCE_FORM), "{err}");
        }
        let long = format!("{}:1", "a".repeat(300));
        assert!(validate_image_reference(&long)
            .unwrap_err()
            .contains("longer than 255"));
        let huge = "a".repeat(100_000);
        assert!(validate_image_reference(&huge)
            .unwrap_err()
            .contains("longer than 2048 bytes"));
    }

    #[test]
    fn programs_are_paths_or_names_never_flags() {
        for program in [
            "sleep",
            "/bin/sleep",
            "./run.sh",
            "/opt/my app/bin/x",
            "node20",
        ] {
            assert_eq!(validate_program(program), Ok(()), "{program}");
        }
        for (program, why) in [
            ("--autoscale-min", "cannot start with '-'"),
            ("-x", "cannot start with '-'"),
            ("sleep 999", "cannot contain spaces"),
            (" sleep", "whitespace"),
            ("sl\neep", "control characters"),
            ("", "empty"),
        ] {
            let err = validate_program(program).unwrap_err();
            assert!(err.contains(why), "{program:?}: {err}");
        }
    }

    proptest! {
        /// The parser is a third-party port with offsets of its own: any
        /// input, however odd, gets an answer and never a panic.
        #[test]
        fn never_panics(image in "\\PC{0,80}") {
            let _ = validate_image_reference(&image);
            let _ = validate_program(&image);
        }

        #[test]
        fn never_panics_on_reference_like_input(
            image in "[a-zA-Z0-9./:@_+\\-\\[\\]]{0,300}"
        ) {
            let _ = validate_image_reference(&image);
        }
    }
}
