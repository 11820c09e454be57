//! The network side of the simulated world: the fault proxy (Toxiproxy's model, embedded or
//! an external server), named fault timelines, source addresses, raw protocol probes and
//! PROXY protocol headers.

pub mod addr;
pub mod backend;
pub mod proxy;
pub(crate) mod proxy_model;
pub mod proxy_protocol;
pub mod timeline;
pub mod tls_probe;
pub mod toxics;
pub mod toxiproxy_api;
