//! A real third-party IUT: nginx, configured from the generated PKI, certified through a
//! provsten config that starts and stops it. With `ssl_verify_client on` it must pass the
//! mTLS and TLS features; with `optional` (and an application that assumes the TLS layer
//! refused bad clients) the run must fail on EB-AUTH-1. nginx refuses bad certificates at
//! HTTP level (400 after the handshake), and the report must say so.
//!
//! CI installs nginx; set `PROVSTEN_SKIP_NGINX=1` to skip on machines without it.

use std::path::{Path, PathBuf};

use super::util::{free_port, pki_init, run, Run};

fn nginx_binary() -> Option<PathBuf> {
    if std::env::var_os("PROVSTEN_SKIP_NGINX").is_some_and(|v| v == "1") {
        eprintln!("skipping: PROVSTEN_SKIP_NGINX=1");
        return None;
    }
    for p in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return Some(PathBuf::from(p));
        }
    }
    panic!("nginx is needed for this test (apt-get install nginx-light); set PROVSTEN_SKIP_NGINX=1 to skip");
}

/// How the nginx under test filters source addresses.
#[derive(Clone, Copy, PartialEq)]
enum IpFilter {
    /// No filtering: the IP scenarios are not applicable.
    None,
    /// `allow`/`deny` rules from allow.conf, made from provsten's allowlist.
    AllowDeny,
    /// The classic mistake: the client address taken from X-Forwarded-For sent by anyone.
    AllowDenyTrustingXff,
}

/// ECDHE with AEAD only: what EB-TLS-1 asks of TLS 1.2 (TLS 1.3 suites are separate).
const MODERN_CIPHERS: &str = "ECDHE+AESGCM:ECDHE+CHACHA20";

/// nginx's TLS settings under test.
struct Tls {
    /// `ssl_ciphers`.
    ciphers: &'static str,
    /// Whether the RSA certificate is configured beside the ECDSA one.
    rsa_certificate: bool,
    /// `ssl_ocsp on;`: nginx asks the responder in the client certificate's AIA.
    ocsp: bool,
    /// What provsten.toml declares: `[pki] revocation = ["crl", "ocsp"]`.
    declare_ocsp: bool,
}

const MODERN: Tls = Tls {
    ciphers: MODERN_CIPHERS,
    rsa_certificate: true,
    ocsp: false,
    declare_ocsp: false,
};

fn nginx_conf(
    dir: &Path,
    port: u16,
    port6: u16,
    verify_client: &str,
    ip: IpFilter,
    tls: &Tls,
) -> String {
    let ciphers = tls.ciphers;
    // Both certificates `provsten init` issues, as the generated provsten.toml says.
    let rsa = if tls.rsa_certificate {
        format!(
            "ssl_certificate {0}/iut-server-rsa.chain.pem;\n        ssl_certificate_key {0}/iut-server-rsa.key.pem;",
            dir.join("pki").display()
        )
    } else {
        String::new()
    };
    let pki = dir.join("pki");
    // nginx ≥ 1.19 asks the responder named in the certificate's AIA (a loopback IP: no
    // `resolver` needed); `ssl_ocsp_responder URL;` would override it.
    let ocsp = if tls.ocsp { "ssl_ocsp on;" } else { "" };
    let filter = match ip {
        IpFilter::None => String::new(),
        IpFilter::AllowDeny => format!("listen [::1]:{port6} ssl;\n        include {}/allow.conf;", dir.display()),
        IpFilter::AllowDenyTrustingXff => format!(
            "listen [::1]:{port6} ssl;\n        include {}/allow.conf;\n        real_ip_header X-Forwarded-For;\n        set_real_ip_from 0.0.0.0/0;\n        set_real_ip_from ::/0;",
            dir.display()
        ),
    };
    format!(
        r#"
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;

    # organisation number from the certificate subject's serialNumber attribute
    map $ssl_client_s_dn $client_org {{
        "~(^|,)serialNumber=(?<num>[0-9]+)(,|$)" $num;
        default "";
    }}
    map $client_org $org_registered {{
        5560000001 1;
        5560000002 1;
        default 0;
    }}
    # The application trusts that nginx refused clients without a valid certificate:
    # right with `ssl_verify_client on`, a hole with `optional`. (A map, not `if`+`set`:
    # `if` in a location swaps the content handler.)
    map $ssl_client_verify $gate {{
        SUCCESS "$org_registered:$client_org";
        default "1:$org";
    }}

    server {{
        listen 127.0.0.1:{port} ssl;
        {filter}
        server_name iut.localhost;
        ssl_certificate {pki}/iut-server.chain.pem;
        ssl_certificate_key {pki}/iut-server.key.pem;
        {rsa}
        ssl_client_certificate {pki}/trust.pem;
        ssl_verify_client {verify_client};
        ssl_verify_depth 3;
        ssl_crl {pki}/crl-bundle.pem;
        {ocsp}
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers {ciphers};
        default_type application/json;
        # Content comes from files (try_files) rather than `return`: `return` runs in the
        # rewrite phase, before `allow`/`deny` are ever looked at.
        root {dir}/www;

        location = /v1/health {{
            try_files /health.json =404;
        }}
        location ~ ^/v1/orgs/(?<org>[0-9]+)/fullmakter$ {{
            if ($gate != "1:$org") {{
                return 403 '{{"error":"forbidden"}}';
            }}
            try_files /orgs/$org.json =404;
        }}
    }}
}}
"#,
        dir = dir.display(),
        pki = pki.display()
    )
}

/// allowlist.txt (written by provsten) → nginx allow/deny rules. Written aside and renamed:
/// nginx re-reads its config asynchronously after `-s reload`, so a file truncated in place
/// by the next reload could be read half-written — without its `deny all;`.
const TO_ALLOW_CONF: &str = "sed -e '/^#/d' -e '/^$/d' -e 's/.*/allow &;/' allowlist.txt > allow.conf.new && echo 'deny all;' >> allow.conf.new && mv allow.conf.new allow.conf";

fn provsten_conf(
    dir: &Path,
    nginx: &Path,
    (port, port6): (u16, u16),
    ip: IpFilter,
    declare_ocsp: bool,
) -> String {
    let revocation = if declare_ocsp {
        r#"revocation = ["crl", "ocsp"]"#
    } else {
        ""
    };
    let (start, ip_filter) = if ip == IpFilter::None {
        (
            format!(
                r#"command = ["{}", "-p", "{{config_dir}}", "-c", "{{config_dir}}/nginx.conf"]"#,
                nginx.display()
            ),
            String::new(),
        )
    } else {
        let n = nginx.display();
        (
            format!(r#"command = ["sh", "-c", "{TO_ALLOW_CONF} && exec {n} -p . -c nginx.conf"]"#),
            format!(
                r#"
[ip_filter]
registered_ranges = ["127.0.0.1/32", "127.0.0.8/29"]
allowlist_file = "allowlist.txt"
reload = {{ command = ["sh", "-c", "{TO_ALLOW_CONF} && {n} -p . -c nginx.conf -s reload"] }}
reload_timeout = "10s"
ipv6_base_url = "https://[::1]:{port6}"
"#
            ),
        )
    };
    format!(
        r#"
[iut]
name = "nginx"
roles = ["server"]

[iut.start]
{start}
stop_timeout = "5s"

[iut.ready]
check = "https"
timeout = "20s"
client_cert = "client-5560000001"

[api]
base_url = "https://127.0.0.1:{port}"
server_name = "iut.localhost"
registered_orgs = ["5560000001", "5560000002"]

[pki]
dir = "{pki}"
{revocation}
{ip_filter}

# FMK-2.2-FW: nginx's only listeners (provsten reads them from its master and workers).
[firewall]
ports = [{port}, {port6}]
"#,
        pki = dir.join("pki").display()
    )
}

fn certify_nginx(verify_client: &str, ip: IpFilter) -> Option<(tempfile::TempDir, Run)> {
    certify_nginx_with(verify_client, ip, &MODERN, &[])
}

/// As [`certify_nginx`], with other TLS settings and extra `provsten run` arguments.
fn certify_nginx_with(
    verify_client: &str,
    ip: IpFilter,
    tls: &Tls,
    run_args: &[&str],
) -> Option<(tempfile::TempDir, Run)> {
    let nginx = nginx_binary()?;
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    // nginx's workers run unprivileged: they must be able to read the content (the
    // private keys stay 0600; only the root master reads them).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("orgs")).unwrap();
    std::fs::write(www.join("health.json"), r#"{"status":"ok"}"#).unwrap();
    for org in ["5560000001", "5560000002"] {
        std::fs::write(
            www.join(format!("orgs/{org}.json")),
            format!(r#"{{"organisation":"{org}","fullmakter":[{{"id":"FM-{org}-001"}}]}}"#),
        )
        .unwrap();
    }
    let port = free_port();
    let port6 = std::net::TcpListener::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path().join("nginx.conf"),
        nginx_conf(dir.path(), port, port6, verify_client, ip, tls),
    )
    .unwrap();
    let cfg = dir.path().join("provsten.toml");
    std::fs::write(
        &cfg,
        provsten_conf(dir.path(), &nginx, (port, port6), ip, tls.declare_ocsp),
    )
    .unwrap();
    let mut args = vec!["--config", cfg.to_str().unwrap()];
    args.extend_from_slice(run_args);
    let r = run(&dir.path().join("out"), &args);
    Some((dir, r))
}

#[test]
fn nginx_with_verify_client_on_is_compliant_and_refusals_are_reported_as_http_level() {
    let Some((dir, r)) = certify_nginx("on", IpFilter::None) else {
        return;
    };
    let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert_eq!(r.code(), 0, "{}\nnginx error.log:\n{log}", r.explain());
    for req in [
        "EB-AUTH-1",
        "EB-MTLS-1",
        "EB-MTLS-2",
        "EB-TLS-1",
        "FMK-2.1-MTLS",
        "FMK-2.1-CA",
        "FMK-2.1-REVOKE",
        "SDK-4.1-ISOLATION",
        "SDK-5.4-KEYS",
        "FMK-2.2-FW",
    ] {
        assert!(
            r.with_verdict("pass").contains(req),
            "{req}: {:?}",
            r.with_verdict("pass")
        );
    }
    // Plain HTTP to nginx's TLS port gets its 400 page, a refusal without data.
    let plain = r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["name"].as_str().is_some_and(|n| {
                n.starts_with("an HTTP/1.1 request for protected data in plain text")
            })
        })
        .expect("plain-HTTP scenario");
    let ev = serde_json::to_string(&plain["evidence"]).unwrap();
    assert_eq!(plain["status"], "passed", "{ev}");
    assert!(
        ev.contains("The plain HTTP request was sent to HTTPS port")
            && ev.contains("HTTP error page"),
        "{ev}"
    );
    // Its listeners are found in its process group, and none is undeclared.
    let ports = r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "only the declared ports answer a client address")
        .expect("port scenario");
    let ev = serde_json::to_string(&ports["evidence"]).unwrap();
    assert_eq!(ports["status"], "passed", "{ev}");
    assert!(ev.contains("(nginx pid "), "{ev}");
    // nginx answers 400 after the handshake for an expired certificate: an HTTP-level refusal.
    let expired = r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.contains("client-expired (TLS 1.3)"))
        })
        .expect("expired scenario");
    let ev = serde_json::to_string(&expired["evidence"]).unwrap();
    assert!(
        ev.contains("\"how\":\"http-status\"") && ev.contains("\"status\":400"),
        "{ev}"
    );
    assert!(ev.contains("not with a TLS rejection"), "{ev}");
    // Not declared to check OCSP: the certificate revoked since the last CRL proves
    // nothing about it, and the report says why instead of a verdict.
    let ocsp = ocsp_scenarios(&r);
    assert_eq!(ocsp.len(), 2, "{}", r.explain());
    for (status, _) in &ocsp {
        assert_eq!(status, "not-applicable");
    }
    let reasons: Vec<_> = r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.contains("checks OCSP"))
        })
        .map(|s| s["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        reasons
            .iter()
            .all(|m| m.contains("does not declare OCSP checking")),
        "{reasons:?}"
    );
}

#[test]
fn nginx_with_verify_client_optional_fails_eb_auth_1() {
    let Some((_dir, r)) = certify_nginx("optional", IpFilter::None) else {
        return;
    };
    assert_eq!(r.code(), 1, "{}", r.explain());
    let failed = r.with_verdict("fail");
    assert!(failed.contains("EB-AUTH-1"), "{failed:?}");
    assert!(failed.contains("FMK-2.1-MTLS"), "{failed:?}");
}

#[test]
fn nginx_with_allow_deny_rules_passes_ip_filtering_and_reloads_its_list() {
    let Some((dir, r)) = certify_nginx("on", IpFilter::AllowDeny) else {
        return;
    };
    let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert_eq!(r.code(), 0, "{}\nnginx error.log:\n{log}", r.explain());
    let passed = r.with_verdict("pass");
    assert!(
        passed.contains("EB-IP-1") && passed.contains("EB-IP-2"),
        "{passed:?}"
    );
    // nginx has no dual-stack listener here: those IP scenarios say so instead of passing.
    let na: Vec<_> = r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["status"] == "not-applicable" && s["feature"] == "features/ip_filtering.feature"
        })
        .map(|s| s["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(na.iter().all(|m| m.contains("dual-stack")), "{na:?}");
}

#[test]
fn nginx_trusting_x_forwarded_for_from_anyone_fails_the_forged_header_scenario() {
    let Some((_dir, r)) = certify_nginx("on", IpFilter::AllowDenyTrustingXff) else {
        return;
    };
    assert_eq!(r.code(), 1, "{}", r.explain());
    assert_eq!(
        r.with_verdict("fail").into_iter().collect::<Vec<_>>(),
        vec!["EB-IP-1".to_string()]
    );
    let failed: Vec<_> = r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .map(|s| s["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        failed,
        vec!["a forged X-Forwarded-For header does not let an unregistered client in"]
    );
}

/// Only the TLS feature's requirement: these tests are about cipher suites.
const EB_TLS_1: &[&str] = &["--tags", "@req:EB-TLS-1"];

/// The weak-suite scenario's evidence: the step's record with the per-key-type findings.
fn weak_suite_evidence(r: &Run) -> serde_json::Value {
    let sc = r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.contains("only weak cipher suites"))
        })
        .expect("weak-suite scenario")
        .clone();
    sc["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e.to_string().contains("weak_suites"))
        .unwrap_or_else(|| panic!("no weak-suite evidence: {sc}"))
        .clone()
}

/// Debian's nginx on OpenSSL 3 with `ssl_ciphers DEFAULT` and both certificates negotiates
/// plain-RSA and CBC-SHA1 suites (`openssl ciphers -v DEFAULT` lists AES128-SHA and
/// ECDHE-RSA-AES128-SHA): EB-TLS-1 must fail and name them.
#[test]
fn nginx_with_openssl_default_ciphers_fails_eb_tls_1_naming_the_weak_suites() {
    let tls = Tls {
        ciphers: "DEFAULT",
        rsa_certificate: true,
        ..MODERN
    };
    let Some((dir, r)) = certify_nginx_with("on", IpFilter::None, &tls, EB_TLS_1) else {
        return;
    };
    let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert_eq!(r.code(), 1, "{}\nnginx error.log:\n{log}", r.explain());
    assert_eq!(
        r.with_verdict("fail").into_iter().collect::<Vec<_>>(),
        vec!["EB-TLS-1".to_string()]
    );
    let ev = weak_suite_evidence(&r);
    let accepted = ev["accepted"].to_string();
    eprintln!("nginx DEFAULT accepted: {accepted}");
    assert!(
        accepted.contains("RSA offer: TLS_RSA_WITH_AES_128_CBC_SHA (0x002f): RSA key exchange"),
        "{ev:#}"
    );
    assert!(
        accepted.contains("ECDSA offer: TLS_ECDHE_ECDSA_WITH_AES_"),
        "{ev:#}"
    );
    assert_eq!(ev["not_examinable"], serde_json::json!([]), "{ev:#}");
}

/// The same nginx with ECDHE+AEAD only passes, and was examined with both certificates.
#[test]
fn nginx_with_ecdhe_aead_ciphers_passes_eb_tls_1_examined_with_both_certificates() {
    let tls = Tls {
        ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
        rsa_certificate: true,
        ..MODERN
    };
    let Some((dir, r)) = certify_nginx_with("on", IpFilter::None, &tls, EB_TLS_1) else {
        return;
    };
    let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert_eq!(r.code(), 0, "{}\nnginx error.log:\n{log}", r.explain());
    assert!(r.with_verdict("pass").contains("EB-TLS-1"));
    let ev = weak_suite_evidence(&r);
    assert_eq!(ev["accepted"], serde_json::json!([]), "{ev:#}");
    assert_eq!(ev["not_examinable"], serde_json::json!([]), "{ev:#}");
    for class in ev["weak_suites"].as_array().unwrap() {
        assert_eq!(class["answer"]["outcome"], "alert", "{class:#}");
        assert_eq!(class["control"]["outcome"], "server-hello", "{class:#}");
    }
}

/// With the ECDSA certificate only, no RSA-authenticated suite can be negotiated: the
/// evidence says the RSA suites could not be examined instead of counting them refused,
/// and the ECDSA CBC-SHA1 suites of `DEFAULT` still fail the check.
#[test]
fn nginx_with_only_the_ecdsa_certificate_reports_rsa_suites_as_not_examinable() {
    let tls = Tls {
        ciphers: "DEFAULT",
        rsa_certificate: false,
        ..MODERN
    };
    let Some((_dir, r)) = certify_nginx_with("on", IpFilter::None, &tls, EB_TLS_1) else {
        return;
    };
    assert_eq!(r.code(), 1, "{}", r.explain());
    let ev = weak_suite_evidence(&r);
    let not_examinable = ev["not_examinable"].to_string();
    assert!(
        not_examinable.contains("RSA-authenticated suites: the server offered no RSA certificate"),
        "{ev:#}"
    );
    let accepted = ev["accepted"].to_string();
    assert!(
        accepted.contains("ECDSA offer: TLS_ECDHE_ECDSA_WITH_AES_"),
        "{ev:#}"
    );
    assert!(!accepted.contains("RSA offer"), "{ev:#}");
}

/// Issue 14 item 7: nginx configured as `provsten init` says, serving an empty data set
/// (`[]`, no organisation number in the body), is a correct mTLS server and passes the
/// positive controls with the default `[api.granted]` (any 2xx).
#[test]
fn nginx_serving_no_organisation_data_passes_the_positive_controls() {
    let tags = ["--tags", "@req:EB-AUTH-1 or @req:EB-MTLS-2"];
    let Some((dir, r)) = certify_nginx_with("on", IpFilter::None, &MODERN, &tags) else {
        return;
    };
    assert_eq!(r.code(), 0, "{}", r.explain());
    for org in ["5560000001", "5560000002"] {
        std::fs::write(dir.path().join(format!("www/orgs/{org}.json")), "[]").unwrap();
    }
    let cfg = dir.path().join("provsten.toml");
    let mut args = vec!["--config", cfg.to_str().unwrap()];
    args.extend_from_slice(&tags);
    let r = run(&dir.path().join("out-empty"), &args);
    assert_eq!(r.code(), 0, "{}", r.explain());
    let pass = r.with_verdict("pass");
    for id in ["EB-AUTH-1", "EB-MTLS-2", "FMK-2.1-MTLS"] {
        assert!(pass.contains(id), "{id}: {}", r.explain());
    }
}

/// Only the revocation scenarios: these tests are about OCSP.
const REVOKE: &[&str] = &["--tags", "@req:FMK-2.1-REVOKE"];

/// The OCSP scenarios of a run, with their evidence as text.
fn ocsp_scenarios(r: &Run) -> Vec<(String, String)> {
    r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.contains("checks OCSP"))
        })
        .map(|s| {
            (
                s["status"].as_str().unwrap_or_default().to_string(),
                s["evidence"].to_string(),
            )
        })
        .collect()
}

/// nginx with `ssl_ocsp on` asks the simulated CA's responder and refuses the certificate
/// revoked since the last CRL: FMK-2.1-REVOKE passes, and the evidence says it asked.
#[test]
fn nginx_with_ssl_ocsp_on_refuses_the_certificate_revoked_since_the_crl() {
    let tls = Tls {
        ocsp: true,
        declare_ocsp: true,
        ..MODERN
    };
    let Some((dir, r)) = certify_nginx_with("on", IpFilter::None, &tls, REVOKE) else {
        return;
    };
    let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert_eq!(r.code(), 0, "{}\nnginx error.log:\n{log}", r.explain());
    assert!(r.with_verdict("pass").contains("FMK-2.1-REVOKE"));
    let scenarios = ocsp_scenarios(&r);
    assert_eq!(scenarios.len(), 2, "{}", r.explain());
    for (status, evidence) in &scenarios {
        assert_eq!(status, "passed", "{evidence}");
        assert!(evidence.contains("\"ocsp_asked\":true"), "{evidence}");
        assert!(evidence.contains("\"answer\":\"revoked\""), "{evidence}");
    }
}

/// The same nginx with only `ssl_crl`, declared as checking OCSP, lets the certificate
/// revoked since the last CRL in: FMK-2.1-REVOKE (and EB-MTLS-1) fail on exactly the OCSP
/// scenarios, and the evidence says the responder was never asked.
#[test]
fn nginx_with_only_a_crl_declared_as_checking_ocsp_fails_fmk_2_1_revoke() {
    let tls = Tls {
        declare_ocsp: true,
        ..MODERN
    };
    let Some((_dir, r)) = certify_nginx_with("on", IpFilter::None, &tls, REVOKE) else {
        return;
    };
    assert_eq!(r.code(), 1, "{}", r.explain());
    let failed = r.with_verdict("fail");
    assert!(
        failed.contains("FMK-2.1-REVOKE") && failed.contains("EB-MTLS-1"),
        "{failed:?}"
    );
    let scenarios = ocsp_scenarios(&r);
    assert_eq!(scenarios.len(), 2, "{}", r.explain());
    for (status, evidence) in &scenarios {
        assert_eq!(status, "failed", "{evidence}");
        assert!(evidence.contains("\"ocsp_asked\":false"), "{evidence}");
        assert!(evidence.contains("client-revoked-ocsp"), "{evidence}");
    }
    // The CRL scenarios still pass: the CRL lists client-revoked.
    let crl_failed = r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .any(|s| {
            s["name"]
                .as_str()
                .unwrap_or_default()
                .contains("client-revoked (")
        });
    assert!(!crl_failed, "{}", r.explain());
}
