//! Keyset cursors: the sort key of the last row of a page (a time and an id), opaque to the
//! client. A page after a cursor is the same however many rows arrive meanwhile.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

use super::ApiError;

pub fn encode(at: DateTime<Utc>, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{id}", at.timestamp_micros()))
}

pub fn decode(cursor: &str) -> Result<(DateTime<Utc>, String), ApiError> {
    let bad = || ApiError::BadRequest("the cursor is not one this API gave out".to_owned());
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (micros, id) = raw.split_once('.').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, id.to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cursor_comes_back_as_it_went_and_junk_is_refused() {
        let at = chrono::DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("time");
        let cursor = super::encode(at, "evt_1.x");
        assert_eq!(
            super::decode(&cursor).expect("decodes"),
            (at, "evt_1.x".to_owned())
        );
        assert!(super::decode("not a cursor!").is_err());
        assert!(super::decode("bm8tZG90").is_err());
    }
}
