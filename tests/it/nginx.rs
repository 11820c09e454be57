//! A real third-party IUT: nginx, configured from the generated PKI, certified through a
//! provsten config that starts and stops it. With `ssl_verify_client on` it must pass the
//! mTLS and TLS features; with `optional` (and an application that assumes the TLS layer
//! refused bad clients) the run must fail on EB-AUTH-1. nginx refuses bad certificates at
//! HTTP level (400 after the handshake), and the report must say so.
//!
//! CI installs nginx; set `PROVSTEN_SKIP_NGINX=1` to skip on machines without it.

use std::path::{Path, PathBuf};

use super::util::{provsten, run, Run};

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

fn nginx_conf(dir: &Path, port: u16, verify_client: &str) -> String {
    let pki = dir.join("pki");
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

    server {{
        listen 127.0.0.1:{port} ssl;
        server_name iut.localhost;
        ssl_certificate {pki}/iut-server.chain.pem;
        ssl_certificate_key {pki}/iut-server.key.pem;
        ssl_client_certificate {pki}/trust.pem;
        ssl_verify_client {verify_client};
        ssl_verify_depth 3;
        ssl_crl {pki}/crl-bundle.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;
        default_type application/json;

        location = /v1/health {{
            return 200 '{{"status":"ok"}}';
        }}
        location ~ ^/v1/orgs/(?<org>[0-9]+)/fullmakter$ {{
            # The application trusts that nginx refused clients without a valid
            # certificate: right with `on`, a hole with `optional`.
            set $gate "1:$org";
            if ($ssl_client_verify = SUCCESS) {{
                set $gate "$org_registered:$client_org";
            }}
            if ($gate != "1:$org") {{
                return 403 '{{"error":"forbidden"}}';
            }}
            return 200 '{{"organisation":"$org","fullmakter":[{{"id":"FM-$org-001"}}]}}';
        }}
    }}
}}
"#,
        dir = dir.display(),
        pki = pki.display()
    )
}

fn provsten_conf(dir: &Path, nginx: &Path, port: u16) -> String {
    format!(
        r#"
[iut]
name = "nginx"
roles = ["server"]

[iut.start]
command = ["{nginx}", "-p", "{{config_dir}}", "-c", "{{config_dir}}/nginx.conf"]
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
"#,
        nginx = nginx.display(),
        pki = dir.join("pki").display()
    )
}

fn certify_nginx(verify_client: &str) -> Option<(tempfile::TempDir, Run)> {
    let nginx = nginx_binary()?;
    let dir = tempfile::tempdir().unwrap();
    let out = provsten()
        .args(["pki", "init", "--out"])
        .arg(dir.path().join("pki"))
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path().join("nginx.conf"),
        nginx_conf(dir.path(), port, verify_client),
    )
    .unwrap();
    let cfg = dir.path().join("provsten.toml");
    std::fs::write(&cfg, provsten_conf(dir.path(), &nginx, port)).unwrap();
    let r = run(
        &dir.path().join("out"),
        &["--config", cfg.to_str().unwrap()],
    );
    Some((dir, r))
}

#[test]
fn nginx_with_verify_client_on_is_compliant_and_refusals_are_reported_as_http_level() {
    let Some((dir, r)) = certify_nginx("on") else {
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
    ] {
        assert!(
            r.with_verdict("pass").contains(req),
            "{req}: {:?}",
            r.with_verdict("pass")
        );
    }
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
}

#[test]
fn nginx_with_verify_client_optional_fails_eb_auth_1() {
    let Some((_dir, r)) = certify_nginx("optional") else {
        return;
    };
    assert_eq!(r.code(), 1, "{}", r.explain());
    let failed = r.with_verdict("fail");
    assert!(failed.contains("EB-AUTH-1"), "{failed:?}");
    assert!(failed.contains("FMK-2.1-MTLS"), "{failed:?}");
}
