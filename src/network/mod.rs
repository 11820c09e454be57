//! The network side of the simulated world: raw protocol probes (and, later, the fault
//! proxy and source-address binding).

pub mod tls_probe;
