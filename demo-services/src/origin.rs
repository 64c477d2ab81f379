//! A small web origin on loopback, for the MixFetch demo, tests and benchmarks: HTTP
//! and HTTPS, its certificate signed by a CA made at startup (browsers and MixFetch
//! trust it through `extraRoots`). One route per behaviour: text, JSON, echo, any
//! number of bytes, chunked and close-delimited bodies, redirects, errors, a hang.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// A CA and a certificate for `localhost` / 127.0.0.1 signed by it.
pub struct TestPki {
    /// The CA's certificate, PEM (give it to clients as an extra root).
    pub ca_pem: String,
    /// A TLS server configuration with the signed certificate.
    pub server: Arc<rustls::ServerConfig>,
}

/// Makes a new CA and a server certificate for `localhost` and 127.0.0.1.
pub fn pki() -> TestPki {
    let ca_key = rcgen::KeyPair::generate().expect("rcgen and rustls accept what they made");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("rcgen and rustls accept what they made");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "mixfetch test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("rcgen and rustls accept what they made");
    let leaf_key = rcgen::KeyPair::generate().expect("rcgen and rustls accept what they made");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen and rustls accept what they made");
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("rcgen and rustls accept what they made");
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("rcgen and rustls accept what they made")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("rcgen and rustls accept what they made");
    TestPki { ca_pem: ca_cert.pem(), server: Arc::new(server) }
}

/// `n` deterministic bytes (what `/bytes/n` serves).
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn read_request(io: &mut (impl AsyncRead + Unpin)) -> Option<(String, String, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
            let method = req.method?.to_owned();
            let path = req.path?.to_owned();
            let hs: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                .collect();
            let len: usize =
                hs.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
            let mut body = buf[n..].to_vec();
            while body.len() < len {
                let mut chunk = [0u8; 8192];
                let k = io.read(&mut chunk).await.ok()?;
                if k == 0 {
                    return None;
                }
                body.extend_from_slice(&chunk[..k]);
            }
            return Some((method, path, hs, body));
        }
        let mut chunk = [0u8; 8192];
        let k = io.read(&mut chunk).await.ok()?;
        if k == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..k]);
    }
}

fn respond(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// Serves one connection: keep-alive until the client or a route closes it.
async fn serve_conn(mut io: Box<dyn Io>) {
    while let Some((method, path, headers, body)) = read_request(&mut io).await {
        let out = match path.as_str() {
            "/" => respond(
                "200 OK",
                &[("Content-Type", "text/plain; charset=utf-8".into())],
                "Hello from a web server on localnet. The mixnet's exit made the TCP connection; \
                 the TLS session runs in your browser's worker, so the exit saw only ciphertext \
                 and this server never learned who asked.\n"
                    .as_bytes(),
            ),
            "/text" => respond("200 OK", &[("Content-Type", "text/plain".into())], b"hello over the mixnet"),
            "/json" => respond("200 OK", &[("Content-Type", "application/json".into())], br#"{"ok":true,"n":42}"#),
            "/echo" => {
                let ct = headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.clone()).unwrap_or_default();
                respond("201 Created", &[("Content-Type", ct), ("X-Method", method.clone())], &body)
            }
            "/headers" => {
                let text: String = headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
                respond("200 OK", &[], text.as_bytes())
            }
            p if p.starts_with("/bytes/") => {
                let n: usize = p[7..].parse().unwrap_or(0);
                respond("200 OK", &[("Content-Type", "application/octet-stream".into())], &pattern(n))
            }
            "/chunked" => {
                let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for part in ["first ", "second ", "third"] {
                    out.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
                }
                out.extend_from_slice(b"0\r\n\r\n");
                out
            }
            "/close-delimited" => {
                let _ = io.write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil the end").await;
                let _ = io.shutdown().await;
                return;
            }
            "/truncated" => {
                // the connection goes without a TLS close_notify: a cut, not an end
                let _ = io.write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil the").await;
                let _ = io.flush().await;
                return;
            }
            p if p.starts_with("/redirect-to?") => respond("302 Found", &[("Location", p[13..].to_string())], b""),
            p if p.starts_with("/redirect/") => {
                let n: usize = p[10..].parse().unwrap_or(0);
                let to = if n <= 1 { "/text".to_string() } else { format!("/redirect/{}", n - 1) };
                respond("302 Found", &[("Location", to)], b"")
            }
            "/see-other" => respond("303 See Other", &[("Location", "/echo".into())], b""),
            "/temporary" => respond("307 Temporary Redirect", &[("Location", "/echo".into())], b""),
            "/not-found" => respond("404 Not Found", &[], b"nothing here"),
            "/error" => respond("500 Internal Server Error", &[], b"it broke"),
            "/silent" => {
                tokio::time::sleep(Duration::from_secs(600)).await;
                return;
            }
            "/hang" => {
                let _ = io.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial").await;
                tokio::time::sleep(Duration::from_secs(600)).await;
                return;
            }
            _ => respond("404 Not Found", &[], b"no such route"),
        };
        if io.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// A server on an OS-chosen loopback port; TLS when `tls` is given. Stops when dropped.
pub struct Server {
    /// Its port on 127.0.0.1.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts serving on an OS-chosen loopback port (TLS when `tls` is given).
pub async fn server(tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<Server> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let tls = tls.clone();
            conns.spawn(async move {
                let io: Box<dyn Io> = match tls {
                    Some(cfg) => match tokio_rustls::TlsAcceptor::from(cfg).accept(stream).await {
                        Ok(s) => Box::new(s),
                        Err(_) => return,
                    },
                    None => Box::new(stream),
                };
                serve_conn(io).await;
            });
        }
    });
    Ok(Server { port, task })
}
