//! JSON written straight into a response body: for the pages whose columns
//! are stored ready to show (ADR 0016), a row becomes bytes of the answer
//! without a `serde_json::Value` in between.
//!
//! The output is byte for byte what serialising the same `Value` would
//! give: compact, strings escaped by serde_json itself, and the callers
//! write object keys in sorted order (serde_json's maps are sorted, so
//! every JSON object of the API is). JSON columns (`tags`, previews,
//! metrics) are copied as stored: the projectors write them with
//! serde_json, compact and with sorted keys (`projections/migrations`).

use crate::error::QueryError;

/// A JSON text being written.
#[derive(Debug, Default)]
pub struct JsonOut {
    buf: Vec<u8>,
}

impl JsonOut {
    /// An empty text with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// Appends JSON text as it is (punctuation, keys, stored JSON).
    pub fn raw(&mut self, text: &str) -> &mut Self {
        self.buf.extend_from_slice(text.as_bytes());
        self
    }

    /// Appends a JSON string.
    pub fn str(&mut self, value: &str) -> Result<&mut Self, QueryError> {
        serde_json::to_writer(&mut self.buf, value)
            .map_err(|e| QueryError::Corrupt(format!("rendering a string: {e}")))?;
        Ok(self)
    }

    /// Appends a JSON string, or `null`.
    pub fn opt_str(&mut self, value: Option<&str>) -> Result<&mut Self, QueryError> {
        match value {
            Some(v) => self.str(v),
            None => Ok(self.raw("null")),
        }
    }

    /// Appends an integer.
    pub fn int(&mut self, value: i64) -> &mut Self {
        self.raw(&value.to_string())
    }

    /// Appends `true` or `false`.
    pub fn bool(&mut self, value: bool) -> &mut Self {
        self.raw(if value { "true" } else { "false" })
    }

    /// Appends stored JSON text, or `fallback` when there is none.
    pub fn opt_raw(&mut self, value: Option<&str>, fallback: &str) -> &mut Self {
        self.raw(value.unwrap_or(fallback))
    }

    /// The text.
    pub fn finish(self) -> String {
        // Only `&str`s and serde_json's own output were appended.
        String::from_utf8(self.buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn output_is_what_serde_json_writes_for_the_same_value() {
        let text = "a \"quoted\" \\ line\nwith\ttabs, \u{1}, \u{7f} and ünïcode";
        let mut out = JsonOut::default();
        out.raw("{\"b\":")
            .bool(true)
            .raw(",\"k\":")
            .str(text)
            .unwrap();
        out.raw(",\"n\":")
            .int(-42)
            .raw(",\"t\":")
            .opt_raw(None, "[]");
        out.raw(",\"z\":").opt_str(None).unwrap().raw("}");
        let expected = json!({"k": text, "n": -42, "b": true, "t": [], "z": null});
        assert_eq!(out.finish(), expected.to_string());
    }
}
