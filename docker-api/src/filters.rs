//! The `filters` query parameter as the docker CLI encodes it, and the
//! matching rules list endpoints share.
//!
//! Docker sends a JSON object of filter names to sets, written as maps to
//! `true` (`{"label":{"com.docker.stack.namespace=demo":true}}`); clients of
//! API versions before 1.22 sent lists (`{"label":["a=b"]}`). Both decode.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::errors::ApiError;

/// Decoded filters: each name with its values (OR within a name, AND across).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, BTreeSet<String>>);

impl Filters {
    /// Decodes the `filters` parameter; absent or empty means no filter.
    pub fn parse(raw: Option<&str>) -> Result<Filters, ApiError> {
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return Ok(Filters::default());
        };
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filters {raw:?}: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(ApiError::bad_request(format!(
                "invalid filters {raw:?}: expected a JSON object of filter names"
            )));
        };
        let mut filters = BTreeMap::new();
        for (name, values) in map {
            let set: BTreeSet<String> = match values {
                serde_json::Value::Object(values) => values
                    .into_iter()
                    .filter(|(_, on)| on.as_bool() != Some(false))
                    .map(|(v, _)| v)
                    .collect(),
                serde_json::Value::Array(values) => values
                    .into_iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => Ok(s),
                        other => Err(ApiError::bad_request(format!(
                            "invalid filter {name}: value {other} is not a string"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter {name}: {other} is neither a list nor a map of values"
                    )))
                }
            };
            filters.insert(name, set);
        }
        Ok(Filters(filters))
    }

    /// Refuses filter names the endpoint does not know, as Docker does
    /// ("invalid filter 'x'"), instead of ignoring them.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(name) => Err(ApiError::bad_request(format!("invalid filter '{name}'"))),
            None => Ok(()),
        }
    }

    pub fn values(&self, name: &str) -> Option<&BTreeSet<String>> {
        self.0.get(name).filter(|v| !v.is_empty())
    }

    /// True when `name` is not filtered or `accept` holds for one value.
    pub fn any(&self, name: &str, accept: impl Fn(&str) -> bool) -> bool {
        self.values(name)
            .is_none_or(|vs| vs.iter().any(|v| accept(v)))
    }

    /// Docker's label rule: every `label` value must match, `KEY` by
    /// presence and `KEY=VALUE` exactly.
    pub fn labels_match(&self, labels: &HashMap<String, String>) -> bool {
        self.values("label")
            .is_none_or(|vs| vs.iter().all(|v| label_matches(v, labels)))
    }
}

/// One `label` filter value against a set of labels.
pub fn label_matches(filter: &str, labels: &HashMap<String, String>) -> bool {
    match filter.split_once('=') {
        Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
        None => labels.contains_key(filter),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_dockers_map_encoding() {
        let f = Filters::parse(Some(
            r#"{"label":{"com.docker.stack.namespace=demo":true},"name":{"web":true,"api":true}}"#,
        ))
        .unwrap();
        assert_eq!(
            f.values("label").unwrap().iter().collect::<Vec<_>>(),
            ["com.docker.stack.namespace=demo"]
        );
        assert_eq!(f.values("name").unwrap().len(), 2);
        assert!(f.values("id").is_none());
    }

    #[test]
    fn decodes_the_legacy_list_encoding() {
        let f = Filters::parse(Some(r#"{"service":["abc"]}"#)).unwrap();
        assert!(f.values("service").unwrap().contains("abc"));
    }

    #[test]
    fn empty_means_no_filter() {
        assert_eq!(Filters::parse(None).unwrap(), Filters::default());
        assert_eq!(Filters::parse(Some("")).unwrap(), Filters::default());
        assert!(Filters::parse(Some("{}")).unwrap().any("name", |_| false));
    }

    #[test]
    fn malformed_filters_are_refused() {
        for raw in ["{", "[1]", r#"{"label":3}"#, r#"{"label":[3]}"#] {
            let err = Filters::parse(Some(raw)).unwrap_err();
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST, "{raw}");
        }
    }

    #[test]
    fn unknown_filter_names_are_refused() {
        let f = Filters::parse(Some(r#"{"colour":{"red":true}}"#)).unwrap();
        assert!(f
            .only(&["name", "label"])
            .unwrap_err()
            .message
            .contains("colour"));
    }

    #[test]
    fn label_filters_match_by_key_or_key_and_value() {
        let labels: HashMap<String, String> =
            [("com.docker.stack.namespace".to_string(), "demo".to_string())].into();
        assert!(label_matches("com.docker.stack.namespace", &labels));
        assert!(label_matches("com.docker.stack.namespace=demo", &labels));
        assert!(!label_matches("com.docker.stack.namespace=other", &labels));
        assert!(!label_matches("other", &labels));
        let f = Filters::parse(Some(
            r#"{"label":{"com.docker.stack.namespace=demo":true,"missing":true}}"#,
        ))
        .unwrap();
        assert!(!f.labels_match(&labels), "every label filter must match");
    }
}
