//! The fetch state machine against real local HTTP and HTTPS servers over plain TCP:
//! TLS (with the test CA given as an extra root), every body framing, redirects,
//! errors, concurrency, keep-alive reuse, aborts and timeouts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, Outcome, pattern, pki, server, tcp};
use mixfetch::tls::client_config;
use mixfetch::{FetchConfig, FetchRequest, Fetcher, Redirect};
use rustls::time_provider::DefaultTimeProvider;

fn fetcher(extra_roots: &str) -> Harness {
    let tls = client_config(extra_roots.as_bytes(), Arc::new(DefaultTimeProvider)).unwrap();
    Harness::new(Fetcher::new(FetchConfig::new(tls), 1000), tcp())
}

fn get(url: String) -> FetchRequest {
    FetchRequest { method: "GET".into(), url, ..FetchRequest::default() }
}

fn status(o: &Outcome) -> u16 {
    o.response.as_ref().map_or(0, |r| r.status)
}

#[tokio::test]
async fn https_and_http_bodies_of_every_framing() {
    let pki = pki();
    let https = server(Some(pki.server.clone())).await.unwrap();
    let http = server(None).await.unwrap();
    let mut f = fetcher(&pki.ca_pem);
    let reqs = vec![
        get(format!("https://localhost:{}/text", https.port)),
        get(format!("https://127.0.0.1:{}/json", https.port)),
        get(format!("https://localhost:{}/chunked", https.port)),
        get(format!("https://localhost:{}/bytes/5000000", https.port)),
        get(format!("http://127.0.0.1:{}/text", http.port)),
        get(format!("http://127.0.0.1:{}/close-delimited", http.port)),
        FetchRequest { method: "HEAD".into(), ..get(format!("http://127.0.0.1:{}/bytes/10", http.port)) },
    ];
    let out = f.run(reqs, None).await;
    for o in &out {
        assert!(o.error.is_none(), "{o:?}");
    }
    assert_eq!(out[0].body, b"hello over the mixnet");
    assert_eq!(out[1].body, br#"{"ok":true,"n":42}"#);
    let ct =
        out[1].response.as_ref().unwrap().headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).unwrap();
    assert_eq!(ct.1, "application/json");
    assert_eq!(out[2].body, b"first second third");
    assert_eq!(out[3].body.len(), 5_000_000);
    assert!(out[3].body == pattern(5_000_000), "5 MB byte-identical");
    assert_eq!(out[4].body, b"hello over the mixnet");
    assert_eq!(out[5].body, b"until the end");
    assert_eq!((status(&out[6]), out[6].body.len()), (200, 0));
    assert_eq!(f.fetcher.in_flight(), 0);
}

#[tokio::test]
async fn bodies_methods_statuses_and_redirects() {
    let http = server(None).await.unwrap();
    let base = format!("http://127.0.0.1:{}", http.port);
    let mut f = fetcher("");
    let post = |path: &str, body: &[u8]| FetchRequest {
        method: "post".into(),
        url: format!("{base}{path}"),
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: Some(body.to_vec()),
        ..FetchRequest::default()
    };
    let reqs = vec![
        post("/echo", b"posted body"),
        get(format!("{base}/not-found")),
        get(format!("{base}/error")),
        get(format!("{base}/redirect/3")),
        post("/see-other", b"dropped"),
        post("/temporary", b"kept by 307"),
        FetchRequest { redirect: Redirect::Manual, ..get(format!("{base}/redirect/1")) },
        FetchRequest { redirect: Redirect::Error, ..get(format!("{base}/redirect/1")) },
        get(format!("{base}/redirect/25")),
    ];
    let out = f.run(reqs, None).await;
    assert_eq!((status(&out[0]), &out[0].body[..]), (201, &b"posted body"[..]));
    let echo = out[0].response.as_ref().unwrap();
    assert!(echo.headers.contains(&("X-Method".into(), "POST".into())), "methods are normalised");
    assert_eq!((status(&out[1]), &out[1].body[..]), (404, &b"nothing here"[..]));
    assert_eq!((status(&out[2]), &out[2].body[..]), (500, &b"it broke"[..]));
    let r = out[3].response.as_ref().unwrap();
    assert_eq!(
        (r.status, r.redirected, r.url.as_str(), &out[3].body[..]),
        (200, true, &*format!("{base}/text"), &b"hello over the mixnet"[..])
    );
    // 303 turns the POST into a GET without a body; 307 keeps both
    let see_other = out[4].response.as_ref().unwrap();
    assert!(see_other.headers.contains(&("X-Method".into(), "GET".into())));
    assert_eq!(out[4].body, b"");
    assert_eq!((status(&out[5]), &out[5].body[..]), (201, &b"kept by 307"[..]));
    assert_eq!(status(&out[6]), 302, "manual mode returns the redirect itself");
    assert!(out[7].error.as_deref().unwrap().contains("redirect mode is \"error\""), "{:?}", out[7]);
    assert!(out[8].error.as_deref().unwrap().contains("too many redirects"), "{:?}", out[8]);
}

#[tokio::test]
async fn twenty_concurrent_requests_reuse_keep_alive_connections() {
    let http = server(None).await.unwrap();
    let mut f = fetcher("");
    let reqs = (0..20).map(|i| get(format!("http://127.0.0.1:{}/bytes/{}", http.port, 1000 + i))).collect();
    let out = f.run(reqs, None).await;
    for (i, o) in out.iter().enumerate() {
        assert_eq!(o.body, pattern(1000 + i), "request {i}: {:?}", o.error);
    }
    // six connections at most to one origin: the other fourteen requests reused them
    assert_eq!(f.opened, 6);
    let again = f.run(vec![get(format!("http://127.0.0.1:{}/text", http.port))], None).await;
    assert_eq!(again[0].body, b"hello over the mixnet");
    assert_eq!(f.opened, 6, "an idle keep-alive connection served it");
}

#[tokio::test]
async fn a_bad_certificate_is_refused_with_a_clear_error() {
    let pki = pki();
    let https = server(Some(pki.server.clone())).await.unwrap();
    let mut f = fetcher(""); // without the test CA
    let out = f.run(vec![get(format!("https://localhost:{}/text", https.port))], None).await;
    let e = out[0].error.as_deref().unwrap();
    assert!(e.contains("TLS with localhost failed") && e.contains("certificate"), "{e}");
    // the wrong name for a good certificate
    let mut f = fetcher(&pki.ca_pem);
    let out = f.run(vec![get(format!("https://wrong-name.test:{}/text", https.port))], None).await;
    assert!(out[0].error.as_deref().unwrap().contains("certificate"), "{:?}", out[0].error);
}

#[tokio::test]
async fn aborts_timeouts_and_refused_connections() {
    let http = server(None).await.unwrap();
    let mut f = fetcher("");
    let out = f.run(vec![get(format!("http://127.0.0.1:{}/bytes/3000000", http.port))], Some(100_000)).await;
    assert_eq!(out[0].error.as_deref(), Some("aborted"));
    assert!(out[0].body.len() >= 100_000 && out[0].body.len() < 3_000_000);

    let hang = FetchRequest {
        timeout: Some(Duration::from_millis(300)),
        ..get(format!("http://127.0.0.1:{}/hang", http.port))
    };
    let out = f.run(vec![hang], None).await;
    assert_eq!(out[0].error.as_deref(), Some("the response body stalled: no data for 300 ms"));
    assert_eq!(out[0].body, b"partial", "the body streams before the end");

    let silent = FetchRequest {
        timeout: Some(Duration::from_millis(300)),
        ..get(format!("http://127.0.0.1:{}/silent", http.port))
    };
    let out = f.run(vec![silent], None).await;
    assert_eq!(out[0].error.as_deref(), Some("timed out after 300 ms"));

    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = f.run(vec![get(format!("http://127.0.0.1:{closed_port}/"))], None).await;
    assert!(out[0].error.as_deref().unwrap().starts_with("could not connect to 127.0.0.1"), "{:?}", out[0].error);
    assert_eq!(f.fetcher.in_flight(), 0);
}

#[tokio::test]
async fn invalid_requests_fail_at_once() {
    let mut f = fetcher("");
    for (req, want) in [
        (get("ftp://example.com/".into()), "only http: and https:"),
        (get("/relative".into()), "not an absolute URL"),
        (FetchRequest { body: Some(b"x".to_vec()), ..get("http://example.com/".into()) }, "cannot have a body"),
        (FetchRequest { method: "CONNECT".into(), ..get("http://example.com/".into()) }, "forbidden"),
        (
            FetchRequest { headers: vec![("Bad Name".into(), "v".into())], ..get("http://example.com/".into()) },
            "header",
        ),
    ] {
        let e = f.fetcher.fetch(mixnet_core::time::Instant::ZERO, req).unwrap_err().to_string();
        assert!(e.contains(want), "{e} should mention {want}");
    }
    assert!(client_config(b"not a certificate", Arc::new(DefaultTimeProvider)).is_err());
}

#[tokio::test]
async fn a_tls_body_cut_without_close_notify_is_an_error() {
    let pki = pki();
    let https = server(Some(pki.server.clone())).await.unwrap();
    let http = server(None).await.unwrap();
    let mut f = fetcher(&pki.ca_pem);
    let out = f
        .run(
            vec![
                get(format!("https://localhost:{}/truncated", https.port)),
                get(format!("https://localhost:{}/close-delimited", https.port)),
                get(format!("http://127.0.0.1:{}/truncated", http.port)),
            ],
            None,
        )
        .await;
    // on 117647c the first ended "successfully" with a truncated body
    let e = out[0].error.as_deref().expect("a cut TLS body is refused");
    assert!(e.contains("close_notify"), "{e}");
    assert!(out[1].error.is_none(), "an end with close_notify is an end: {:?}", out[1]);
    assert_eq!(out[1].body, b"until the end");
    // without TLS there is nothing better than the FIN
    assert_eq!(out[2].body, b"until the");
}

#[tokio::test]
async fn https_to_http_redirects_are_refused_unless_allowed_and_then_carry_no_cookie() {
    let pki = pki();
    let https = server(Some(pki.server.clone())).await.unwrap();
    let http = server(None).await.unwrap();
    let url = format!("https://localhost:{}/redirect-to?http://127.0.0.1:{}/headers", https.port, http.port);
    let with_cookie = FetchRequest { headers: vec![("Cookie".into(), "session=secret".into())], ..get(url.clone()) };
    let mut f = fetcher(&pki.ca_pem);
    let out = f.run(vec![with_cookie.clone()], None).await;
    let e = out[0].error.as_deref().expect("refused by default");
    assert!(e.contains("insecure redirect"), "{e}");

    let tls = client_config(pki.ca_pem.as_bytes(), Arc::new(DefaultTimeProvider)).unwrap();
    let config = FetchConfig { allow_insecure_redirects: true, ..FetchConfig::new(tls) };
    let mut f = Harness::new(Fetcher::new(config, 1000), tcp());
    let out = f.run(vec![with_cookie], None).await;
    assert!(out[0].error.is_none(), "{:?}", out[0]);
    let seen = String::from_utf8_lossy(&out[0].body).to_lowercase();
    assert!(seen.contains("host:") && !seen.contains("cookie"), "{seen}");
}

/// On 117647c an HTTPS request body of 64 KiB or more failed before anything was
/// sent ("failed to write whole buffer": rustls' default buffer limit).
#[tokio::test]
async fn https_request_bodies_past_64_kib_are_sent_whole() {
    let pki = pki();
    let https = server(Some(pki.server.clone())).await.unwrap();
    let mut f = fetcher(&pki.ca_pem);
    let reqs: Vec<FetchRequest> = [65_535usize, 65_536, 1 << 20]
        .iter()
        .map(|&n| FetchRequest {
            method: "POST".into(),
            url: format!("https://localhost:{}/echo", https.port),
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body: Some(pattern(n)),
            ..FetchRequest::default()
        })
        .collect();
    let out = f.run(reqs, None).await;
    for (o, n) in out.iter().zip([65_535usize, 65_536, 1 << 20]) {
        assert!(o.error.is_none(), "{n} B: {:?}", o.error);
        assert!(o.body == pattern(n), "{n} B echoed back whole");
    }
}
