//! Mutual TLS: a CRM that demands a client certificate, with certificates made
//! in the test by `rcgen` (a CA, a server certificate for 127.0.0.1, a client
//! certificate).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    alice, assert_error, crm_answering, file, fixture, init_logs, json_ok, lookup_at, refusal,
    start, test_settings,
};

struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_cert: CertificateDer<'static>,
    server_key: PrivateKeyDer<'static>,
    client_cert_pem: String,
    client_key_pem: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let mut server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &ca).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["authbridge".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &ca).unwrap();

    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        server_cert: server_cert.der().clone(),
        server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        client_cert_pem: client_cert.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// An HTTPS "CRM" that only talks to clients with a certificate from the CA.
/// Why the mock CRM's TLS handshakes failed, as rustls says it.
type Handshakes = Arc<std::sync::Mutex<Vec<String>>>;

/// With the handshake failures it saw, so a negative test can tell a TLS
/// refusal from any other connection failure.
async fn mtls_crm_recording(pki: &Pki) -> (String, Handshakes) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server_cert.clone()], pki.server_key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = fixture("generic-bank/alice.input.json").to_string();
    let failures: Handshakes = Arc::default();
    let seen = failures.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let body = body.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                // A handshake without a valid client certificate fails here.
                let mut tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        seen.lock().unwrap().push(e.to_string());
                        return;
                    }
                };
                let mut buf = vec![0u8; 8192];
                let _ = tls.read(&mut buf).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (format!("https://127.0.0.1:{}", addr.port()), failures)
}

/// A lookup through an app in front of the mTLS CRM, trusting its CA when
/// `trust_ca` and presenting the client certificate when `client_cert`;
/// with the handshake failures the CRM saw.
async fn lookup_via_mtls(trust_ca: bool, client_cert: bool) -> (reqwest::Response, Handshakes) {
    init_logs();
    let pki = pki();
    let (crm, failures) = mtls_crm_recording(&pki).await;
    let (ca, cert, key) = (
        file(&pki.ca_pem),
        file(&pki.client_cert_pem),
        file(&pki.client_key_pem),
    );
    let mut settings = test_settings(&crm);
    if trust_ca {
        settings.upstream.tls.ca_file = Some(ca.path().to_owned());
    }
    if client_cert {
        settings.upstream.tls.client_cert_file = Some(cert.path().to_owned());
        settings.upstream.tls.client_key_file = Some(key.path().to_owned());
    }
    let response = lookup_at(&start(settings).await, "tls-user").await;
    (response, failures)
}

#[tokio::test]
async fn a_client_certificate_opens_the_crm() {
    let (response, _) = lookup_via_mtls(true, true).await;

    let card = json_ok(response).await;
    assert_eq!(card, fixture("generic-bank/alice.expected.json"));
}

/// As [`lookup_via_mtls`], for a lookup the handshake refuses: asserts the
/// answer is "CRM unreachable"; the handshake failures the CRM saw.
async fn refused_handshakes(trust_ca: bool, client_cert: bool) -> Vec<String> {
    let (response, failures) = lookup_via_mtls(trust_ca, client_cert).await;
    assert_error(response, 502, "1005").await;
    failures.lock().unwrap().clone()
}

#[tokio::test]
async fn without_a_client_certificate_the_crm_is_unreachable() {
    let failures = refused_handshakes(true, false).await;

    assert!(
        failures.iter().any(|e| e.contains("certificate")),
        "refused in the TLS handshake for the missing client certificate: {failures:?}"
    );
}

#[tokio::test]
async fn an_unknown_server_ca_is_refused() {
    let failures = refused_handshakes(false, true).await;

    assert!(
        failures.iter().any(|e| e.to_lowercase().contains("alert")),
        "the handshake ended with our client's TLS alert (unknown CA): {failures:?}"
    );
}

#[tokio::test]
async fn unreadable_tls_files_refuse_to_start() {
    let mut settings = test_settings("https://127.0.0.1:9");
    settings.upstream.tls.ca_file = Some("/nonexistent/ca.pem".into());
    let err = refusal(settings).await;
    assert!(err.contains("upstream.tls.ca_file: cannot read"), "{err}");
    let junk = file("not a certificate");
    let mut settings = test_settings("https://127.0.0.1:9");
    settings.upstream.tls.ca_file = Some(junk.path().to_owned());
    let err = refusal(settings).await;
    assert!(err.contains("upstream.tls.ca_file"), "{err}");
}

/// A server certificate for 127.0.0.1 from `ca`, as PEM (certificate, key).
fn server_pem(ca: &CertifiedIssuer<'static, KeyPair>) -> (String, String, CertificateDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

/// The certificate a TLS server at `addr` presents.
async fn presented_cert(
    addr: std::net::SocketAddr,
    ca_der: &CertificateDer<'static>,
) -> CertificateDer<'static> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca_der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

#[tokio::test]
async fn tls_termination_with_a_reloadable_certificate() {
    init_logs();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let ca_der = ca.der().clone();
    let (cert_pem, key_pem, first_der) = server_pem(&ca);
    let (cert_file, key_file) = (file(&cert_pem), file(&key_pem));
    let crm = crm_answering(alice()).await;
    let mut settings = test_settings(&crm.uri());
    settings.server.tls.cert_file = Some(cert_file.path().to_owned());
    settings.server.tls.key_file = Some(key_file.path().to_owned());
    let app = authbridge::Application::build(settings).await.unwrap();
    let addr = app.local_addr();
    let reloader = app.reloader();
    tokio::spawn(app.run_with_shutdown(std::future::pending()));

    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_der(&ca_der).unwrap())
        .build()
        .unwrap();
    let response = client
        .get(format!(
            "https://127.0.0.1:{}/rest/chat/client/id/t",
            addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(presented_cert(addr, &ca_der).await, first_der);

    // A renewed certificate is picked up on reload, without a restart.
    let (cert_pem, key_pem, second_der) = server_pem(&ca);
    std::fs::write(cert_file.path(), cert_pem).unwrap();
    std::fs::write(key_file.path(), key_pem).unwrap();
    reloader.reload().await.unwrap();
    assert_eq!(presented_cert(addr, &ca_der).await, second_der);

    // A broken certificate is rejected and the current one keeps serving.
    std::fs::write(cert_file.path(), "garbage").unwrap();
    assert!(
        reloader
            .reload()
            .await
            .unwrap_err()
            .contains("server.tls.cert_file")
    );
    assert_eq!(presented_cert(addr, &ca_der).await, second_der);
}
