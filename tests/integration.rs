//! provsten's integration tests: one test binary (few targets build faster), with modules
//! per area. Tests drive the `provsten` binary cargo already built
//! (`CARGO_BIN_EXE_provsten`), as a user or a CI pipeline would.

mod it {
    pub mod ci;
    pub mod cli;
    pub mod curl;
    pub mod curl_client;
    pub mod exercise;
    pub mod fastapi;
    pub mod firewall;
    pub mod haproxy;
    pub mod html;
    pub mod lxml;
    pub mod nginx;
    pub mod ocsp;
    pub mod outbox;
    pub mod proxy;
    pub mod python_client;
    pub mod receipts;
    pub mod report;
    pub mod tls_probe;
    pub mod util;
    pub mod verdicts;
    pub mod xml_generated;
}
