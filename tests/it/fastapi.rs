//! A real third-party receiver: a FastAPI/pydantic app (tests/fixtures/fastapi_receiver.py)
//! certified through a config file for FMK-2.6.2-VALIDATE. Strictly configured it passes;
//! with the lax parsing many receivers have it must be caught, with a counter-example.
//!
//! CI installs FastAPI and uvicorn with pip; `PROVSTEN_SKIP_PYTHON=1` skips on machines
//! without them.

use std::path::Path;

use super::util::{free_port, pki_init, python_available, run, Run};

fn fastapi_available() -> bool {
    python_available("fastapi, uvicorn, pydantic", "fastapi uvicorn")
}

fn certify(lax: bool) -> Option<Run> {
    if !fastapi_available() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    pki_init(dir.path());
    let port = free_port();
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fastapi_receiver.py");
    let cfg = dir.path().join("provsten.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[iut]
name = "FastAPI receiver{lax_name}"
roles = ["receiver"]

[iut.start]
command = ["python3", "{app}", "{port}", "{{pki}}"{lax_arg}]
stop_timeout = "5s"

[iut.ready]
check = "https"
timeout = "30s"
client_cert = "client-5560000001"

[api]
base_url = "https://127.0.0.1:{port}"
server_name = "iut.localhost"
registered_orgs = ["5560000001"]

[[message]]
name = "notification"
endpoint = "/v1/notifications"
schema = "builtin:fullmakt/agent-notification"
id_pointer = "/Identity"

[pki]
dir = "pki"
"#,
            app = app.display(),
            lax_name = if lax { " (lax)" } else { "" },
            lax_arg = if lax { ", \"--lax\"" } else { "" },
        ),
    )
    .unwrap();
    Some(run(
        &dir.path().join("out"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--tags",
            "@req:FMK-2.6.2-VALIDATE",
        ],
    ))
}

#[test]
fn a_strict_fastapi_receiver_refuses_every_invalid_notification() {
    let Some(r) = certify(false) else { return };
    assert_eq!(r.code(), 0, "{}", r.explain());
    assert!(r.with_verdict("pass").contains("FMK-2.6.2-VALIDATE"));
}

#[test]
fn a_lax_fastapi_receiver_is_caught_with_a_minimal_counter_example() {
    let Some(r) = certify(true) else { return };
    assert_eq!(r.code(), 1, "{}", r.explain());
    assert!(r.with_verdict("fail").contains("FMK-2.6.2-VALIDATE"));
    let property = r.report()["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str().is_some_and(|n| n.contains("generated")))
        .expect("the property scenario ran");
    assert_eq!(property["status"], "failed");
    let ev = serde_json::to_string(&property["evidence"]).unwrap();
    assert!(ev.contains("counter_example"), "{ev}");
}
