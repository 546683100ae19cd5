//! Path parameters as the client meant them: warp hands a segment over raw, and clients encode
//! characters such as `:` (the console's `encodeURIComponent`, Python's `quote`), so
//! `/v1/messages/b%3A1000-1` names the message `b:1000-1`.

use super::errors::HttpError;

/// Decodes `%XX` escapes of one path segment (`+` stays a plus: that is a form's rule, not a
/// path's). Not UTF-8 once decoded, or a broken escape: 400.
pub fn decode_segment(raw: &str) -> Result<String, HttpError> {
    let raw = raw.as_bytes();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let byte = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    HttpError::BadRequest("invalid percent-encoding in the path".into())
                })?;
            bytes.push(byte);
            i += 3;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(bytes)
        .map_err(|_| HttpError::BadRequest("the path is not UTF-8 once decoded".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_decoded_and_plus_stays() {
        assert_eq!(decode_segment("b%3A1000-1").unwrap(), "b:1000-1");
        assert_eq!(decode_segment("a+b").unwrap(), "a+b");
        assert_eq!(decode_segment("plain").unwrap(), "plain");
        assert!(decode_segment("bad%3").is_err());
        assert!(decode_segment("bad%zz").is_err());
        assert!(decode_segment("%ff").is_err());
    }
}
