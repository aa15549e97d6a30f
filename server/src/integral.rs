//! Integer fields of request bodies that accept any integral JSON number:
//! JSON Schema's `integer` admits `1641.0` as it admits `1641`, and a
//! client that builds numbers as floats (JavaScript, many JSON encoders)
//! sends the former. A fractional number is still refused.

use serde::{Deserialize, Deserializer, de::Error};

/// The largest float below 2^63, so that the cast cannot saturate.
const I64_BOUND: f64 = 9_223_372_036_854_775_808.0;

fn to_i64<E: Error>(n: &serde_json::Number) -> Result<i64, E> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && (-I64_BOUND..I64_BOUND).contains(&f) => Ok(f as i64),
        _ => Err(E::custom(format!("{n} is not an integer in range"))),
    }
}

/// `Option<i64>` from an integral number, or null/absent.
pub fn option_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?
        .map(|n| to_i64(&n))
        .transpose()
}

/// `u64` from an integral number that is not negative.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(u) = n.as_u64() {
        return Ok(u);
    }
    let i = to_i64::<D::Error>(&n)?;
    u64::try_from(i).map_err(|_| D::Error::custom(format!("{n} is negative")))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::option_i64")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "super::u64")]
        u: u64,
    }

    fn parse(json: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn integral_floats_are_integers_and_fractions_are_not() {
        assert_eq!(parse(r#"{"n": 1641.0}"#).expect("float").n, Some(1641));
        assert_eq!(parse(r#"{"n": -3}"#).expect("int").n, Some(-3));
        assert_eq!(parse(r#"{"n": null}"#).expect("null").n, None);
        assert_eq!(parse("{}").expect("absent").n, None);
        assert!(parse(r#"{"n": 1.5}"#).is_err());
        assert!(parse(r#"{"n": 1e300}"#).is_err());
        assert!(parse(r#"{"n": "3"}"#).is_err());
        assert_eq!(parse(r#"{"u": 7.0}"#).expect("float").u, 7);
        assert_eq!(
            parse(r#"{"u": 18446744073709551615}"#).expect("max").u,
            u64::MAX
        );
        assert!(parse(r#"{"u": -1}"#).is_err());
        assert!(parse(r#"{"u": -1.0}"#).is_err());
    }
}
