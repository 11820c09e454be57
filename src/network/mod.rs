//! The network side of the simulated world: source addresses, raw protocol probes and
//! PROXY protocol headers (and, later, the fault proxy).

pub mod addr;
pub mod proxy_protocol;
pub mod tls_probe;
