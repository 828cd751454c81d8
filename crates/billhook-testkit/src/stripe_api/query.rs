//! A request's query string read the way Stripe reads form-encoded parameters — a scalar as
//! `name=value`, an array as repeated `name[]=…` or indexed `name[0]=…`, a hash entry as
//! `name[key]=…` — and the 400 Stripe answers when a parameter is wrong.

use serde_json::{Value, json};

/// The parameters of one request, in the order sent.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes a raw query string (without the `?`).
    pub fn parse(raw: &str) -> Self {
        Self {
            pairs: url::form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        }
    }

    /// Every key sent, once per occurrence.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(key, _)| key.as_str())
    }

    /// The last value sent for exactly `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_str())
    }

    /// The elements of array `name`, sent as `name[]` or `name[N]`, in the order sent.
    pub fn array(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(key, _)| array_name(key) == Some(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// `key` as an integer, when sent; anything else is Stripe's "Invalid integer".
    pub fn integer(&self, key: &str) -> Result<Option<i64>, ParamError> {
        self.get(key)
            .map(|value| {
                value
                    .parse()
                    .map_err(|_| ParamError::new(key, format!("Invalid integer: {value}")))
            })
            .transpose()
    }
}

/// The array's name when `key` is one of its elements (`name[]` or `name[N]`).
pub fn array_name(key: &str) -> Option<&str> {
    let (name, rest) = key.split_once('[')?;
    let index = rest.strip_suffix(']')?;
    index.bytes().all(|b| b.is_ascii_digit()).then_some(name)
}

/// A parameter Stripe would refuse; answered with 400 and Stripe's error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

impl ParamError {
    pub fn new(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: param.to_owned(),
            message: message.into(),
        }
    }

    /// `{"error":{"type":"invalid_request_error","message":…,"param":…}}`, as Stripe sends it.
    pub fn body(&self) -> Value {
        json!({ "error": {
            "type": "invalid_request_error",
            "message": self.message,
            "param": self.param,
        } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_come_repeated_or_indexed_and_are_decoded() {
        let query = Query::parse("types[]=a.b&types%5B%5D=c&types[0]=d&type=e&expand[]=x");
        assert_eq!(query.array("types"), ["a.b", "c", "d"]);
        assert_eq!(query.array("expand"), ["x"]);
        assert_eq!(query.get("type"), Some("e"));
        assert_eq!(query.get("types"), None);
    }

    #[test]
    fn a_hash_entry_is_not_an_array_element() {
        assert_eq!(array_name("created[gte]"), None);
        assert_eq!(array_name("types[12]"), Some("types"));
        assert_eq!(array_name("types"), None);
    }

    #[test]
    fn an_integer_parameter_that_is_not_one_is_refused_by_name() {
        let query = Query::parse("created[gt]=soon&limit=5");
        assert_eq!(query.integer("limit"), Ok(Some(5)));
        assert_eq!(query.integer("starting_after"), Ok(None));
        let error = query.integer("created[gt]").expect_err("not an integer");
        assert_eq!(error.param, "created[gt]");
    }
}
