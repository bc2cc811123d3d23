//! `Debug` for `SecretSpec`, written by hand so that a secret's data never
//! reaches a log line or a panic message: `{:?}` of a spec, of a `Secret`,
//! of a create request or of a node's assignments shows the data's length,
//! never its bytes (prost's derived Debug would print them; `build.rs`
//! turns it off for this one type).

use std::fmt;

use crate::v1::SecretSpec;

impl fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSpec")
            .field("name", &self.name)
            .field("labels", &self.labels)
            .field(
                "data",
                &format_args!("<{} bytes redacted>", self.data.len()),
            )
            .field("driver", &self.driver)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::v1::{AssignmentsMessage, Secret, SecretSpec};

    #[test]
    fn a_secrets_data_never_appears_in_debug_output() {
        let spec = SecretSpec {
            name: "db_password".into(),
            data: b"hunter2-very-secret".to_vec(),
            ..Default::default()
        };
        let secret = Secret {
            id: "s1".into(),
            spec: Some(spec),
            ..Default::default()
        };
        let assignments = AssignmentsMessage {
            secrets: vec![secret.clone()],
            ..Default::default()
        };
        for text in [format!("{secret:?}"), format!("{assignments:#?}")] {
            assert!(text.contains("db_password"), "{text}");
            assert!(text.contains("<19 bytes redacted>"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
            // Nor as the bytes prost would have listed.
            assert!(!text.contains("104, 117, 110"), "{text}");
        }
    }
}
