//! The client against Debian's docker-registry (distribution 2.8): plain HTTP, htpasswd basic auth,
//! token auth; and against small fake servers for the faults a real registry does not make.

mod harness;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use harness::{Auth, Registry, TokenServer, PASSWORD, REFRESH_TOKEN, USER};
use registry::manifest::{self, Manifest};
use registry::{AuthConfig, BlobPush, Client, PlatformSpec, Session, UploadMode};

fn creds(user: &str, password: &str) -> AuthConfig {
    AuthConfig {
        username: user.into(),
        password: password.into(),
        ..Default::default()
    }
}

fn sha(data: &[u8]) -> String {
    registry::digest::sha256(data)
}

fn desc(media_type: &str, data: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": sha(data), "size": data.len()})
}

async fn push_bytes(s: &Session, repo: &str, data: &Bytes, mode: UploadMode) -> BlobPush {
    let d = data.clone();
    s.push_blob(
        repo,
        &sha(data),
        data.len() as u64,
        None,
        mode,
        move |off| {
            let d = d.clone();
            async move { Ok(std::io::Cursor::new(d.slice(off as usize..))) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("pushing blob to {repo}: {e}"))
}

/// An image: config, three layers (one pushed in chunks), an OCI manifest.
struct TestImage {
    config: Bytes,
    layers: Vec<Bytes>,
    manifest: Bytes,
}

fn test_image(seed: u64, arch: &str) -> TestImage {
    let layers: Vec<Bytes> = vec![
        Bytes::from(harness::blob(seed, 3 << 20)),
        Bytes::from(harness::blob(seed + 1, (5 << 20) + 123)),
        Bytes::from(harness::blob(seed + 2, 777)),
    ];
    let config = Bytes::from(
        serde_json::json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha(l)).collect::<Vec<_>>()},
            "config": {}
        })
        .to_string(),
    );
    let manifest = Bytes::from(
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_MANIFEST,
            "config": desc(manifest::OCI_CONFIG, &config),
            "layers": layers.iter().map(|l| desc(manifest::OCI_LAYER, l)).collect::<Vec<_>>(),
        })
        .to_string(),
    );
    TestImage {
        config,
        layers,
        manifest,
    }
}

async fn push_image(s: &Session, repo: &str, img: &TestImage, tag: &str) -> String {
    assert_eq!(
        push_bytes(s, repo, &img.config, UploadMode::Monolithic).await,
        BlobPush::Uploaded
    );
    assert_eq!(
        push_bytes(s, repo, &img.layers[0], UploadMode::Monolithic).await,
        BlobPush::Uploaded
    );
    assert_eq!(
        push_bytes(s, repo, &img.layers[1], UploadMode::Chunked(1 << 20)).await,
        BlobPush::Uploaded
    );
    assert_eq!(
        push_bytes(s, repo, &img.layers[2], UploadMode::Chunked(100)).await,
        BlobPush::Uploaded
    );
    let digest = s
        .put_manifest(repo, tag, manifest::OCI_MANIFEST, img.manifest.clone())
        .await
        .unwrap_or_else(|e| panic!("putting manifest {repo}:{tag}: {e}"));
    assert_eq!(digest, sha(&img.manifest));
    digest
}

async fn pull_and_compare(s: &Session, repo: &str, tag: &str, img: &TestImage, digest: &str) {
    let resolved = s
        .resolve(repo, tag)
        .await
        .unwrap_or_else(|e| panic!("resolving {repo}:{tag}: {e}"));
    assert_eq!(resolved.digest, digest);
    assert_eq!(resolved.media_type, manifest::OCI_MANIFEST);
    assert_eq!(resolved.size, img.manifest.len() as u64);
    for reference in [tag, digest] {
        let m = s
            .get_manifest(repo, reference)
            .await
            .unwrap_or_else(|e| panic!("getting manifest {repo}:{reference}: {e}"));
        assert_eq!(m.digest, digest);
        assert_eq!(m.bytes, img.manifest);
        let Manifest::Image(im) = m.manifest else {
            panic!("expected an image manifest")
        };
        let config = s
            .fetch_blob_bytes(repo, &im.config.digest, Some(im.config.size))
            .await
            .unwrap_or_else(|e| panic!("config: {e}"));
        assert_eq!(config, img.config);
        for (l, want) in im.layers.iter().zip(&img.layers) {
            let mut sink: Vec<u8> = Vec::new();
            let mut last = 0;
            let n = s
                .fetch_blob(repo, &l.digest, Some(l.size), &mut sink, &mut |n| last = n)
                .await
                .unwrap_or_else(|e| panic!("layer {}: {e}", l.digest));
            assert_eq!(n, want.len() as u64);
            assert_eq!(last, n, "progress reached the end");
            assert_eq!(sha(&sink), sha(want));
        }
    }
}

/// Push, pull back, re-push (exists), mount, list tags, unknown manifest.
async fn round_trip(push: &Session, pull: &Session) {
    let img = test_image(1, "amd64");
    let digest = push_image(push, "berth/test", &img, "v1").await;
    pull_and_compare(pull, "berth/test", "v1", &img, &digest).await;

    assert_eq!(
        push_bytes(push, "berth/test", &img.layers[0], UploadMode::Monolithic).await,
        BlobPush::Exists
    );
    let l = img.layers[1].clone();
    let mounted = push
        .push_blob(
            "berth/other",
            &sha(&l),
            l.len() as u64,
            Some("berth/test"),
            UploadMode::Monolithic,
            move |off| {
                let d = l.clone();
                async move { Ok(std::io::Cursor::new(d.slice(off as usize..))) }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("mounting: {e}"));
    assert_eq!(
        mounted,
        BlobPush::Mounted {
            from: "berth/test".into()
        }
    );
    assert_eq!(
        push.blob_exists("berth/other", &sha(&img.layers[1]))
            .await
            .ok()
            .flatten(),
        Some(img.layers[1].len() as u64)
    );
    push.put_manifest(
        "berth/test",
        "v2",
        manifest::OCI_MANIFEST,
        img.manifest.clone(),
    )
    .await
    .unwrap_or_else(|e| panic!("second tag: {e}"));
    push.put_manifest(
        "berth/test",
        "v3",
        manifest::OCI_MANIFEST,
        img.manifest.clone(),
    )
    .await
    .unwrap_or_else(|e| panic!("third tag: {e}"));
    // distribution 2.8 ignores n= (one page always); pages are tested against a fake below.
    for page in [None, Some(1)] {
        let mut tags = pull
            .tags("berth/test", page)
            .await
            .unwrap_or_else(|e| panic!("tags: {e}"));
        tags.sort();
        assert_eq!(tags, ["v1", "v2", "v3"], "pages of {page:?}");
    }
    let e = pull.get_manifest("berth/test", "nope").await.err();
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some("manifest unknown: manifest unknown")
    );
    let e = pull.resolve("berth/test", "nope").await.err();
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some("manifest unknown: manifest unknown")
    );
    // A blob streamed without knowing its digest first (compressed while pushed).
    let streamed = Bytes::from(harness::blob(77, (2 << 20) + 5));
    let (digest, size) = push
        .push_blob_stream("berth/test", std::io::Cursor::new(streamed.clone()))
        .await
        .unwrap_or_else(|e| panic!("streamed push: {e}"));
    assert_eq!(
        (digest.as_str(), size),
        (sha(&streamed).as_str(), streamed.len() as u64)
    );
    let back = pull
        .fetch_blob_bytes("berth/test", &digest, Some(size))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, streamed);
    let missing = format!("sha256:{}", "0".repeat(64));
    assert_eq!(
        pull.blob_exists("berth/test", &missing).await.ok(),
        Some(None)
    );
}

#[tokio::test]
async fn plain_http_push_pull_and_index() {
    let reg = Registry::start(Auth::None, None);
    let client = Client::new(harness::client_config());
    let s = client
        .push_session(&reg.host(), AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("session: {e}\n{}", reg.log()));
    // 127.0.0.0/8 is insecure: https is tried first, then plain http answers.
    assert_eq!(s.base_url().scheme(), "http");
    let pull = client
        .session(&reg.host(), AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("session: {e}"));
    round_trip(&s, &pull).await;

    // One session shared by concurrent layer downloads on other tasks (as the engine pulls).
    let pull = Arc::new(pull);
    let img = test_image(1, "amd64");
    let tasks: Vec<_> = img
        .layers
        .iter()
        .map(|l| {
            let (pull, digest, size) = (pull.clone(), sha(l), l.len() as u64);
            tokio::spawn(async move {
                let mut sink: Vec<u8> = Vec::new();
                pull.fetch_blob("berth/test", &digest, Some(size), &mut sink, &mut |_| {})
                    .await
                    .map(|_| sha(&sink))
            })
        })
        .collect();
    for (t, l) in tasks.into_iter().zip(&img.layers) {
        let got = t.await.unwrap_or_else(|e| panic!("task: {e}"));
        assert_eq!(got.ok(), Some(sha(l)));
    }

    // An index of two platforms: the client picks the one asked for.
    let amd = test_image(10, "amd64");
    let arm = test_image(20, "arm64");
    let amd_d = push_image(&s, "berth/multi", &amd, "amd").await;
    let arm_d = push_image(&s, "berth/multi", &arm, "arm").await;
    let entry = |m: &Bytes, arch: &str, variant: &str| {
        let mut d = desc(manifest::OCI_MANIFEST, m);
        d["platform"] =
            serde_json::json!({"architecture": arch, "os": "linux", "variant": variant});
        d
    };
    let index = Bytes::from(
        serde_json::json!({
            "schemaVersion": 2, "mediaType": manifest::OCI_INDEX,
            "manifests": [entry(&amd.manifest, "amd64", ""), entry(&arm.manifest, "arm64", "v8")],
        })
        .to_string(),
    );
    s.put_manifest("berth/multi", "latest", manifest::OCI_INDEX, index.clone())
        .await
        .unwrap_or_else(|e| panic!("index: {e}"));
    let got = pull
        .get_manifest("berth/multi", "latest")
        .await
        .unwrap_or_else(|e| panic!("get index: {e}"));
    assert_eq!(got.media_type, manifest::OCI_INDEX);
    assert_eq!(got.digest, sha(&index));
    let Manifest::Index(idx) = got.manifest else {
        panic!("expected an index")
    };
    for (platform, want, img) in [("linux/amd64", &amd_d, &amd), ("linux/arm64", &arm_d, &arm)] {
        let p = PlatformSpec::parse(platform).unwrap_or_else(|e| panic!("{e}"));
        let d = p.select(&idx).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&d.digest, want);
        pull_and_compare(&pull, "berth/multi", &d.digest, img, want).await;
    }
    let p = PlatformSpec::parse("linux/s390x").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        p.select(&idx).err().map(|e| e.to_string()).as_deref(),
        Some("no matching manifest for linux/s390x in the manifest list entries")
    );
}

#[tokio::test]
async fn htpasswd_basic_auth() {
    let reg = Registry::start(Auth::Htpasswd, None);
    let client = Client::new(harness::client_config());
    let s = client
        .push_session(&reg.host(), creds(USER, PASSWORD))
        .await
        .unwrap_or_else(|e| panic!("session: {e}\n{}", reg.log()));
    round_trip(&s, &s).await;
    assert_eq!(
        client.login(&reg.host(), creds(USER, PASSWORD)).await.ok(),
        Some(None)
    );

    let bad = client
        .session(&reg.host(), creds(USER, "wrong"))
        .await
        .unwrap_or_else(|e| panic!("session: {e}"));
    let e = bad.get_manifest("berth/test", "v1").await.err();
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some("unauthorized: authentication required")
    );
    let e = client.login(&reg.host(), creds(USER, "wrong")).await.err();
    assert_eq!(
        e.map(|e| e.to_string()),
        Some(format!(
            "login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
            reg.host()
        ))
    );
    let anon = client
        .session(&reg.host(), AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("session: {e}"));
    let e = anon.get_manifest("berth/test", "v1").await.err();
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some("no basic auth credentials")
    );
    // The API's X-Registry-Auth form works the same.
    let header = creds(USER, PASSWORD).to_header();
    let via_header = client
        .session(
            &reg.host(),
            AuthConfig::from_header(&header).unwrap_or_else(|e| panic!("{e}")),
        )
        .await
        .unwrap_or_else(|e| panic!("session: {e}"));
    assert!(via_header.get_manifest("berth/test", "v1").await.is_ok());
}

#[tokio::test]
async fn token_auth() {
    let keydir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let key = harness::signing_key(keydir.path());
    let bundle = key.cert_pem.clone();
    let ts = TokenServer::start(key).await;
    let reg = Registry::start(
        Auth::Token(format!("{}|{}", ts.url, bundle.display())),
        None,
    );
    let client = Client::new(harness::client_config());
    let s = client
        .push_session(&reg.host(), creds(USER, PASSWORD))
        .await
        .unwrap_or_else(|e| panic!("session: {e}\n{}", reg.log()));
    let before = ts.requests.load(Ordering::SeqCst);
    round_trip(&s, &s).await;
    let used = ts.requests.load(Ordering::SeqCst) - before;
    // Tokens are cached per scope set: a handful of distinct scope sets, not one per request
    // (the round trip makes well over 40 requests).
    assert!(
        (1..=8).contains(&used),
        "{used} token requests for one round trip\n{}",
        reg.log()
    );

    let bad = client
        .session(&reg.host(), creds(USER, "wrong"))
        .await
        .unwrap_or_else(|e| panic!("session: {e}"));
    let e = bad.get_manifest("berth/test", "v1").await.err();
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some("unauthorized: incorrect username or password")
    );
    let e = client.login(&reg.host(), creds(USER, "wrong")).await.err();
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some("unauthorized: incorrect username or password")
    );

    // docker login: an offline token gives back an identity token, which later sessions use in
    // the OAuth2 POST flow instead of the password.
    let identity = client
        .login(&reg.host(), creds(USER, PASSWORD))
        .await
        .unwrap_or_else(|e| panic!("login: {e}"));
    assert_eq!(identity.as_deref(), Some(REFRESH_TOKEN));
    let by_identity = AuthConfig {
        username: USER.into(),
        identitytoken: REFRESH_TOKEN.into(),
        ..Default::default()
    };
    let s2 = client
        .session(&reg.host(), by_identity)
        .await
        .unwrap_or_else(|e| panic!("session: {e}"));
    let posts = ts.posts.load(Ordering::SeqCst);
    let img = test_image(1, "amd64");
    pull_and_compare(&s2, "berth/test", "v1", &img, &sha(&img.manifest)).await;
    assert!(
        ts.posts.load(Ordering::SeqCst) > posts,
        "the refresh-token POST flow was used"
    );

    // Concurrent layer fetches on a fresh session ask the token server once between them.
    let s4 = Arc::new(
        client
            .session(&reg.host(), creds(USER, PASSWORD))
            .await
            .unwrap_or_else(|e| panic!("session: {e}")),
    );
    let before = ts.requests.load(Ordering::SeqCst);
    let tasks: Vec<_> = img
        .layers
        .iter()
        .map(|l| {
            let (s4, digest, size) = (s4.clone(), sha(l), l.len() as u64);
            tokio::spawn(async move {
                s4.fetch_blob_bytes("berth/test", &digest, Some(size))
                    .await
                    .map(|b| sha(&b))
            })
        })
        .collect();
    for (t, l) in tasks.into_iter().zip(&img.layers) {
        let got = t.await.unwrap_or_else(|e| panic!("task: {e}"));
        assert_eq!(got.ok(), Some(sha(l)));
    }
    assert_eq!(ts.requests.load(Ordering::SeqCst) - before, 1);

    // A registry token is sent as is: an invalid one gets the registry's refusal.
    let raw = AuthConfig {
        registrytoken: "not-a-jwt".into(),
        ..Default::default()
    };
    let s3 = client
        .session(&reg.host(), raw)
        .await
        .unwrap_or_else(|e| panic!("session: {e}"));
    let e = s3.get_manifest("berth/test", "v1").await.err();
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some("unauthorized: authentication required")
    );
}

/// A TCP proxy that cuts the first connection to carry more than `cut_after` bytes back to the
/// client (a registry dying mid-blob), then forwards everything.
async fn cutting_proxy(
    target: u16,
    cut_after: usize,
    cut: Arc<AtomicBool>,
    ranges: Arc<AtomicUsize>,
) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("proxy bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            let (cut, ranges) = (cut.clone(), ranges.clone());
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let Ok(up) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    return;
                };
                let (mut ur, mut uw) = up.into_split();
                let (mut dr, mut dw) = down.split();
                let to_up = async {
                    let mut buf = vec![0u8; 16 << 10];
                    loop {
                        let n = match dr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if String::from_utf8_lossy(&buf[..n])
                            .to_ascii_lowercase()
                            .contains("\r\nrange: bytes=")
                        {
                            ranges.fetch_add(1, Ordering::SeqCst);
                        }
                        if uw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let to_down = async {
                    let mut buf = vec![0u8; 64 << 10];
                    let mut sent = 0usize;
                    loop {
                        let n = match ur.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if sent + n > cut_after && !cut.swap(true, Ordering::SeqCst) {
                            let _ = dw.write_all(&buf[..cut_after.saturating_sub(sent)]).await;
                            return;
                        }
                        sent += n;
                        if dw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    _ = to_up => {}
                    _ = to_down => {}
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn dropped_connection_resumes_with_range() {
    let reg = Registry::start(Auth::None, None);
    let client = Client::new(harness::client_config());
    let s = client
        .push_session(&reg.host(), AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("session: {e}"));
    let img = test_image(5, "amd64");
    let digest = push_image(&s, "berth/resume", &img, "v1").await;

    let cut = Arc::new(AtomicBool::new(false));
    let ranges = Arc::new(AtomicUsize::new(0));
    let port = cutting_proxy(reg.port, 1 << 20, cut.clone(), ranges.clone()).await;
    let via = client
        .session(&format!("127.0.0.1:{port}"), AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("session via proxy: {e}"));
    pull_and_compare(&via, "berth/resume", "v1", &img, &digest).await;
    assert!(cut.load(Ordering::SeqCst), "the proxy cut a connection");
    assert_eq!(
        ranges.load(Ordering::SeqCst),
        1,
        "the cut blob was resumed with one Range request"
    );
    let log = reg.log();
    assert!(!log.contains("panic"), "{log}");
}

/// A fake registry answering blob GETs from a handler, counting requests.
async fn fake_registry<F>(handler: F) -> (u16, Arc<AtomicUsize>)
where
    F: Fn(
            usize,
            &hyper::Request<hyper::body::Incoming>,
        ) -> hyper::Response<http_body_util::Full<Bytes>>
        + Send
        + Sync
        + 'static,
{
    fake_registry_challenging(None, handler).await
}

/// Like [`fake_registry`], with `/v2/` answering 401 and this challenge when given.
async fn fake_registry_challenging<F>(
    challenge: Option<String>,
    handler: F,
) -> (u16, Arc<AtomicUsize>)
where
    F: Fn(
            usize,
            &hyper::Request<hyper::body::Incoming>,
        ) -> hyper::Response<http_body_util::Full<Bytes>>
        + Send
        + Sync
        + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("fake bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let count = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let c = count.clone();
    let challenge = Arc::new(challenge);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (handler, c) = (handler.clone(), c.clone());
            let challenge = (*challenge).clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let (handler, c, challenge) = (handler.clone(), c.clone(), challenge.clone());
                    async move {
                        if req.uri().path() == "/v2/" {
                            let mut r = response(200, "application/json", b"{}");
                            if let Some(ch) = challenge {
                                r = response(401, "application/json", b"{}");
                                if let Ok(v) = hyper::header::HeaderValue::from_str(&ch) {
                                    r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
                                }
                            }
                            return Ok::<_, std::convert::Infallible>(r);
                        }
                        let n = c.fetch_add(1, Ordering::SeqCst);
                        Ok(handler(n, &req))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (port, count)
}

fn response(status: u16, ct: &str, body: &[u8]) -> hyper::Response<http_body_util::Full<Bytes>> {
    let mut r = hyper::Response::new(http_body_util::Full::new(Bytes::copy_from_slice(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if !ct.is_empty() {
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_str(ct)
                .unwrap_or(hyper::header::HeaderValue::from_static("x")),
        );
    }
    r
}

#[tokio::test]
async fn corrupt_blobs_retries_and_schema1_from_a_fake_registry() {
    let good = harness::blob(7, 100_000);
    let digest = sha(&good);
    let client = Client::new(harness::client_config());

    // The right size, the wrong bytes: Docker's verification error, and the caller learns it.
    let mut bad = good.clone();
    bad[500] ^= 1;
    let (port, _) =
        fake_registry(move |_, _| response(200, "application/octet-stream", &bad)).await;
    let s = client
        .session(&format!("127.0.0.1:{port}"), AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sink = Vec::new();
    let e = s
        .fetch_blob(
            "x/y",
            &digest,
            Some(good.len() as u64),
            &mut sink,
            &mut |_| {},
        )
        .await
        .err();
    assert_eq!(
        e.map(|e| e.to_string()),
        Some(format!(
            "filesystem layer verification failed for digest {digest}"
        ))
    );

    // More bytes than the descriptor says: refused before they are all written.
    let mut long = good.clone();
    long.extend_from_slice(&[0u8; 10]);
    let (port, _) = fake_registry(move |_, _| response(200, "", &long)).await;
    let s = client
        .session(&format!("127.0.0.1:{port}"), AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sink = Vec::new();
    let e = s
        .fetch_blob(
            "x/y",
            &digest,
            Some(good.len() as u64),
            &mut sink,
            &mut |_| {},
        )
        .await;
    assert!(
        matches!(e, Err(registry::Error::SizeMismatch { .. })),
        "{e:?}"
    );

    // 503 twice, then the blob: retried with back-off.
    let g = good.clone();
    let (port, count) = fake_registry(move |n, _| {
        if n < 2 {
            response(503, "", b"busy")
        } else {
            response(200, "", &g)
        }
    })
    .await;
    let s = client
        .session(&format!("127.0.0.1:{port}"), AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = s
        .fetch_blob_bytes("x/y", &digest, Some(good.len() as u64))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.as_ref(), good.as_slice());
    assert_eq!(count.load(Ordering::SeqCst), 3);

    // 429 every time: five attempts, then Docker's text.
    let (port, count) = fake_registry(|_, _| {
        response(
            429,
            "application/json",
            br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#,
        )
    })
    .await;
    let s = client
        .session(&format!("127.0.0.1:{port}"), AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = s.get_manifest("x/y", "latest").await.err();
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some("toomanyrequests: You have reached your pull rate limit.")
    );
    assert_eq!(count.load(Ordering::SeqCst), 5);

    // Schema1 is refused with Docker's notice; a manifest that does not match its digest too.
    let (port, _) = fake_registry(|_, req| {
        if req.uri().path().ends_with("/old") {
            response(
                200,
                manifest::DOCKER_SCHEMA1_SIGNED,
                br#"{"schemaVersion":1,"name":"x/y","tag":"old","fsLayers":[]}"#,
            )
        } else {
            response(
                200,
                manifest::OCI_INDEX,
                br#"{"schemaVersion":2,"manifests":[]}"#,
            )
        }
    })
    .await;
    let host = format!("127.0.0.1:{port}");
    let s = client
        .session(&host, AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = s
        .get_manifest("x/y", "old")
        .await
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref().is_some_and(|e| e.starts_with(&format!(
            "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of {host}/x/y:old to upgrade"
        ))),
        "{e:?}"
    );
    for (repo, reference) in [
        ("../x", "v1"),
        ("x/Y", "v1"),
        ("x/y", "v1?x"),
        ("x//y", "v1"),
    ] {
        let e = s.get_manifest(repo, reference).await.err();
        assert!(
            matches!(e, Some(registry::Error::InvalidName(_))),
            "{repo}:{reference}: {e:?}"
        );
    }
    let e = s
        .get_manifest("x/y", &digest)
        .await
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e,
        Some(format!("manifest verification failed for digest {digest}"))
    );
}

#[tokio::test]
async fn an_invalid_token_challenge_gets_one_fresh_token() {
    let keydir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ts = TokenServer::start(harness::signing_key(keydir.path())).await;
    let challenge = format!(
        r#"Bearer realm="{}",service="{}""#,
        ts.url,
        harness::SERVICE
    );
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let rejected = challenge.clone() + r#",error="invalid_token""#;
    let (port, count) = fake_registry_challenging(Some(challenge), move |n, req| {
        let has_token = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer ey"));
        // The first token is refused, every later request too when it has no token.
        if n == 0 || !has_token {
            let mut r = response(
                401,
                "application/json",
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
            if let Ok(v) = hyper::header::HeaderValue::from_str(&rejected) {
                r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
            }
            r
        } else {
            response(200, manifest::OCI_INDEX, index)
        }
    })
    .await;
    let client = Client::new(harness::client_config());
    let s = client
        .session(&format!("127.0.0.1:{port}"), creds(USER, PASSWORD))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let m = s
        .get_manifest("x/y", "latest")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.media_type, manifest::OCI_INDEX);
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "one refused try, one retry"
    );
    assert_eq!(
        ts.requests.load(Ordering::SeqCst),
        2,
        "a fresh token for the retry"
    );

    // Refused again after the fresh token: no loop, Docker's error.
    let realm = ts.url.clone();
    let (port, count) = fake_registry_challenging(
        Some(format!(
            r#"Bearer realm="{}",service="{}""#,
            ts.url,
            harness::SERVICE
        )),
        move |_, _| {
            let mut r = response(401, "", b"");
            let v = format!(
                r#"Bearer realm="{realm}",service="{}",error="insufficient_scope""#,
                harness::SERVICE
            );
            if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
                r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
            }
            r
        },
    )
    .await;
    let s = client
        .session(&format!("127.0.0.1:{port}"), creds(USER, PASSWORD))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = s
        .get_manifest("x/y", "latest")
        .await
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("denied: requested access to the resource is denied")
    );
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

/// Lays out `certs.d/<host>/` as Docker's: `ca.crt`, and `client.cert` + `client.key` if asked.
fn certs_d(root: &std::path::Path, host: &str, tls: &harness::TlsFiles, ca: bool, client: bool) {
    let d = root.join(host);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    let copy = |from: &std::path::Path, to: &str| {
        std::fs::copy(from, d.join(to)).unwrap_or_else(|e| panic!("copying {to}: {e}"));
    };
    if ca {
        copy(&tls.ca, "ca.crt");
    }
    if client {
        copy(&tls.client_cert, "client.cert");
        copy(&tls.client_key, "client.key");
    }
}

#[tokio::test]
async fn tls_with_a_test_ca_and_client_certificate_in_certs_d() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tls = harness::tls_files(dir.path());
    let reg = Registry::start(Auth::None, Some(&tls));
    let host = reg.host();
    // Loopback is insecure by default; these clients treat it as any other registry.
    let secure = |certs: &std::path::Path| {
        let mut c = harness::client_config();
        c.insecure_cidrs.clear();
        c.certs_dir = Some(certs.to_path_buf());
        Client::new(c)
    };

    let full = dir.path().join("full");
    certs_d(&full, &host, &tls, true, true);
    let client = secure(&full);
    let s = client
        .push_session(&host, AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("session: {e}\n{}", reg.log()));
    assert_eq!(s.base_url().scheme(), "https");
    round_trip(&s, &s).await;

    // Without the CA the server's certificate is not trusted.
    let no_ca = dir.path().join("no-ca");
    certs_d(&no_ca, &host, &tls, false, true);
    let e = secure(&no_ca)
        .session(&host, AuthConfig::default())
        .await
        .err();
    assert!(
        matches!(e, Some(registry::Error::Transport { .. })),
        "{e:?}"
    );
    assert!(
        e.map(|e| format!("{:?}", e))
            .is_some_and(|e| e.contains("UnknownIssuer")),
        "the failure names the untrusted issuer"
    );

    // Without the client certificate the registry refuses the connection.
    let no_client = dir.path().join("no-client");
    certs_d(&no_client, &host, &tls, true, false);
    let e = secure(&no_client)
        .session(&host, AuthConfig::default())
        .await
        .err();
    let text = e.as_ref().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("BadCertificate"), "{text}");
    assert!(
        matches!(e, Some(registry::Error::Transport { .. })),
        "{e:?}"
    );

    // An insecure registry is reached over https without verifying it (Docker's behaviour):
    // no CA needed, the client certificate is still presented.
    let mut c = harness::client_config();
    c.certs_dir = Some(no_ca.clone());
    let s = Client::new(c)
        .session(&host, AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("insecure session: {e}"));
    assert_eq!(s.base_url().scheme(), "https");
    let img = test_image(1, "amd64");
    pull_and_compare(&s, "berth/test", "v1", &img, &sha(&img.manifest)).await;
}

#[tokio::test]
async fn search_answers_results_or_dockers_error() {
    let (port, _) = fake_registry(|_, req| {
        if req.uri().path() == "/v1/search"
            && req.uri().query().is_some_and(|q| q.contains("q=busy") && q.contains("n=3"))
        {
            response(
                200,
                "application/json",
                br#"{"num_pages":1,"num_results":1,"page_size":3,"query":"busy","results":[{"name":"busybox","description":"Busybox base image.","star_count":3412,"is_official":true,"is_automated":false}]}"#,
            )
        } else {
            response(404, "text/plain", b"404 page not found")
        }
    })
    .await;
    let client = Client::new(harness::client_config());
    let r = client
        .search(
            &format!("127.0.0.1:{port}"),
            "busy",
            3,
            AuthConfig::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("search: {e}"));
    assert_eq!(r.query, "busy");
    assert_eq!(r.results.len(), 1);
    assert_eq!(r.results[0].name, "busybox");
    assert_eq!(r.results[0].star_count, 3412);
    assert!(r.results[0].is_official);

    // distribution has no search endpoint.
    let reg = Registry::start(Auth::None, None);
    let e = client
        .search(&reg.host(), "busy", 25, AuthConfig::default())
        .await
        .err()
        .map(|e| e.to_string());
    assert_eq!(e.as_deref(), Some("Unexpected status code 404"));
}

#[tokio::test]
async fn tag_lists_follow_link_pages() {
    let (port, count) = fake_registry(|_, req| {
        let q = req.uri().query().unwrap_or_default().to_string();
        if q.contains("last=b") {
            response(200, "application/json", br#"{"name":"x/y","tags":["c"]}"#)
        } else {
            assert!(q.contains("n=2"), "first page asked with n=2: {q}");
            let mut r = response(
                200,
                "application/json",
                br#"{"name":"x/y","tags":["a","b"]}"#,
            );
            r.headers_mut().insert(
                hyper::header::LINK,
                hyper::header::HeaderValue::from_static(
                    r#"</v2/x/y/tags/list?last=b&n=2>; rel="next""#,
                ),
            );
            r
        }
    })
    .await;
    let client = Client::new(harness::client_config());
    let s = client
        .session(&format!("127.0.0.1:{port}"), AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tags = s
        .tags("x/y", Some(2))
        .await
        .unwrap_or_else(|e| panic!("tags: {e}"));
    assert_eq!(tags, ["a", "b", "c"]);
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn docker_io_pulls_go_through_mirrors_then_docker_io() {
    let hub = Registry::start(Auth::None, None);
    let mirror = Registry::start(Auth::None, None);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().map(|a| a.port()).unwrap_or(0)
    };
    let mut cfg = harness::client_config();
    cfg.mirrors = vec![
        format!("http://127.0.0.1:{dead}"),
        format!("http://{}", mirror.host()),
    ];
    cfg.docker_io_url = format!("http://{}", hub.host());
    let client = Client::new(cfg);

    // Pushes never go to a mirror.
    let push = client
        .push_session("docker.io", AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(push.base_url().as_str(), format!("http://{}/", hub.host()));
    let hub_only = test_image(30, "amd64");
    let hub_digest = push_image(&push, "library/only-on-hub", &hub_only, "v1").await;
    let direct = client
        .push_session(&mirror.host(), AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mirrored = test_image(31, "amd64");
    let mirrored_digest = push_image(&direct, "library/mirrored", &mirrored, "v1").await;

    // The dead mirror is skipped, the live one serves what it has...
    let pull = client
        .session("docker.io", AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        pull.base_url().as_str(),
        format!("http://{}/", mirror.host())
    );
    pull_and_compare(&pull, "library/mirrored", "v1", &mirrored, &mirrored_digest).await;
    // ...and what it lacks comes from docker.io.
    let pull = client
        .session("docker.io", AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    pull_and_compare(&pull, "library/only-on-hub", "v1", &hub_only, &hub_digest).await;
    assert_eq!(pull.base_url().as_str(), format!("http://{}/", hub.host()));
    // Missing everywhere: the last endpoint's error.
    let e = pull.get_manifest("library/nowhere", "v1").await.err();
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some("manifest unknown: manifest unknown")
    );
}

/// A proxy in front of `target` that refuses any request whose body is over `cap` bytes with a 413 and an
/// HTML page, as nginx does past `client_max_body_size` (1 MiB by default); it counts the refusals and the
/// requests it passed. Every passed request is sent with `Connection: close`, so each one is looked at.
async fn capping_proxy(
    target: u16,
    cap: u64,
    refused: Arc<AtomicUsize>,
    passed: Arc<AtomicUsize>,
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("proxy bind: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            let (refused, passed) = (refused.clone(), passed.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = vec![0u8; 64 << 10];
                let end = loop {
                    if head.first() == Some(&0x16) {
                        // A TLS hello (the client tries HTTPS first): no TLS here, as with a plain
                        // HTTP port; the client falls back to HTTP.
                        return;
                    }
                    if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match down.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                };
                let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
                let length: u64 = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if length > cap {
                    refused.fetch_add(1, Ordering::SeqCst);
                    // Read the body (as nginx reads before it closes), then refuse.
                    let mut left = length.saturating_sub((head.len() - end) as u64);
                    while left > 0 {
                        match down.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => left = left.saturating_sub(n as u64),
                        }
                    }
                    let page = b"<html><head><title>413 Request Entity Too Large</title></head><body><center><h1>413 Request Entity Too Large</h1></center><hr><center>nginx</center></body></html>\r\n";
                    let answer = format!(
                        "HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        page.len()
                    );
                    let _ = down.write_all(answer.as_bytes()).await;
                    let _ = down.write_all(page).await;
                    return;
                }
                passed.fetch_add(1, Ordering::SeqCst);
                let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    return;
                };
                // The head with `Connection: close` in place of any connection header.
                let first = String::from_utf8_lossy(&head[..end - 2]).into_owned();
                let mut rewritten: String = first
                    .split("\r\n")
                    .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
                    .map(|l| format!("{l}\r\n"))
                    .collect();
                rewritten.push_str("Connection: close\r\n\r\n");
                if up.write_all(rewritten.as_bytes()).await.is_err()
                    || up.write_all(&head[end..]).await.is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_capped_request_body_sends_the_blob_in_chunks_it_lets_through() {
    let reg = Registry::start(Auth::None, None);
    let client = Client::new(harness::client_config());
    let (refused, passed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let port = capping_proxy(reg.port, 1 << 20, refused.clone(), passed.clone()).await;
    let via = client
        .push_session(&format!("127.0.0.1:{port}"), AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("session via proxy: {e}"));
    // 3 MiB: refused whole, then in 16 MiB chunks (capped at half the blob: 1.5 MiB, refused), then
    // in 768 KiB chunks, which pass.
    let data = Bytes::from(harness::blob(11, 3 << 20));
    let pushed = push_bytes(&via, "berth/capped", &data, UploadMode::Monolithic).await;
    assert!(matches!(pushed, BlobPush::Uploaded), "{pushed:?}");
    assert_eq!(
        refused.load(Ordering::SeqCst),
        2,
        "the whole blob, then 1.5 MiB chunks"
    );
    let back = via
        .fetch_blob_bytes("berth/capped", &sha(&data), Some(data.len() as u64))
        .await
        .unwrap_or_else(|e| panic!("fetching it back: {e}"));
    assert_eq!(
        back, data,
        "the registry assembled the chunks into the blob"
    );
    // A small blob goes whole, through the same proxy.
    let small = Bytes::from(harness::blob(12, 1000));
    let before = refused.load(Ordering::SeqCst);
    push_bytes(&via, "berth/capped", &small, UploadMode::Monolithic).await;
    assert_eq!(refused.load(Ordering::SeqCst), before);
    let log = reg.log();
    assert!(!log.contains("panic"), "{log}");
}
