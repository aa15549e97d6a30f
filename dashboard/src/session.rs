//! The dashboard's login session: a cookie the server signs (HMAC-SHA256),
//! holding the API key's name, its scope, an expiry and a random nonce; and
//! the CSRF token every state-changing form carries, derived from the
//! nonce, so it is different for each session and useless without it.
//!
//! A session is bound to its key: it holds the key's id, an HMAC of the
//! key's full SHA-256 under the secret (so the cookie shows nothing of the
//! hash, and whoever learns the secret still needs the whole hash to forge
//! one), and each request re-checks that a key of that name and id still
//! exists with that scope, so removing or rotating a key ends its
//! sessions. Logging out revokes the session's nonce in Redis for the rest
//! of its life, so a copied cookie dies with it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "sluice_session";

/// How long a session lasts, seconds.
pub const LIFETIME_SECS: i64 = 12 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// What a signed-in operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Look only: every action is hidden and refused.
    Read,
    /// Everything.
    Admin,
}

/// A signed-in operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The API key's name (`anonymous` when the API has no keys).
    #[serde(rename = "n")]
    pub name: String,
    /// What the key may do.
    #[serde(rename = "s")]
    pub access: Access,
    /// The key's id ([`SessionKeys::key_id`]; empty when the API has no
    /// keys; a cookie from before it is refused).
    #[serde(rename = "h", default)]
    pub key: String,
    /// Expiry, seconds since the Unix epoch.
    #[serde(rename = "e")]
    pub expires: i64,
    /// Random, per session: what the CSRF token is derived from.
    #[serde(rename = "i")]
    pub nonce: String,
}

/// Signs and checks sessions with one secret.
#[derive(Clone)]
pub struct SessionKeys {
    secret: Vec<u8>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

impl SessionKeys {
    /// Keys from a configured secret (several API processes behind one
    /// address must share it), or a random one when `None`.
    pub fn new(secret: Option<&str>) -> Self {
        let secret = match secret {
            Some(s) if !s.is_empty() => s.as_bytes().to_vec(),
            _ => rand::random::<[u8; 32]>().to_vec(),
        };
        Self { secret }
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        // HMAC takes keys of any length; this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!());
        for p in parts {
            mac.update(p);
        }
        mac
    }

    /// The id a session of the key whose SHA-256 is `key_hash` (hex)
    /// carries: an HMAC of the whole hash.
    pub fn key_id(&self, key_hash: &str) -> String {
        hex::encode(
            self.mac(&[b"key:", key_hash.to_ascii_lowercase().as_bytes()])
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `session` belongs to the key whose SHA-256 is `key_hash`
    /// (constant time).
    pub fn belongs_to(&self, session: &Session, key_hash: &str) -> bool {
        let expected = self.key_id(key_hash);
        expected.len() == session.key.len()
            && bool::from(expected.as_bytes().ct_eq(session.key.as_bytes()))
    }

    /// A new session for key `name` whose SHA-256 is `key_hash` (hex),
    /// valid from `now` (Unix seconds).
    pub fn start(&self, name: &str, key_hash: &str, access: Access, now: i64) -> Session {
        Session {
            name: name.to_owned(),
            access,
            key: self.key_id(key_hash),
            expires: now + LIFETIME_SECS,
            nonce: hex::encode(rand::random::<[u8; 16]>()),
        }
    }

    /// The cookie value of `session`.
    pub fn seal(&self, session: &Session) -> String {
        let json = serde_json::to_vec(session).unwrap_or_default();
        let body = URL_SAFE_NO_PAD.encode(json);
        let tag = self
            .mac(&[b"session:", body.as_bytes()])
            .finalize()
            .into_bytes();
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The session in a cookie value, if the signature holds and it has not
    /// expired at `now`.
    pub fn open(&self, cookie: &str, now: i64) -> Option<Session> {
        let (body, tag) = cookie.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        self.mac(&[b"session:", body.as_bytes()])
            .verify_slice(&tag)
            .ok()?;
        let session: Session = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (session.expires > now).then_some(session)
    }

    /// The CSRF token forms of `session` carry.
    pub fn csrf_token(&self, session: &Session) -> String {
        hex::encode(
            self.mac(&[b"csrf:", session.nonce.as_bytes()])
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `token` is `session`'s CSRF token (constant time).
    pub fn csrf_ok(&self, session: &Session, token: &str) -> bool {
        let expected = self.csrf_token(session);
        expected.len() == token.len() && bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// `Set-Cookie` for a session: HttpOnly, SameSite=Strict, the dashboard's
/// path only, `Secure` when served over HTTPS.
pub fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={LIFETIME_SECS}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that ends the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_sessions_open_until_they_expire_and_not_when_tampered() {
        let keys = SessionKeys::new(Some("secret"));
        let s = keys.start("ops", "abcdef0123456789ff", Access::Admin, 1_000);
        let cookie = keys.seal(&s);
        assert_eq!(keys.open(&cookie, 1_001), Some(s.clone()));
        assert_eq!(keys.open(&cookie, 1_000 + LIFETIME_SECS), None, "expired");
        let other = SessionKeys::new(Some("other secret"));
        assert_eq!(other.open(&cookie, 1_001), None, "another secret");
        // Raise a read-only session to admin by editing the body: refused.
        let read = keys.seal(&keys.start("viewer", "0123", Access::Read, 1_000));
        let (_, tag) = read.split_once('.').expect("dot");
        let forged_body = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Session {
                access: Access::Admin,
                ..keys.open(&read, 1_001).expect("open")
            })
            .expect("json"),
        );
        assert_eq!(keys.open(&format!("{forged_body}.{tag}"), 1_001), None);
        assert_eq!(keys.open("garbage", 1_001), None);
    }

    #[test]
    fn a_session_belongs_to_the_whole_hash_of_its_key() {
        let keys = SessionKeys::new(Some("secret"));
        let hash = "abcdef0123456789ff";
        let s = keys.start("ops", hash, Access::Admin, 0);
        assert!(keys.belongs_to(&s, hash));
        assert!(!s.key.contains(hash), "the cookie shows the hash");
        assert!(!keys.belongs_to(&s, "abcdef0123456789fe"));
        for prefix in ["", "a", "abcdef0123456789"] {
            let forged = Session {
                key: prefix.into(),
                ..s.clone()
            };
            assert!(!keys.belongs_to(&forged, hash), "{prefix:?}");
        }
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let keys = SessionKeys::new(None);
        let a = keys.start("ops", "ab", Access::Admin, 0);
        let b = keys.start("ops", "ab", Access::Admin, 0);
        let token = keys.csrf_token(&a);
        assert!(keys.csrf_ok(&a, &token));
        assert!(!keys.csrf_ok(&b, &token));
        assert!(!keys.csrf_ok(&a, ""));
    }

    #[test]
    fn cookies_are_found_in_the_header() {
        let h = "a=1; sluice_session=abc.def; b=2";
        assert_eq!(cookie_value(h, COOKIE), Some("abc.def"));
        assert_eq!(cookie_value(h, "c"), None);
        let set = set_cookie("v", false);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
    }
}
