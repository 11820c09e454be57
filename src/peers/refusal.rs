//! How an exchange with the IUT ended, classified so reports say exactly how a client was
//! refused (or let in). One table maps what rustls, nginx and others do onto these kinds.

use std::io;

use serde::Serialize;

/// Where in the exchange something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Stage {
    Connect,
    /// During the TLS handshake (TLS 1.2 client-certificate refusals land here).
    Handshake,
    /// After the client's handshake completed: TLS 1.3 servers refuse a client certificate
    /// with an alert the client only reads here.
    FirstRead,
}

/// The ways a server can refuse a connection below HTTP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Refusal {
    /// TCP connect refused (nothing listening, or a firewall's RST).
    ConnectionRefused,
    /// TLS alert from the peer, by rustls's name (`CertificateRequired`, `UnknownCA`…) and
    /// its number in the TLS registry (116, 48…).
    TlsAlert {
        alert: String,
        number: u8,
        stage: Stage,
    },
    /// TCP reset.
    ConnectionReset { stage: Stage },
    /// Closed without an alert or response.
    Closed { stage: Stage },
    /// No answer within the deadline.
    Timeout { stage: Stage, after_ms: u64 },
    /// The harness's own TLS refused the server (e.g. its certificate does not verify).
    LocalTlsError { error: String, stage: Stage },
    /// Bytes that are not valid TLS or HTTP.
    ProtocolError { error: String, stage: Stage },
}

impl Refusal {
    /// Classifies an I/O error from a TLS stream.
    pub(crate) fn from_io(err: &io::Error, stage: Stage) -> Refusal {
        if let Some(tls) = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return Refusal::from_tls(tls, stage);
        }
        match err.kind() {
            io::ErrorKind::ConnectionRefused => Refusal::ConnectionRefused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Refusal::ConnectionReset { stage },
            // rustls reports a close without close_notify as UnexpectedEof.
            io::ErrorKind::UnexpectedEof => Refusal::Closed { stage },
            _ => Refusal::ProtocolError {
                error: err.to_string(),
                stage,
            },
        }
    }

    pub(crate) fn from_tls(err: &rustls::Error, stage: Stage) -> Refusal {
        match err {
            rustls::Error::AlertReceived(a) => Refusal::TlsAlert {
                alert: format!("{a:?}"),
                number: u8::from(*a),
                stage,
            },
            // The server answered with bytes that are not TLS (nginx, for one, answers
            // garbage before a ClientHello with a plain-HTTP 400): it refused to speak TLS.
            rustls::Error::InvalidMessage(m) => Refusal::ProtocolError {
                error: format!("the server answered with non-TLS data ({m:?})"),
                stage,
            },
            other => Refusal::LocalTlsError {
                error: other.to_string(),
                stage,
            },
        }
    }

    /// Whether this is the IUT refusing (as opposed to the harness giving up).
    pub(crate) fn is_by_server(&self) -> bool {
        !matches!(
            self,
            Refusal::LocalTlsError { .. } | Refusal::Timeout { .. }
        )
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Refusal::ConnectionRefused => "TCP connection refused".into(),
            Refusal::TlsAlert {
                alert,
                number,
                stage,
            } => {
                format!("TLS alert {alert} ({number}) ({})", stage_text(*stage))
            }
            Refusal::ConnectionReset { stage } => {
                format!("connection reset ({})", stage_text(*stage))
            }
            Refusal::Closed { stage } => format!(
                "connection closed without a response ({})",
                stage_text(*stage)
            ),
            Refusal::Timeout { stage, after_ms } => {
                format!("no answer within {after_ms} ms ({})", stage_text(*stage))
            }
            Refusal::LocalTlsError { error, stage } => {
                format!(
                    "the harness's TLS refused the server: {error} ({})",
                    stage_text(*stage)
                )
            }
            Refusal::ProtocolError { error, stage } => {
                format!("protocol error: {error} ({})", stage_text(*stage))
            }
        }
    }
}

fn stage_text(s: Stage) -> &'static str {
    match s {
        Stage::Connect => "at connect",
        Stage::Handshake => "during the TLS handshake",
        Stage::FirstRead => "on the first read after the handshake",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls13_alert_after_handshake_is_named() {
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        );
        assert_eq!(
            Refusal::from_io(&e, Stage::FirstRead),
            Refusal::TlsAlert {
                alert: "CertificateRequired".into(),
                number: 116,
                stage: Stage::FirstRead
            }
        );
    }

    #[test]
    fn reset_and_eof_are_told_apart() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(matches!(
            Refusal::from_io(&reset, Stage::Handshake),
            Refusal::ConnectionReset { .. }
        ));
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(matches!(
            Refusal::from_io(&eof, Stage::FirstRead),
            Refusal::Closed { .. }
        ));
    }
}
