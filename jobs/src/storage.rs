//! Where screenshots go: a local directory (the default) or an
//! S3-compatible bucket (AWS S3, MinIO, R2, ...). Either way a picture is
//! stored once, under the SHA-256 of its bytes, and known by its URL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How long a signed S3 request stays valid: only long enough to send it.
const SIGNATURE_VALIDITY: Duration = Duration::from_secs(60);

/// Longest an S3 request may take.
const S3_TIMEOUT: Duration = Duration::from_secs(20);

/// `<sha256>.png` of `png`.
fn file_name(png: &[u8]) -> String {
    format!("{}.png", hex::encode(Sha256::digest(png)))
}

/// Whether `name` is one of ours: 64 hex digits and `.png`.
fn is_file_name(name: &str) -> bool {
    name.strip_suffix(".png")
        .is_some_and(|hash| hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The screenshot store the application was configured with.
#[derive(Debug, Clone)]
pub enum ScreenshotStore {
    /// Files in a local directory, served by the API.
    Local(LocalStore),
    /// Objects in an S3-compatible bucket, linked at the bucket's public URL.
    S3(Box<S3Store>),
}

impl ScreenshotStore {
    /// Store `png` and return its URL. The same picture is stored once.
    pub async fn put(&self, png: &[u8]) -> Result<String> {
        match self {
            Self::Local(s) => s.put(png).await,
            Self::S3(s) => s.put(png).await,
        }
    }

    /// Delete the picture behind `url`. `Ok(false)` when `url` is not one of
    /// this store's or was already gone.
    pub async fn remove(&self, url: &str) -> Result<bool> {
        match self {
            Self::Local(s) => s.remove(url).await,
            Self::S3(s) => s.remove(url).await,
        }
    }
}

impl From<LocalStore> for ScreenshotStore {
    fn from(store: LocalStore) -> Self {
        Self::Local(store)
    }
}

impl From<S3Store> for ScreenshotStore {
    fn from(store: S3Store) -> Self {
        Self::S3(Box::new(store))
    }
}

/// Screenshots in a local directory, one file per content hash.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
    url_prefix: String,
}

impl LocalStore {
    /// Files in `dir`, linked as `<url_prefix>/<hash>.png`.
    pub fn new(dir: impl Into<PathBuf>, url_prefix: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            url_prefix: url_prefix.into().trim_end_matches('/').to_owned(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Store `png` and return its URL.
    pub async fn put(&self, png: &[u8]) -> Result<String> {
        let name = file_name(png);
        let path = self.dir.join(&name);
        if tokio::fs::metadata(&path).await.is_err() {
            tokio::fs::create_dir_all(&self.dir)
                .await
                .map_err(|e| Error::io(format!("cannot create {}", self.dir.display()), e))?;
            // Write then rename: a reader never sees half a file.
            let tmp = self
                .dir
                .join(format!(".{name}.{}", uuid::Uuid::now_v7().simple()));
            tokio::fs::write(&tmp, png)
                .await
                .map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        }
        Ok(format!("{}/{name}", self.url_prefix))
    }

    /// The file behind `url`, if it is one of this store's.
    pub fn path_of(&self, url: &str) -> Option<PathBuf> {
        let name = url.strip_prefix(&self.url_prefix)?.strip_prefix('/')?;
        is_file_name(name).then(|| self.dir.join(name))
    }

    /// Delete the file behind `url`.
    pub async fn remove(&self, url: &str) -> Result<bool> {
        let Some(path) = self.path_of(url) else {
            return Ok(false);
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("cannot delete {}", path.display()), e)),
        }
    }
}

/// Where an S3-compatible bucket is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The service's URL, e.g. `https://s3.eu-west-1.amazonaws.com` or
    /// `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// The bucket (it must exist).
    pub bucket: String,
    /// The region the requests are signed for (`us-east-1` for most
    /// S3-compatible servers).
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Key prefix of the objects, e.g. `screenshots/`.
    pub prefix: String,
    /// Bucket in the path (`endpoint/bucket/key`, MinIO's default) rather
    /// than in the host name (`bucket.endpoint/key`).
    pub path_style: bool,
    /// Base URL under which stored objects are linked (a CDN or the
    /// bucket's public address). Default: the bucket's URL.
    pub public_url: Option<String>,
}

/// Screenshots in an S3-compatible bucket. Requests are signed with AWS
/// Signature Version 4.
#[derive(Debug, Clone)]
pub struct S3Store {
    bucket: Bucket,
    credentials: Credentials,
    prefix: String,
    public_url: String,
    http: reqwest::Client,
}

impl S3Store {
    /// A store for `settings`; checks them but does not contact the service.
    pub fn new(settings: &S3Settings) -> Result<Self> {
        let invalid = |what: &str| Error::Invalid(format!("S3 screenshot store: {what}"));
        let endpoint = settings
            .endpoint
            .parse()
            .map_err(|e| invalid(&format!("endpoint {:?}: {e}", settings.endpoint)))?;
        let style = if settings.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            settings.bucket.clone(),
            settings.region.clone(),
        )
        .map_err(|e| invalid(&format!("bucket {:?}: {e}", settings.bucket)))?;
        if settings.access_key.is_empty() || settings.secret_key.is_empty() {
            return Err(invalid("access_key and secret_key are required"));
        }
        if settings.prefix.starts_with('/') || settings.prefix.contains("..") {
            return Err(invalid("prefix must be relative, without `..`"));
        }
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| bucket.base_url().to_string())
            .trim_end_matches('/')
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(S3_TIMEOUT)
            .build()
            .map_err(|e| invalid(&format!("HTTP client: {e}")))?;
        Ok(Self {
            bucket,
            credentials: Credentials::new(settings.access_key.clone(), settings.secret_key.clone()),
            prefix: settings.prefix.clone(),
            public_url,
            http,
        })
    }

    /// Store `png` and return its URL. Objects are named by content hash,
    /// so putting the same picture twice rewrites the same bytes.
    pub async fn put(&self, png: &[u8]) -> Result<String> {
        let key = format!("{}{}", self.prefix, file_name(png));
        let url = self
            .bucket
            .put_object(Some(&self.credentials), &key)
            .sign(SIGNATURE_VALIDITY);
        let reply = self
            .http
            .put(url)
            .header("content-type", "image/png")
            .body(png.to_vec())
            .send()
            .await
            .map_err(|e| Error::Storage(format!("cannot put {key}: {e}")))?;
        check(reply, &key).await?;
        Ok(format!("{}/{key}", self.public_url))
    }

    /// The object key behind `url`, if it is one of this store's.
    pub fn key_of<'a>(&self, url: &'a str) -> Option<&'a str> {
        let key = url.strip_prefix(&self.public_url)?.strip_prefix('/')?;
        is_file_name(key.strip_prefix(&self.prefix)?).then_some(key)
    }

    /// Delete the object behind `url`.
    pub async fn remove(&self, url: &str) -> Result<bool> {
        let Some(key) = self.key_of(url) else {
            return Ok(false);
        };
        let signed = self
            .bucket
            .delete_object(Some(&self.credentials), key)
            .sign(SIGNATURE_VALIDITY);
        let reply = self
            .http
            .delete(signed)
            .send()
            .await
            .map_err(|e| Error::Storage(format!("cannot delete {key}: {e}")))?;
        check(reply, key).await?;
        Ok(true)
    }
}

/// Turn an S3 error reply into an error that carries its code and message.
async fn check(reply: reqwest::Response, key: &str) -> Result<()> {
    let status = reply.status();
    if status.is_success() {
        return Ok(());
    }
    let body = reply.text().await.unwrap_or_default();
    let code = xml_field(&body, "Code").unwrap_or("no error code");
    let message = xml_field(&body, "Message").unwrap_or("");
    Err(Error::Storage(format!(
        "S3 refused {key}: HTTP {status}, {code} {message}"
    )))
}

/// The text of the first `<field>` in an S3 error document.
fn xml_field<'a>(body: &'a str, field: &str) -> Option<&'a str> {
    let start = body.find(&format!("<{field}>"))? + field.len() + 2;
    let len = body[start..].find(&format!("</{field}>"))?;
    Some(body[start..start + len].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> S3Settings {
        S3Settings {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "shots".into(),
            region: "us-east-1".into(),
            access_key: "AK".into(),
            secret_key: "SK".into(),
            prefix: "screenshots/".into(),
            path_style: true,
            public_url: None,
        }
    }

    #[test]
    fn local_urls_map_back_to_files_and_nothing_else() {
        let store = LocalStore::new("/tmp/shots", "/screenshots/");
        let hash = "a".repeat(64);
        assert_eq!(
            store.path_of(&format!("/screenshots/{hash}.png")),
            Some(PathBuf::from(format!("/tmp/shots/{hash}.png")))
        );
        assert_eq!(store.path_of("/screenshots/../x.png"), None);
        assert_eq!(store.path_of("/other/x.png"), None);
    }

    #[test]
    fn s3_urls_map_back_to_keys_and_nothing_else() {
        let store = S3Store::new(&settings()).expect("store");
        let hash = "ab".repeat(32);
        let url = format!("http://127.0.0.1:9000/shots/screenshots/{hash}.png");
        assert_eq!(
            store.key_of(&url),
            Some(format!("screenshots/{hash}.png").as_str())
        );
        assert_eq!(
            store.key_of("http://127.0.0.1:9000/shots/screenshots/../x.png"),
            None
        );
        assert_eq!(
            store.key_of(&format!("http://elsewhere/shots/screenshots/{hash}.png")),
            None
        );
    }

    #[test]
    fn bad_s3_settings_are_refused_with_the_reason() {
        let mut s = settings();
        s.secret_key.clear();
        let e = S3Store::new(&s).expect_err("no secret").to_string();
        assert!(e.contains("secret_key"), "{e}");
        let mut s = settings();
        s.endpoint = "not a url".into();
        assert!(S3Store::new(&s).is_err());
        let mut s = settings();
        s.prefix = "/abs".into();
        assert!(S3Store::new(&s).is_err());
    }

    #[test]
    fn s3_error_documents_are_read() {
        let body = "<Error><Code>SignatureDoesNotMatch</Code><Message>bad sig</Message></Error>";
        assert_eq!(xml_field(body, "Code"), Some("SignatureDoesNotMatch"));
        assert_eq!(xml_field(body, "Message"), Some("bad sig"));
        assert_eq!(xml_field(body, "Missing"), None);
    }
}
