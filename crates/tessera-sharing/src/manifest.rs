//! Encryption manifests: which JSON paths of an entity type are sensitive.
//!
//! A path is a `.`-separated list of field names; a name followed by `[]` walks every element of an array,
//! one followed by `{}` every value of a map (`contacts[].phone`, `labels{}.text`, `address.street`).
//! The last segment names the field that is moved, whole, into the sealed part; `[]` and `{}` may not end a path
//! (list the field itself to encrypt it whole). Splitting removes every listed field from the public document;
//! merging puts them back, so `merge(split(d)) == d` for every document.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// A field of an object.
    Field(String),
    /// A field holding an array: the rest of the path applies to each element.
    EachElement(String),
    /// A field holding a map: the rest of the path applies to each value.
    EachValue(String),
}

/// A parsed manifest path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses `text`.
    ///
    /// # Errors
    /// [`Error::Manifest`] for an empty path or segment, a name with `.`, `[`, `]`, `{` or `}` inside it,
    /// or a path ending in `[]` or `{}`.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason| Error::Manifest {
            path: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("empty path"));
        }
        let segments: Vec<&str> = text.split('.').collect();
        let mut steps = Vec::with_capacity(segments.len());
        for (index, segment) in segments.iter().enumerate() {
            let last = index + 1 == segments.len();
            let (name, step): (&str, fn(String) -> Step) =
                if let Some(name) = segment.strip_suffix("[]") {
                    (name, Step::EachElement)
                } else if let Some(name) = segment.strip_suffix("{}") {
                    (name, Step::EachValue)
                } else {
                    (segment, Step::Field)
                };
            if name.is_empty() || name.contains(['[', ']', '{', '}']) {
                return Err(invalid(
                    "each segment is a non-empty field name, optionally followed by [] or {}",
                ));
            }
            let step = step(name.to_owned());
            if last && !matches!(step, Step::Field(_)) {
                return Err(invalid(
                    "a path cannot end in [] or {}; list the field itself to encrypt it whole",
                ));
            }
            steps.push(step);
        }
        Ok(Self {
            text: text.to_owned(),
            steps,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for JsonPath {
    type Error = Error;

    fn try_from(text: String) -> Result<Self> {
        Self::parse(&text)
    }
}

impl From<JsonPath> for String {
    fn from(path: JsonPath) -> Self {
        path.text
    }
}

/// The sensitive paths of one entity type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionManifest {
    paths: Vec<JsonPath>,
}

impl EncryptionManifest {
    /// A manifest of these paths.
    ///
    /// # Errors
    /// [`Error::Manifest`] if a path is malformed.
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let paths = paths
            .into_iter()
            .map(JsonPath::parse)
            .collect::<Result<_>>()?;
        Ok(Self { paths })
    }

    /// The paths.
    pub fn paths(&self) -> &[JsonPath] {
        &self.paths
    }

    /// Checks that every path names a field of `document`, so that a misspelt path cannot leave the field it was
    /// meant to protect in clear.
    ///
    /// A path matches when its walk reaches at least one field it would move. A walk through an empty array or map
    /// matches (there is nothing to protect in it); a walk through a missing field, a value of another shape, or an
    /// array or map none of whose elements has the field, does not.
    ///
    /// # Errors
    /// [`Error::Manifest`] naming the first path that matches nothing.
    pub fn check(&self, document: &Map<String, Value>) -> Result<()> {
        match self.unmatched(document).next() {
            Some(path) => Err(Error::Manifest {
                path: path.text.clone(),
                reason: "it matches no field of the record, so the field it was meant to encrypt would be stored \
                         in clear; correct the path (or remove it)",
            }),
            None => Ok(()),
        }
    }

    /// The paths that name no field of `document` (see [`EncryptionManifest::check`]), in manifest order.
    pub fn unmatched<'a>(
        &'a self,
        document: &'a Map<String, Value>,
    ) -> impl Iterator<Item = &'a JsonPath> + 'a {
        self.paths
            .iter()
            .filter(move |path| !matches_object(document, &path.steps))
    }

    /// Splits `document` into its public part and its sensitive part: every listed field is moved out of the
    /// public part, keeping the structure that leads to it.
    pub fn split(
        &self,
        mut document: Map<String, Value>,
    ) -> (Map<String, Value>, Map<String, Value>) {
        let mut sensitive = Map::new();
        for path in &self.paths {
            if let Some(Value::Object(extracted)) = extract_from_object(&mut document, &path.steps)
            {
                merge_objects(&mut sensitive, extracted);
            }
        }
        (document, sensitive)
    }
}

/// Puts the sensitive fields back into the public document.
pub fn merge(public: &mut Map<String, Value>, sensitive: Map<String, Value>) {
    merge_objects(public, sensitive);
}

/// Whether the path reaches at least one field of `object` (or walks through an empty array or map).
fn matches_object(object: &Map<String, Value>, steps: &[Step]) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        return false;
    };
    match (step, object.get(step_name(step))) {
        (Step::Field(_), Some(_)) if rest.is_empty() => true,
        (Step::Field(_), Some(Value::Object(inner))) => matches_object(inner, rest),
        (Step::EachElement(_), Some(Value::Array(elements))) => matches_any(elements.iter(), rest),
        (Step::EachValue(_), Some(Value::Object(values))) => matches_any(values.values(), rest),
        _ => false,
    }
}

/// Whether the rest of a path matches in one of `values`, or `values` is empty.
fn matches_any<'a>(mut values: impl ExactSizeIterator<Item = &'a Value>, rest: &[Step]) -> bool {
    values.len() == 0
        || values.any(|value| matches!(value, Value::Object(inner) if matches_object(inner, rest)))
}

fn step_name(step: &Step) -> &str {
    match step {
        Step::Field(name) | Step::EachElement(name) | Step::EachValue(name) => name,
    }
}

/// Removes the path from `object` and returns what was removed, wrapped in the structure leading to it.
fn extract_from_object(object: &mut Map<String, Value>, steps: &[Step]) -> Option<Value> {
    let (step, rest) = steps.split_first()?;
    let extracted = match step {
        Step::Field(name) if rest.is_empty() => object.remove(name)?,
        Step::Field(name) => match object.get_mut(name)? {
            Value::Object(inner) => extract_from_object(inner, rest)?,
            _ => return None,
        },
        Step::EachElement(name) => {
            let Value::Array(elements) = object.get_mut(name)? else {
                return None;
            };
            let parts: Vec<Value> = elements
                .iter_mut()
                .map(|element| match element {
                    Value::Object(inner) => extract_from_object(inner, rest).unwrap_or(Value::Null),
                    _ => Value::Null,
                })
                .collect();
            if parts.iter().all(Value::is_null) {
                return None;
            }
            Value::Array(parts)
        }
        Step::EachValue(name) => {
            let Value::Object(values) = object.get_mut(name)? else {
                return None;
            };
            let parts: Map<String, Value> = values
                .iter_mut()
                .filter_map(|(key, value)| match value {
                    Value::Object(inner) => {
                        extract_from_object(inner, rest).map(|part| (key.clone(), part))
                    }
                    _ => None,
                })
                .collect();
            if parts.is_empty() {
                return None;
            }
            Value::Object(parts)
        }
    };
    let mut wrapper = Map::new();
    wrapper.insert(step_name(step).to_owned(), extracted);
    Some(Value::Object(wrapper))
}

/// Deep merge: objects field by field, arrays element by element (a `null` in `from` leaves the element alone),
/// anything else replaced.
fn merge_objects(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match into.get_mut(&key) {
            Some(existing) => merge_values(existing, value),
            None => {
                into.insert(key, value);
            }
        }
    }
}

fn merge_values(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => merge_objects(into, from),
        (Value::Array(into), Value::Array(from)) => {
            for (index, part) in from.into_iter().enumerate() {
                if part.is_null() {
                    continue;
                }
                match into.get_mut(index) {
                    Some(existing) => merge_values(existing, part),
                    None => into.push(part),
                }
            }
        }
        (into, from) => *into = from,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test documents are objects"),
        }
    }

    #[test]
    fn splits_nested_arrays_and_maps_and_merges_back() {
        let manifest = EncryptionManifest::new([
            "note",
            "address.street",
            "contacts[].phone",
            "labels{}.text",
            "absent.field",
        ])
        .unwrap();
        let document = object(json!({
            "note": "allergic to penicillin",
            "address": {"street": "1 Main St", "city": "Brussels"},
            "contacts": [{"name": "A", "phone": "1"}, {"name": "B"}, 7],
            "labels": {"x": {"text": "secret", "color": "red"}, "y": "plain"},
            "visible": true
        }));
        let (public, sensitive) = manifest.split(document.clone());
        assert_eq!(
            Value::Object(public.clone()),
            json!({
                "address": {"city": "Brussels"},
                "contacts": [{"name": "A"}, {"name": "B"}, 7],
                "labels": {"x": {"color": "red"}, "y": "plain"},
                "visible": true
            })
        );
        assert_eq!(
            Value::Object(sensitive.clone()),
            json!({
                "note": "allergic to penicillin",
                "address": {"street": "1 Main St"},
                "contacts": [{"phone": "1"}, null, null],
                "labels": {"x": {"text": "secret"}}
            })
        );
        let mut merged = public;
        merge(&mut merged, sensitive);
        assert_eq!(merged, document);
    }

    #[test]
    fn paths_that_match_nothing_are_named() {
        let manifest = EncryptionManifest::new([
            "note",
            "address.street",
            "contacts[].phone",
            "labels{}.text",
            "empty[].x",
            "none{}.x",
        ])
        .unwrap();
        let document = object(json!({
            "note": null,
            "address": {"street": "1 Main St"},
            "contacts": [7, {"phone": "1"}],
            "labels": {"x": {"text": "secret"}},
            "empty": [],
            "none": {}
        }));
        assert!(manifest.check(&document).is_ok());

        for (typo, document) in [
            ("txt", json!({"text": "MARKER"})),
            ("address.stret", json!({"address": {"street": "MARKER"}})),
            ("address.street", json!({"address": "MARKER"})),
            (
                "contacts[].phne",
                json!({"contacts": [{"phone": "MARKER"}]}),
            ),
            (
                "contacts[].phone",
                json!({"contacts": {"a": {"phone": "MARKER"}}}),
            ),
            ("contacts[].phone", json!({"contacts": [1, 2]})),
            ("labels{}.txt", json!({"labels": {"x": {"text": "MARKER"}}})),
        ] {
            let manifest = EncryptionManifest::new([typo]).unwrap();
            let document = object(document);
            let unmatched: Vec<&str> = manifest
                .unmatched(&document)
                .map(JsonPath::as_str)
                .collect();
            assert_eq!(unmatched, [typo]);
            let message = manifest.check(&document).unwrap_err().to_string();
            assert!(message.contains(&format!("`{typo}`")), "{message}");
            assert!(message.contains("in clear"), "{message}");
        }
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in ["", "a..b", "a[]", "a{}", "a.b[]", "a[b]", "[]", "a.{}"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
        assert!(JsonPath::parse("a[].b{}.c").is_ok());
    }
}
