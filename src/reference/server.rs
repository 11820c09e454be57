//! The reference IUT's HTTPS API (hyper + rustls, mTLS required) and its loopback-only
//! plain-HTTP admin port for observation.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ServerConfig;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::api_client::ApiClient;
use super::audit::Audit;
use super::changes::{self, Changes};
use super::defects::{Defect, Defects};
use super::ip_filter::{Admission, IpFilter};
use super::legacy_tls::answer_defective_hello;
use super::messages::Receiver;
use super::ocsp::OcspChecker;
use super::outbox::State as MessageState;
use super::sender::{Sender, SenderOptions};
use super::verifier::PolicyVerifier;
use super::xml_receiver::{XmlReceiver, RECEIPT};
use crate::pki::{org_number, Pki};

const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
const CONNECTION_DEADLINE: Duration = Duration::from_secs(60);
/// The loopback admin port keeps a connection longer: a benchmark pushes batches over one
/// kept-alive connection for minutes.
const ADMIN_CONNECTION_DEADLINE: Duration = Duration::from_secs(3600);
const REQUEST_LOG_CAP: usize = 10_000;

#[derive(Debug, Clone)]
pub(crate) struct ReferenceOptions {
    pub pki_dir: PathBuf,
    /// API listen addresses (e.g. 127.0.0.1, [::1], and [::ffff:127.0.0.1] for a dual-stack
    /// socket that sees IPv4 clients as v4-mapped IPv6).
    pub api: Vec<SocketAddr>,
    pub admin: SocketAddr,
    /// Allowlist file (one range per line), re-read on `POST /admin/reload`. None: no filter.
    pub allowlist: Option<PathBuf>,
    /// Sources whose PROXY protocol / forwarding headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Catalogue name of the server certificate to present.
    pub server_cert: String,
    pub registered_orgs: Vec<String>,
    pub defects: Defects,
    /// Ask the OCSP responder in each client certificate's AIA (`--ocsp`).
    pub ocsp: bool,
    /// The inner endpoint behind the access point (mutual TLS, SDK-2.4-INNER).
    pub inner: Option<SocketAddr>,
    /// Where SDK receipts are also sent back (POST, mutual TLS), as `https://` URL.
    pub receipt_url: Option<String>,
}

struct State {
    receiver: Receiver,
    xml_receiver: XmlReceiver,
    registered: BTreeSet<String>,
    filter: IpFilter,
    defects: Defects,
    log: Mutex<Vec<serde_json::Value>>,
    audit: Arc<Audit>,
    sender: Option<Arc<Sender>>,
    /// Role `client`: reads a peer's API when asked on `POST /admin/call`.
    api_client: Arc<ApiClient>,
    /// Changes to each organisation's holding (FMK-2.6.1-NOTIFY).
    changes: Changes,
    /// Client certificates' OCSP status (`--ocsp`), unless a defect skips it.
    ocsp: Option<OcspChecker>,
}

/// What the TLS layer established about the caller.
#[derive(Clone)]
struct Caller {
    peer: SocketAddr,
    /// The client address as settled at accept (the peer, or what a PROXY header said).
    client_ip: IpAddr,
    /// The address must still be checked from forwarding headers.
    check_headers: bool,
    has_cert: bool,
    org: Option<String>,
    /// Why the certificate was refused after the handshake (OCSP), if it was.
    refused: Option<String>,
}

/// A started reference IUT; its tasks stop when this is dropped.
pub(crate) struct Running {
    pub api: Vec<SocketAddr>,
    /// The admin port (the reference's own tests reach it directly).
    #[cfg_attr(not(test), allow(dead_code))]
    pub admin: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    sender: Option<Arc<Sender>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = &self.sender {
            s.stop();
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Runs until Ctrl-C or SIGTERM.
pub(crate) async fn run(opts: ReferenceOptions, sender: SenderOptions) -> anyhow::Result<()> {
    let running = start_with(opts, sender).await?;
    shutdown_signal().await;
    drop(running);
    Ok(())
}

/// Binds the ports, prints the ready line and serves in background tasks (sender off).
pub(crate) async fn start(opts: ReferenceOptions) -> anyhow::Result<Running> {
    start_with(opts, SenderOptions::default()).await
}

/// As [`start`], with the sender on when `sender.policy` is set; pending messages in the
/// outbox are resumed.
pub(crate) async fn start_with(
    opts: ReferenceOptions,
    sender: SenderOptions,
) -> anyhow::Result<Running> {
    if !opts.admin.ip().is_loopback() {
        bail!(
            "--admin {} is not a loopback address: the admin port is for local observation only",
            opts.admin
        );
    }
    let pki = Pki::load(&opts.pki_dir)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_cert = if opts.defects.has(Defect::UntrustedServerCert) {
        "server-untrusted".to_string()
    } else {
        opts.server_cert.clone()
    };
    let resolver = ByKeyType::load(&pki, &server_cert, &provider)?;
    let verifier = PolicyVerifier::new(&pki, provider.clone(), opts.defects.clone())?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let mut apis = Vec::new();
    for addr in &opts.api {
        apis.push(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the API port {addr}"))?,
        );
    }
    let admin = TcpListener::bind(opts.admin)
        .await
        .with_context(|| format!("binding the admin port {}", opts.admin))?;
    let inner = match opts.inner {
        Some(addr) => Some(
            super::surface::Inner::bind(
                addr,
                &pki,
                &opts.server_cert,
                &opts.registered_orgs,
                &opts.defects,
            )
            .await?,
        ),
        None => None,
    };
    let debug = if opts.defects.has(Defect::DebugPortExposed) {
        Some(super::surface::bind_debug().await?)
    } else {
        None
    };
    if sender.policy.is_none() && !sender.router.routes.is_empty() {
        bail!("--route needs --resend-policy FILE: the router retries by the declared resend policy (provsten writes it to {{out}}/resend-policy.json)");
    }
    let (sender_opts_cert, sender_opts_rate) = (sender.client_cert.clone(), sender.client_rate);
    let audit = Arc::new(Audit::new(
        !opts.defects.has(Defect::NoAudit),
        sender.retention,
    ));
    let sender = match &sender.policy {
        Some(policy) => Some(Arc::new(Sender::new(
            &pki,
            policy.clone(),
            &sender,
            opts.defects.clone(),
            audit.clone(),
        )?)),
        None => None,
    };
    // The API client asks the responder about servers as the API does about clients
    // (a client that checks nothing, `client-trusts-any-root`, asks nothing either).
    let client_ocsp = if opts.ocsp
        && !opts.defects.has(Defect::ClientIgnoresRevocation)
        && !opts.defects.has(Defect::ClientTrustsAnyRoot)
    {
        Some(OcspChecker::new(&pki)?)
    } else {
        None
    };
    let api_client = Arc::new(ApiClient::new(
        &pki,
        &sender_opts_cert,
        sender_opts_rate,
        opts.defects.clone(),
        client_ocsp,
    )?);
    let state = Arc::new(State {
        api_client,
        receiver: Receiver::new(audit.clone()),
        xml_receiver: XmlReceiver::new(
            Some(crate::schema::xml_signature::Trust::new(&pki)?),
            match &opts.receipt_url {
                Some(url) => Some(super::receipts::ReceiptPoster::new(
                    &pki,
                    url,
                    &sender_opts_cert,
                )?),
                None => None,
            },
        ),
        registered: opts.registered_orgs.iter().cloned().collect(),
        filter: IpFilter::new(
            opts.allowlist.clone(),
            opts.trusted_proxies.clone(),
            opts.defects.clone(),
        )?,
        defects: opts.defects.clone(),
        log: Mutex::new(Vec::new()),
        audit,
        sender: sender.clone(),
        changes: Changes::default(),
        // `ignore-crl` skips revocation altogether: OCSP would catch what the CRL does.
        ocsp: if opts.ocsp
            && !opts.defects.has(Defect::IgnoresOcsp)
            && !opts.defects.has(Defect::IgnoreCrl)
        {
            Some(OcspChecker::new(&pki)?)
        } else {
            None
        },
    });
    let defects: Vec<_> = opts.defects.iter().map(|d| d.name()).collect();
    let mut api_addrs = Vec::new();
    for l in &apis {
        api_addrs.push(l.local_addr()?);
    }
    let admin_addr = admin.local_addr()?;
    println!(
        "provsten reference IUT ready: api={} admin=http://{admin_addr} defects={}",
        api_addrs
            .iter()
            .map(|a| format!("https://{a}"))
            .collect::<Vec<_>>()
            .join(","),
        if defects.is_empty() {
            "none".to_string()
        } else {
            defects.join(",")
        }
    );
    // Resumed before the admin port serves: a message queued now is not resumed twice.
    if let Some(s) = &sender {
        s.resume();
    }
    let mut tasks = Vec::new();
    for l in apis {
        tasks.push(tokio::spawn(serve_api(l, acceptor.clone(), state.clone())));
    }
    if let Some(inner) = inner {
        tracing::debug!(addr = ?inner.local_addr(), "inner endpoint");
        tasks.push(tokio::spawn(inner.serve()));
    }
    if let Some(debug) = debug {
        tasks.push(tokio::spawn(super::surface::serve_debug(debug)));
    }
    tasks.push(tokio::spawn(serve_admin(admin, state)));
    Ok(Running {
        api: api_addrs,
        admin: admin_addr,
        tasks,
        sender,
    })
}

/// The server certificates, one per key type, chosen per ClientHello as nginx, HAProxy and
/// Apache do with two certificates: ECDSA for clients that can use it, RSA for the rest.
/// With only the EC certificate, no RSA-authenticated suite could ever be negotiated and
/// EB-TLS-1's probe of them would have nothing to examine.
#[derive(Debug)]
struct ByKeyType {
    /// Preference order: ECDSA (the catalogue's default key) first.
    keys: Vec<Arc<rustls::sign::CertifiedKey>>,
    suites: Vec<rustls::SupportedCipherSuite>,
}

impl ByKeyType {
    /// Certificate `name`, and its RSA twin `NAME-rsa` when the catalogue has one.
    fn load(
        pki: &Pki,
        name: &str,
        provider: &rustls::crypto::CryptoProvider,
    ) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        let twin = format!("{name}-rsa");
        let has_twin = pki.manifest.certificates.iter().any(|c| c.name == twin);
        for n in std::iter::once(name).chain(has_twin.then_some(twin.as_str())) {
            let (chain, key) = pki
                .identity(n)
                .with_context(|| format!("loading the server certificate {n:?}"))?;
            let certified = rustls::sign::CertifiedKey::from_der(chain, key, provider)
                .with_context(|| format!("server certificate {n:?} and its key do not match"))?;
            keys.push(Arc::new(certified));
        }
        Ok(ByKeyType {
            keys,
            suites: provider.cipher_suites.clone(),
        })
    }
}

impl rustls::server::ResolvesServerCert for ByKeyType {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        // A key fits when the client accepts one of its signature schemes and offers a
        // suite it can authenticate (any TLS 1.3 suite; in TLS 1.2, ECDHE_ECDSA_* or
        // ECDHE_RSA_*). Otherwise the first key: rustls then refuses the handshake.
        let offered = hello.cipher_suites();
        let fits = |key: &rustls::sign::CertifiedKey| {
            let alg = key.key.algorithm();
            key.key.choose_scheme(hello.signature_schemes()).is_some()
                && self
                    .suites
                    .iter()
                    .any(|s| offered.contains(&s.suite()) && s.usable_for_signature_algorithm(alg))
        };
        self.keys
            .iter()
            .find(|k| fits(k))
            .or_else(|| self.keys.first())
            .cloned()
    }
}

/// Ctrl-C or SIGTERM, whichever comes first (what process managers and provsten send).
pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// The `short-read-timeout` defect's handshake deadline.
const SHORT_HANDSHAKE_MS: u64 = 1000;

async fn serve_api(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<State>) {
    loop {
        let Ok((mut tcp, peer)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let (admission, client_ip) = state.filter.admit(&mut tcp, peer).await;
            if admission == Admission::Refuse {
                tracing::debug!(%peer, %client_ip, "source address not registered: reset");
                // A reset, as a packet filter's reject would send.
                let _ = tcp.set_zero_linger();
                return;
            }
            if (state.defects.has(Defect::AcceptLegacyTls)
                || state.defects.has(Defect::AcceptWeakSuites))
                && answer_defective_hello(&mut tcp, &state.defects).await
            {
                return;
            }
            if state.defects.has(Defect::PlaintextPortOpen) && !starts_with_tls(&tcp).await {
                serve_plaintext(tcp, peer, client_ip, state).await;
                return;
            }
            // The defect: a deadline that only a fast network meets. The degraded links of
            // network_faults.feature take over 1.2 s; a loaded 2-core machine's own
            // handshakes (dozens at a run's start) stay under 1 s.
            let deadline = if state.defects.has(Defect::ShortReadTimeout) {
                Duration::from_millis(SHORT_HANDSHAKE_MS)
            } else {
                HANDSHAKE_DEADLINE
            };
            let tls = match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec());
            let refused = match (&state.ocsp, &leaf) {
                (Some(checker), Some(leaf)) => checker.check(leaf).await.err(),
                _ => None,
            };
            let caller = Caller {
                peer,
                client_ip,
                check_headers: admission == Admission::CheckHeaders,
                has_cert: leaf.is_some(),
                org: leaf.as_deref().and_then(org_number),
                refused,
            };
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let caller = caller.clone();
                async move { Ok::<_, Infallible>(api(&state, &caller, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tls), svc);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
        });
    }
}

/// Whether the client's first byte opens a TLS handshake record (what a plain-HTTP
/// listener beside TLS would look at); a silent client is left to TLS.
async fn starts_with_tls(tcp: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_DEADLINE, tcp.peek(&mut first)).await {
        Ok(Ok(1)) => first[0] == 0x16,
        _ => true,
    }
}

/// `plaintext-port-open`: plain HTTP served on the TLS port, as the first registered
/// organisation.
async fn serve_plaintext(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    client_ip: IpAddr,
    state: Arc<State>,
) {
    let caller = Caller {
        peer,
        client_ip,
        check_headers: false,
        has_cert: true,
        org: state.registered.iter().next().cloned(),
        refused: None,
    };
    let svc = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let caller = caller.clone();
        async move { Ok::<_, Infallible>(api(&state, &caller, req).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let _ = tokio::time::timeout(
        CONNECTION_DEADLINE,
        builder.serve_connection(TokioIo::new(tcp), svc),
    )
    .await;
}

/// Versions this API serves: the current one, and a deprecated one kept until its sunset.
const CURRENT_VERSION: &str = "v1";
const DEPRECATED_VERSION: &str = "v0";
/// RFC 9745 `Deprecation` (a structured date: 2026-01-01) and RFC 8594 `Sunset`.
const DEPRECATION: &str = "@1767225600";
const SUNSET: &str = "Thu, 01 Apr 2027 00:00:00 GMT";

async fn api(
    state: &State,
    caller: &Caller,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    let client_ip = if caller.check_headers {
        IpFilter::client_from_headers(req.headers(), caller.client_ip)
    } else {
        caller.client_ip
    };
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut extra = Vec::new();
    let (status, body) = if caller.check_headers && !state.filter.allows(client_ip) {
        forbidden("the source address is not registered")
    } else if let Some(why) = &caller.refused {
        forbidden(why)
    } else {
        // One byte over the limit is enough to know the body is too large.
        let limit = crate::schema::Limits::default().max_body_bytes + 1;
        let body = match http_body_util::Limited::new(req.into_body(), limit)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes().to_vec(),
            Err(_) => vec![0; limit],
        };
        route(
            state,
            caller,
            &method,
            (&path, &query),
            content_type.as_deref(),
            &body,
            &mut extra,
        )
    };
    if let Ok(mut log) = state.log.lock() {
        if log.len() < REQUEST_LOG_CAP {
            log.push(json!({
                "peer": caller.peer.to_string(),
                "client": client_ip.to_string(),
                "org": caller.org,
                "method": method.as_str(),
                "path": path,
                "query": (!query.is_empty()).then_some(&query),
                "status": status.as_u16(),
            }));
        }
    }
    // The XML receiver answers with its receipt.
    let mut r = match body.get(RECEIPT).and_then(serde_json::Value::as_str) {
        Some(receipt) => xml_response(status, receipt.to_owned()),
        None => json_response(status, body),
    };
    for (k, v) in extra {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

fn route(
    state: &State,
    caller: &Caller,
    method: &Method,
    (path, query): (&str, &str),
    content_type: Option<&str>,
    body: &[u8],
    extra: &mut Vec<(&'static str, String)>,
) -> (StatusCode, serde_json::Value) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let Some((version, rest)) = segments.split_first() else {
        return (StatusCode::NOT_FOUND, json!({"error": "not found"}));
    };
    let looks_versioned = version.len() > 1
        && version.starts_with('v')
        && version[1..].chars().all(|c| c.is_ascii_digit());
    if !looks_versioned {
        return (StatusCode::NOT_FOUND, json!({"error": "not found"}));
    }
    let lax = state.defects.has(Defect::NoVersionCheck);
    if *version == DEPRECATED_VERSION && !lax {
        extra.push(("deprecation", DEPRECATION.to_string()));
        extra.push(("sunset", SUNSET.to_string()));
        extra.push((
            "link",
            format!(
                "</{CURRENT_VERSION}/{}>; rel=\"successor-version\"",
                rest.join("/")
            ),
        ));
    } else if *version != CURRENT_VERSION && !lax {
        return (
            StatusCode::BAD_REQUEST,
            json!({
                "error": format!("unsupported API version {version:?}"),
                "supported_versions": [CURRENT_VERSION],
                "deprecated_versions": [{"version": DEPRECATED_VERSION, "sunset": SUNSET}],
            }),
        );
    }
    match (method, rest) {
        (&Method::GET, ["health"]) => (StatusCode::OK, json!({"status": "ok", "version": version})),
        (&Method::GET, ["orgs", org, "fullmakter"]) => match changes::window_query(query) {
            Ok(None) => fullmakter(state, caller, org),
            Ok(Some((from, to))) => changed_in_window(state, caller, org, from, to),
            Err(e) => (StatusCode::BAD_REQUEST, json!({"error": e})),
        },
        (&Method::POST, ["orgs", org, "fullmakter"]) => change(state, caller, org, body),
        (&Method::POST, rest) if XmlReceiver::handles(rest) => {
            state
                .xml_receiver
                .receive(rest, content_type, body, &state.defects)
        }
        (&Method::POST, [endpoint]) if Receiver::handles(endpoint) => {
            state
                .receiver
                .receive(endpoint, content_type, body, &state.defects)
        }
        _ => (StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}

/// Whether the caller may see or change `org`'s holding: `Some` refusal if not.
fn refusal(state: &State, caller: &Caller, org: &str) -> Option<(StatusCode, serde_json::Value)> {
    let d = &state.defects;
    if d.has(Defect::RefuseValidClients) {
        return Some(forbidden("access denied"));
    }
    // Only reachable without a certificate under the accept-no-cert defect.
    if caller.has_cert || !d.has(Defect::AcceptNoCert) {
        match &caller.org {
            None if !d.has(Defect::IgnoreOrgNumber) => {
                return Some(forbidden(
                    "the client certificate carries no organisation number",
                ));
            }
            Some(own) if !state.registered.contains(own) && !d.has(Defect::IgnoreOrgNumber) => {
                return Some(forbidden(
                    "the organisation in the client certificate is not registered",
                ));
            }
            Some(own) if own != org && !d.has(Defect::NoTenantIsolation) => {
                // Same answer as for an unknown organisation: do not confirm it exists.
                return Some((StatusCode::NOT_FOUND, json!({"error": "not found"})));
            }
            _ => {}
        }
    }
    None
}

/// The protected resource: the powers of attorney registered for one organisation, then
/// the items changed through the API, oldest first.
fn fullmakter(state: &State, caller: &Caller, org: &str) -> (StatusCode, serde_json::Value) {
    if let Some(r) = refusal(state, caller, org) {
        return r;
    }
    let mut records = if state.registered.contains(org) {
        vec![json!({
            "id": format!("FM-{org}-001"),
            "organisation": org,
            "fullmaktsgivare": "191212121212",
            "omfattning": "forsakringsinformation",
            "giltig_till": "2027-12-31",
        })]
    } else {
        Vec::new()
    };
    records.extend(state.changes.of_org(org).iter().map(|c| c.item()));
    (
        StatusCode::OK,
        json!({"organisation": org, "fullmakter": records}),
    )
}

/// `POST /v1/orgs/{org}/fullmakter`: one change to the holding, with a fresh id and a
/// change time later than every earlier one.
fn change(
    state: &State,
    caller: &Caller,
    org: &str,
    body: &[u8],
) -> (StatusCode, serde_json::Value) {
    if let Some(r) = refusal(state, caller, org) {
        return r;
    }
    if !state.registered.contains(org) {
        return (StatusCode::NOT_FOUND, json!({"error": "not found"}));
    }
    let fields = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"error": "the body must be a JSON object"}),
                )
            }
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("the body is not JSON: {e}")}),
                )
            }
        }
    };
    match state.changes.record(org, fields) {
        Some(c) => (
            StatusCode::CREATED,
            json!({"id": c.id, "changedAt": changes::format_time(c.at)}),
        ),
        None => (
            StatusCode::INSUFFICIENT_STORAGE,
            json!({"error": "the reference IUT keeps at most 100000 changes"}),
        ),
    }
}

/// `GET /v1/orgs/{org}/fullmakter?changedFrom=…&changedTo=…`: what changed in the window.
fn changed_in_window(
    state: &State,
    caller: &Caller,
    org: &str,
    from: time::OffsetDateTime,
    to: time::OffsetDateTime,
) -> (StatusCode, serde_json::Value) {
    if let Some(r) = refusal(state, caller, org) {
        return r;
    }
    let items: Vec<_> = state
        .changes
        .window(org, from, to, &state.defects)
        .iter()
        .map(|c| c.item())
        .collect();
    (
        StatusCode::OK,
        json!({
            "organisation": org,
            "changedFrom": changes::format_time(from),
            "changedTo": changes::format_time(to),
            "fullmakter": items,
        }),
    )
}

fn forbidden(why: &str) -> (StatusCode, serde_json::Value) {
    (StatusCode::FORBIDDEN, json!({"error": why}))
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    json_text_response(status, body.to_string())
}

fn xml_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = json_text_response(status, body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    r
}

fn json_text_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn serve_admin(listener: TcpListener, state: Arc<State>) {
    let own = listener.local_addr().map(|a| a.ip()).ok();
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        // Only the harness on this machine (127.0.0.1, ::1, or the admin address itself):
        // another loopback source is a client, refused as a firewall rule would.
        let harness = peer.ip() == IpAddr::from([127, 0, 0, 1])
            || peer.ip() == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            || Some(peer.ip()) == own;
        if !harness && !state.defects.has(Defect::AdminPortUnfiltered) {
            tracing::debug!(%peer, "admin port: not the harness's address: reset");
            let _ = tcp.set_zero_linger();
            continue;
        }
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move {
                    let resp = match (req.method(), req.uri().path()) {
                        (&Method::POST, "/admin/send") => {
                            let (status, body) = admin_send(&state, req, false).await;
                            json_response(status, body)
                        }
                        (&Method::POST, "/admin/call") => {
                            let (status, body) = admin_call(&state, req).await;
                            json_response(status, body)
                        }
                        (&Method::POST, "/admin/send-batch") => {
                            let (status, body) = admin_send(&state, req, true).await;
                            json_response(status, body)
                        }
                        (_, "/admin/routes") => {
                            let lane = match lane(req.uri().query()) {
                                Ok(l) => l,
                                Err(e) => {
                                    return Ok(json_response(
                                        StatusCode::BAD_REQUEST,
                                        json!({"error": e}),
                                    ))
                                }
                            };
                            match state.sender.as_ref().and_then(|s| s.router(lane)) {
                                Some(r) => json_response(StatusCode::OK, r.describe()),
                                None => json_response(
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    json!({"error": "the router is off: start the reference IUT with --route NAME=https://HOST:PORT/PATH (repeatable) and --resend-policy FILE"}),
                                ),
                            }
                        }
                        (_, "/admin/undeliverable") => json_response(
                            StatusCode::OK,
                            json!(sender_ids(&state, MessageState::Undeliverable)),
                        ),
                        (_, "/admin/outbox") => outbox(&state, req.uri().query()),
                        (_, "/admin/audit") => {
                            json_text_response(StatusCode::OK, state.audit.json())
                        }
                        (_, "/admin/status") => json_response(
                            StatusCode::OK,
                            json!({
                                "defects": state.defects.iter().map(|d| d.name()).collect::<Vec<_>>(),
                                "registered_orgs": state.registered,
                                "registered_ranges": state.filter.ranges(),
                                "sender": state.sender.as_ref().map(|s| s.describe()),
                            }),
                        ),
                        (&Method::POST, "/admin/reload") => match state.filter.reload() {
                            Ok(n) => json_response(StatusCode::OK, json!({"registered_ranges": n})),
                            Err(e) => json_response(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                json!({"error": format!("{e:#}")}),
                            ),
                        },
                        (_, "/admin/accepted") => {
                            let mut ids = state.receiver.accepted();
                            ids.extend(state.xml_receiver.accepted());
                            json_response(StatusCode::OK, json!(ids))
                        }
                        (_, "/admin/requests") => {
                            let log = state.log.lock().map(|l| l.clone()).unwrap_or_default();
                            json_response(StatusCode::OK, json!(log))
                        }
                        _ => json_response(StatusCode::NOT_FOUND, json!({"error": "not found"})),
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
            let _ = tokio::time::timeout(ADMIN_CONNECTION_DEADLINE, conn).await;
        });
    }
}

/// `GET /admin/outbox`: the pending ids; `?detail`: every record (state, route,
/// attempts…, no body); `?id=ID`: that one record.
fn outbox(state: &State, query: Option<&str>) -> Response<Full<Bytes>> {
    let mut detail = false;
    let mut id = None;
    for pair in query.unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("id", v)) => id = Some(super::query_value(v)),
            None if pair == "detail" => detail = true,
            Some(("detail", v)) => detail = v != "0" && v != "false",
            _ => {}
        }
    }
    if !detail && id.is_none() {
        return json_response(
            StatusCode::OK,
            json!(sender_ids(state, MessageState::Pending)),
        );
    }
    let found = state.sender.as_ref().and_then(|s| s.records(id.as_deref()));
    match (found, id) {
        (Some(v), _) => json_response(StatusCode::OK, v),
        (None, Some(id)) => json_response(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no message {id:?} in the outbox")}),
        ),
        (None, None) => json_response(StatusCode::OK, json!([])),
    }
}

fn sender_ids(state: &State, which: MessageState) -> Vec<String> {
    state
        .sender
        .as_ref()
        .map(|s| s.ids(which))
        .unwrap_or_default()
}

/// Largest `POST /admin/send` request read.
const SEND_REQUEST_LIMIT: usize = 4 << 20;
/// Largest `POST /admin/send-batch` request read.
const BATCH_REQUEST_LIMIT: usize = 64 << 20;

async fn admin_send(
    state: &State,
    req: Request<hyper::body::Incoming>,
    batch: bool,
) -> (StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    let Some(sender) = &state.sender else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "the sender is off: start the reference IUT with --resend-policy FILE (and --outbox DIR)"}),
        );
    };
    let lane = match lane(req.uri().query()) {
        Ok(l) => l,
        Err(e) => return (StatusCode::BAD_REQUEST, json!({ "error": e })),
    };
    let limit = if batch {
        BATCH_REQUEST_LIMIT
    } else {
        SEND_REQUEST_LIMIT
    };
    let body = match http_body_util::Limited::new(req.into_body(), limit)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                json!({"error": format!("the request body could not be read ({e}); at most {limit} bytes")}),
            )
        }
    };
    if batch {
        sender.queue_batch(&body, lane).await
    } else {
        sender.queue(&body, lane).await
    }
}

/// `POST /admin/call {"to", "calls"}` (role client): read `to` that many times.
async fn admin_call(
    state: &State,
    req: Request<hyper::body::Incoming>,
) -> (StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(req.into_body(), SEND_REQUEST_LIMIT)
        .collect()
        .await
    {
        Ok(b) => state.api_client.call(&b.to_bytes()),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            json!({"error": format!("the request body could not be read ({e})")}),
        ),
    }
}

/// `?lane=N` (from 1; 1 when absent): which router lane a routed message goes through.
fn lane(query: Option<&str>) -> Result<u16, String> {
    for pair in query.unwrap_or_default().split('&') {
        if let Some(v) = pair.strip_prefix("lane=") {
            return match v.parse::<u16>() {
                Ok(l) if l >= 1 => Ok(l),
                _ => Err(format!("lane={v:?} is not a router lane number from 1")),
            };
        }
    }
    Ok(1)
}
