//! The S3 screenshot store against a real S3-compatible server: s3s-fs
//! (the S3 REST API over a directory, with Signature V4 checking), started
//! in this test on a free loopback port.

use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use s3s_fs::FileSystem;
use sluice_trading::storage::{S3Settings, S3Store, ScreenshotStore};

const ACCESS_KEY: &str = "sluice-test-access";
const SECRET_KEY: &str = "sluice-test-secret-key";

/// An S3 server over a fresh directory holding one bucket; its endpoint and
/// the directory. The server stops with the test's runtime.
async fn start_s3(bucket: &str) -> (String, PathBuf) {
    let root = std::env::temp_dir().join(format!("sluice-s3-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(root.join(bucket)).expect("bucket dir");
    let fs = FileSystem::new(&root).expect("s3s-fs");
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), root)
}

fn settings(endpoint: &str, bucket: &str) -> S3Settings {
    S3Settings {
        endpoint: endpoint.into(),
        bucket: bucket.into(),
        region: "us-east-1".into(),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        prefix: "screenshots/".into(),
        path_style: true,
        public_url: None,
    }
}

#[tokio::test]
async fn screenshots_go_to_the_bucket_by_content_hash_and_are_deleted_from_it() {
    let (endpoint, root) = start_s3("shots").await;
    let store = ScreenshotStore::from(S3Store::new(&settings(&endpoint, "shots")).expect("store"));
    let png = b"\x89PNG\r\n\x1a\n not really a picture, but bytes".to_vec();

    let url = store.put(&png).await.expect("put");
    let again = store.put(&png).await.expect("second put");
    assert_eq!(url, again, "the same picture has one URL");
    let key = url
        .strip_prefix(&format!("{endpoint}/shots/"))
        .expect("linked at the bucket");
    assert!(
        key.starts_with("screenshots/") && key.ends_with(".png"),
        "{key}"
    );
    let stored = std::fs::read(root.join("shots").join(key)).expect("object on the server");
    assert_eq!(stored, png);

    assert!(store.remove(&url).await.expect("remove"));
    assert!(!root.join("shots").join(key).exists(), "object deleted");
    assert!(
        !store
            .remove("https://elsewhere.example/x.png")
            .await
            .expect("foreign url")
    );
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn a_wrong_secret_or_an_unreachable_server_fails_with_the_reason() {
    let (endpoint, root) = start_s3("shots").await;
    let mut wrong = settings(&endpoint, "shots");
    wrong.secret_key = "not-the-secret".into();
    let e = S3Store::new(&wrong)
        .expect("store")
        .put(b"picture")
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("SignatureDoesNotMatch") && e.contains("403"),
        "{e}"
    );

    // Nothing listening: the job's attempt fails with the reason (and is
    // retried by the engine).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let down =
        S3Store::new(&settings(&format!("http://127.0.0.1:{port}"), "shots")).expect("store");
    let e = down
        .put(b"picture")
        .await
        .expect_err("unreachable")
        .to_string();
    assert!(e.contains("cannot put screenshots/"), "{e}");

    // A public URL (a CDN in front of the bucket) is what links use.
    let mut cdn = settings(&endpoint, "shots");
    cdn.public_url = Some("https://cdn.example.com/".into());
    let url = S3Store::new(&cdn)
        .expect("store")
        .put(b"picture")
        .await
        .expect("put");
    assert!(
        url.starts_with("https://cdn.example.com/screenshots/"),
        "{url}"
    );
    let _ = std::fs::remove_dir_all(root);
}
