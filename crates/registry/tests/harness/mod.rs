//! Test harness: Debian's `docker-registry` (distribution 2.8) on a loopback port with a temporary
//! storage root, in plain, htpasswd and token set-ups, and a token server issuing RS256 JWTs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret-pass";
pub const SERVICE: &str = "berth-test-registry";
pub const ISSUER: &str = "berth-test-issuer";
/// The refresh token the token server hands out on login and accepts in the POST flow.
pub const REFRESH_TOKEN: &str = "refresh-0123456789";

/// The docker-registry binary; a missing one fails the test.
pub fn registry_binary() -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = Path::new(dir).join("docker-registry");
        if p.exists() {
            return p;
        }
    }
    panic!(
        "docker-registry (Debian package docker-registry, distribution 2.8) is not installed: \
         these tests need it; install it with `apt-get install -y docker-registry`"
    );
}

fn free_port() -> u16 {
    let l = StdListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding a port: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("local addr: {e}"))
        .port()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How the registry authenticates.
pub enum Auth {
    None,
    Htpasswd,
    Token(String),
}

/// A running registry; killed and cleaned when dropped.
pub struct Registry {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub scheme: &'static str,
}

impl Registry {
    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts a registry with the given auth; https when `tls` is given.
    pub fn start(auth: Auth, tls: Option<&TlsFiles>) -> Registry {
        let bin = registry_binary();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let port = free_port();
        let mut auth_yaml = String::new();
        match auth {
            Auth::None => {}
            Auth::Htpasswd => {
                let line = run(Command::new(htpasswd_binary()).args(["-Bbn", USER, PASSWORD]));
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, line.trim()).unwrap_or_else(|e| panic!("htpasswd: {e}"));
                auth_yaml = format!(
                    "auth:\n  htpasswd:\n    realm: berth-basic-realm\n    path: {}\n",
                    file.display()
                );
            }
            Auth::Token(bundle_realm) => {
                let (realm, bundle) = bundle_realm
                    .split_once('|')
                    .unwrap_or_else(|| panic!("token auth wants realm|bundle"));
                auth_yaml = format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {bundle}\n"
                );
            }
        }
        let tls_yaml = match tls {
            Some(t) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n    clientcas:\n      - {}\n",
                t.server_cert.display(),
                t.server_key.display(),
                t.ca.display()
            ),
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: berth-test-secret\n{tls_yaml}{auth_yaml}",
            dir.path().join("data").display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap_or_else(|e| panic!("writing config: {e}"));
        let log = std::fs::File::create(dir.path().join("registry.log"))
            .unwrap_or_else(|e| panic!("log file: {e}"));
        let child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting docker-registry: {e}"));
        let r = Registry {
            child,
            dir,
            port,
            scheme: if tls.is_some() { "https" } else { "http" },
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {port}: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Stops the registry (to make it die mid-operation).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

fn htpasswd_binary() -> PathBuf {
    let p = Path::new("/usr/bin/htpasswd");
    assert!(
        p.exists(),
        "htpasswd (Debian package apache2-utils) is not installed: the basic-auth tests need it \
         to write the registry's bcrypt htpasswd file; install it with `apt-get install -y apache2-utils`"
    );
    p.to_path_buf()
}

/// A self-signed RSA key and certificate for signing tokens, made with the openssl CLI.
pub struct SigningKey {
    pub cert_pem: PathBuf,
    pub cert_der: Vec<u8>,
    pub key: ring::signature::RsaKeyPair,
}

fn require_openssl() {
    assert!(
        Path::new("/usr/bin/openssl").exists(),
        "openssl (Debian package openssl) is not installed: the token and TLS tests make their \
         keys and certificates with it"
    );
}

pub fn signing_key(dir: &Path) -> SigningKey {
    require_openssl();
    let key = dir.join("token.key");
    let cert = dir.join("token.crt");
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=berth test token signer",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let der = CertificateDer::from_pem_file(&cert).unwrap_or_else(|e| panic!("cert: {e}"));
    let k = match PrivateKeyDer::from_pem_file(&key).unwrap_or_else(|e| panic!("key: {e}")) {
        PrivateKeyDer::Pkcs8(k) => k,
        other => panic!("expected a PKCS#8 key from openssl, got {other:?}"),
    };
    let pair = ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der())
        .unwrap_or_else(|e| panic!("RSA key: {e}"));
    SigningKey {
        cert_pem: cert,
        cert_der: der.to_vec(),
        key: pair,
    }
}

/// A token server: GET with basic credentials (or POST with the refresh token) gets a JWT
/// granting what was asked; wrong credentials get a 401 with `details`.
pub struct TokenServer {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    pub posts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn jwt(key: &SigningKey, scopes: &[String], subject: &str) -> String {
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&key.cert_der)],
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let (rest, actions) = s.rsplit_once(':')?;
            let (ty, name) = rest.split_once(':')?;
            Some(serde_json::json!({"type": ty, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": subject, "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("jti-{now}-{}", scopes.len()), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let rng = ring::rand::SystemRandom::new();
    let mut sig = vec![0u8; key.key.public().modulus_len()];
    key.key
        .sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &rng,
            signing_input.as_bytes(),
            &mut sig,
        )
        .unwrap_or_else(|e| panic!("signing: {e}"));
    format!("{signing_input}.{}", b64(&sig))
}

fn query_params(q: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn json_response(status: u16, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn token_answer(
    key: Arc<SigningKey>,
    req: Request<Incoming>,
    posts: Arc<AtomicUsize>,
) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let method = req.method().clone();
    let basic = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let query = req.uri().query().unwrap_or_default().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let denied = || {
        json_response(
            401,
            serde_json::json!({"details": "incorrect username or password"}),
        )
    };
    if method == hyper::Method::POST {
        posts.fetch_add(1, Ordering::SeqCst);
        let form: HashMap<String, String> = query_params(&String::from_utf8_lossy(&body))
            .into_iter()
            .collect();
        if form.get("grant_type").map(String::as_str) != Some("refresh_token")
            || form.get("refresh_token").map(String::as_str) != Some(REFRESH_TOKEN)
            || form.get("service").map(String::as_str) != Some(SERVICE)
        {
            return denied();
        }
        let scopes: Vec<String> = form
            .get("scope")
            .map(|s| s.split(' ').map(str::to_string).collect())
            .unwrap_or_default();
        let t = jwt(&key, &scopes, USER);
        return json_response(
            200,
            serde_json::json!({"access_token": t, "expires_in": 300, "scope": scopes.join(" ")}),
        );
    }
    if basic.as_deref() != Some(&format!("{USER}:{PASSWORD}")) {
        return denied();
    }
    let params = query_params(&query);
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let offline = params
        .iter()
        .any(|(k, v)| k == "offline_token" && v == "true");
    let t = jwt(&key, &scopes, USER);
    let issued = chrono::Utc::now().to_rfc3339();
    let mut answer = serde_json::json!({"token": t, "expires_in": 300, "issued_at": issued});
    if offline {
        answer["refresh_token"] = serde_json::Value::String(REFRESH_TOKEN.into());
    }
    json_response(200, answer)
}

impl TokenServer {
    pub async fn start(key: SigningKey) -> TokenServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("token server bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("token server addr: {e}"));
        let key = Arc::new(key);
        let requests = Arc::new(AtomicUsize::new(0));
        let posts = Arc::new(AtomicUsize::new(0));
        let (rq, ps) = (requests.clone(), posts.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (key, rq, ps) = (key.clone(), rq.clone(), ps.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        rq.fetch_add(1, Ordering::SeqCst);
                        let (key, ps) = (key.clone(), ps.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(token_answer(key, req, ps).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TokenServer {
            url: format!("http://{addr}/token"),
            requests,
            posts,
            task,
        }
    }
}

/// Deterministic pseudo-random bytes (a layer that does not compress away).
pub fn blob(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A registry config for tests: short retry delays, nothing from the system.
pub fn client_config() -> registry::RegistryConfig {
    registry::RegistryConfig {
        system_ca_file: None,
        retry: registry::RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(20),
        },
        ..Default::default()
    }
}

/// A test CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub fn tls_files(dir: &Path) -> TlsFiles {
    require_openssl();
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=berth test CA", "-keyout"])
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.crt")));
    for (name, cn, ext) in [
        (
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "client",
            "berth test client",
            "extendedKeyUsage=clientAuth\n",
        ),
    ] {
        let extfile = p(&format!("{name}.ext"));
        std::fs::write(
            &extfile,
            format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n{ext}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        run(Command::new("openssl")
            .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj"])
            .arg(format!("/CN={cn}"))
            .arg("-keyout")
            .arg(p(&format!("{name}.key")))
            .arg("-out")
            .arg(p(&format!("{name}.csr"))));
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(p(&format!("{name}.csr")))
            .arg("-CA")
            .arg(p("ca.crt"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(&extfile)
            .arg("-out")
            .arg(p(&format!("{name}.crt"))));
    }
    TlsFiles {
        ca: p("ca.crt"),
        server_cert: p("server.crt"),
        server_key: p("server.key"),
        client_cert: p("client.crt"),
        client_key: p("client.key"),
    }
}
