//! Seeded defects of the reference IUT, each next to the requirements it breaks.
//!
//! `provsten defects` prints this table; the defect-matrix test runs the suite once per
//! defect and asserts that exactly `breaks()` fail, so a check that cannot fail shows up.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Defect {
    AcceptExtraFields,
    AcceptMissingField,
    AcceptUnknownEnum,
    CoerceTypes,
    FiveHundredOnMalformed,
    LeakStackTrace,
    NoVersionCheck,
    RefuseValidClients,
    AcceptExpiredCert,
    AcceptLegacyTls,
    AcceptWeakSuites,
    AcceptNoCert,
    AcceptNotYetValidCert,
    AcceptWeakKey,
    CidrOffByOne,
    IgnoreCertSignature,
    IgnoreCrl,
    IgnoreEku,
    IgnoreOrgNumber,
    Ipv6Unfiltered,
    NoIpFilter,
    NoTenantIsolation,
    ShortReadTimeout,
    SkipProofOfPossession,
    TrustAnyRoot,
    TrustsForwardedHeaders,
    UntrustedServerCert,
    NoRetry,
    RetryTooFast,
    RetryOnFourXx,
    NewIdPerAttempt,
    IgnoreRetryAfter,
    GiveUpEarly,
    ResendStorm,
    IgnoreEntityOrder,
    SendsInvalidMessages,
    DuplicateProcessing,
    LoseOnRestart,
    NoAudit,
    SenderAcceptsBadCert,
    WindowExcludesStart,
    WindowLeaksOtherOrgs,
    NoFailover,
    SlowFailover,
    LosesInFlight,
    DuplicatesOnFailback,
    NeverFailsBack,
    FallbackWrongIdentity,
}

impl Defect {
    pub const ALL: &'static [Defect] = &[
        Defect::AcceptNoCert,
        Defect::AcceptExpiredCert,
        Defect::AcceptNotYetValidCert,
        Defect::IgnoreCrl,
        Defect::TrustAnyRoot,
        Defect::IgnoreEku,
        Defect::AcceptWeakKey,
        Defect::IgnoreCertSignature,
        Defect::SkipProofOfPossession,
        Defect::IgnoreOrgNumber,
        Defect::NoTenantIsolation,
        Defect::UntrustedServerCert,
        Defect::AcceptLegacyTls,
        Defect::AcceptWeakSuites,
        Defect::NoIpFilter,
        Defect::TrustsForwardedHeaders,
        Defect::CidrOffByOne,
        Defect::Ipv6Unfiltered,
        Defect::ShortReadTimeout,
        Defect::AcceptMissingField,
        Defect::AcceptUnknownEnum,
        Defect::CoerceTypes,
        Defect::AcceptExtraFields,
        Defect::FiveHundredOnMalformed,
        Defect::LeakStackTrace,
        Defect::NoVersionCheck,
        Defect::RefuseValidClients,
        Defect::NoRetry,
        Defect::RetryTooFast,
        Defect::RetryOnFourXx,
        Defect::NewIdPerAttempt,
        Defect::IgnoreRetryAfter,
        Defect::GiveUpEarly,
        Defect::ResendStorm,
        Defect::IgnoreEntityOrder,
        Defect::SendsInvalidMessages,
        Defect::DuplicateProcessing,
        Defect::LoseOnRestart,
        Defect::NoAudit,
        Defect::SenderAcceptsBadCert,
        Defect::WindowExcludesStart,
        Defect::WindowLeaksOtherOrgs,
        Defect::NoFailover,
        Defect::SlowFailover,
        Defect::LosesInFlight,
        Defect::DuplicatesOnFailback,
        Defect::NeverFailsBack,
        Defect::FallbackWrongIdentity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Defect::AcceptExpiredCert => "accept-expired-cert",
            Defect::AcceptExtraFields => "accept-extra-fields",
            Defect::AcceptMissingField => "accept-missing-field",
            Defect::AcceptUnknownEnum => "accept-unknown-enum",
            Defect::CoerceTypes => "coerce-types",
            Defect::FiveHundredOnMalformed => "500-on-malformed",
            Defect::LeakStackTrace => "leak-stack-trace",
            Defect::NoVersionCheck => "no-version-check",
            Defect::RefuseValidClients => "refuse-valid-clients",
            Defect::AcceptLegacyTls => "accept-legacy-tls",
            Defect::AcceptWeakSuites => "accept-weak-suites",
            Defect::AcceptNoCert => "accept-no-cert",
            Defect::AcceptNotYetValidCert => "accept-not-yet-valid-cert",
            Defect::AcceptWeakKey => "accept-weak-key",
            Defect::CidrOffByOne => "cidr-off-by-one",
            Defect::ShortReadTimeout => "short-read-timeout",
            Defect::Ipv6Unfiltered => "ipv6-unfiltered",
            Defect::NoIpFilter => "no-ip-filter",
            Defect::TrustsForwardedHeaders => "trusts-forwarded-headers",
            Defect::IgnoreCertSignature => "ignore-cert-signature",
            Defect::IgnoreCrl => "ignore-crl",
            Defect::IgnoreEku => "ignore-eku",
            Defect::IgnoreOrgNumber => "ignore-org-number",
            Defect::NoTenantIsolation => "no-tenant-isolation",
            Defect::SkipProofOfPossession => "skip-proof-of-possession",
            Defect::TrustAnyRoot => "trust-any-root",
            Defect::UntrustedServerCert => "untrusted-server-cert",
            Defect::NoRetry => "no-retry",
            Defect::RetryTooFast => "retry-too-fast",
            Defect::RetryOnFourXx => "retry-on-4xx",
            Defect::NewIdPerAttempt => "new-id-per-attempt",
            Defect::IgnoreRetryAfter => "ignore-retry-after",
            Defect::GiveUpEarly => "give-up-early",
            Defect::ResendStorm => "resend-storm",
            Defect::IgnoreEntityOrder => "ignore-entity-order",
            Defect::SendsInvalidMessages => "sends-invalid-messages",
            Defect::DuplicateProcessing => "duplicate-processing",
            Defect::LoseOnRestart => "lose-on-restart",
            Defect::NoAudit => "no-audit",
            Defect::SenderAcceptsBadCert => "sender-accepts-bad-cert",
            Defect::WindowExcludesStart => "window-excludes-start",
            Defect::WindowLeaksOtherOrgs => "window-leaks-other-orgs",
            Defect::NoFailover => "no-failover",
            Defect::SlowFailover => "slow-failover",
            Defect::LosesInFlight => "loses-in-flight",
            Defect::DuplicatesOnFailback => "duplicates-on-failback",
            Defect::NeverFailsBack => "never-fails-back",
            Defect::FallbackWrongIdentity => "fallback-wrong-identity",
        }
    }

    /// The requirements a run against the reference IUT with this defect must report as `fail`.
    pub fn breaks(self) -> &'static [&'static str] {
        match self {
            Defect::AcceptNoCert => &["EB-AUTH-1", "FMK-2.1-MTLS"],
            Defect::AcceptExpiredCert => &["EB-MTLS-1"],
            Defect::AcceptNotYetValidCert => &["EB-MTLS-1"],
            Defect::IgnoreCrl => &["EB-MTLS-1", "FMK-2.1-REVOKE"],
            Defect::TrustAnyRoot => &["EB-MTLS-1", "FMK-2.1-CA"],
            Defect::IgnoreEku => &["EB-MTLS-1"],
            Defect::AcceptWeakKey => &["EB-MTLS-1"],
            Defect::IgnoreCertSignature => &["EB-MTLS-1", "FMK-2.1-CA"],
            Defect::SkipProofOfPossession => &["EB-MTLS-1", "SDK-5.4-KEYS"],
            Defect::IgnoreOrgNumber => &["EB-MTLS-2"],
            Defect::NoTenantIsolation => &["SDK-4.1-ISOLATION", "SDK-4.2-METADATA"],
            Defect::UntrustedServerCert => &["EB-MTLS-1", "FMK-2.1-CA"],
            Defect::AcceptLegacyTls | Defect::AcceptWeakSuites => &["EB-TLS-1"],
            Defect::NoIpFilter => &["EB-IP-1", "EB-IP-2"],
            Defect::TrustsForwardedHeaders => &["EB-IP-1"],
            Defect::CidrOffByOne => &["EB-IP-1"],
            Defect::Ipv6Unfiltered => &["EB-IP-1"],
            Defect::ShortReadTimeout => &["CONT-FAULT-PROC"],
            Defect::AcceptMissingField
            | Defect::AcceptUnknownEnum
            | Defect::CoerceTypes
            | Defect::AcceptExtraFields
            | Defect::FiveHundredOnMalformed
            | Defect::LeakStackTrace => &["EB-SCHEMA-1", "FMK-2.6.2-VALIDATE"],
            Defect::NoVersionCheck => &["EB-VER-1", "FMK-2.5-VER"],
            // Only positive controls catch an IUT that refuses too much.
            Defect::RefuseValidClients => &[
                "CONT-FAULT-PROC",
                "EB-AUTH-1",
                "EB-IP-1",
                "EB-IP-2",
                "EB-MTLS-1",
                "EB-MTLS-2",
                "FMK-2.1-MTLS",
                "FMK-2.6.1-NOTIFY",
            ],
            Defect::NoRetry
            | Defect::RetryTooFast
            | Defect::RetryOnFourXx
            | Defect::NewIdPerAttempt
            | Defect::IgnoreRetryAfter
            | Defect::GiveUpEarly
            | Defect::ResendStorm
            | Defect::IgnoreEntityOrder
            | Defect::DuplicateProcessing => &["FMK-2.6.3-RESEND"],
            // The router's outbox is the sender's: a killed router loses what it held.
            Defect::LoseOnRestart => &["CONT-NOLOSS", "FMK-2.6.3-RESEND"],
            Defect::NoAudit => &["FMK-2.6.4-LOG", "SDK-5.1-TRACE"],
            Defect::SendsInvalidMessages => &["EB-SCHEMA-1", "FMK-2.6.4-CORRECT"],
            Defect::SenderAcceptsBadCert => &["EB-MTLS-1", "FMK-2.1-MTLS", "FMK-2.6.3-RESEND"],
            Defect::WindowExcludesStart | Defect::WindowLeaksOtherOrgs => &["FMK-2.6.1-NOTIFY"],
            // The fault-processing scenarios keep the primary broken: only a fallback
            // delivers there.
            Defect::NoFailover => &[
                "CONT-EXERCISE",
                "CONT-FAULT-PROC",
                "CONT-NOLOSS",
                "CONT-ROUTE-1",
                "CONT-ROUTE-2",
            ],
            Defect::SlowFailover => &["CONT-EXERCISE", "CONT-ROUTE-1"],
            // Never failing over (its timeouts count as deliveries), it loses what the
            // fallback should have carried.
            Defect::LosesInFlight => &[
                "CONT-FAULT-PROC",
                "CONT-NOLOSS",
                "CONT-ROUTE-1",
                "CONT-ROUTE-2",
            ],
            Defect::DuplicatesOnFailback => &["CONT-EXERCISE", "CONT-NOLOSS"],
            // Router scenarios each start on the primary; stuck on the fallback after the
            // first outage, the router fails every later one there (each requirement has
            // at least two router scenarios, so which runs first does not matter).
            Defect::NeverFailsBack => &[
                "CONT-EXERCISE",
                "CONT-FAILBACK",
                "CONT-FAULT-PROC",
                "CONT-NOLOSS",
                "CONT-ROUTE-1",
                "CONT-ROUTE-2",
            ],
            Defect::FallbackWrongIdentity => &["CONT-ROUTE-2"],
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Defect::AcceptNoCert => "client certificates are requested but not required",
            Defect::AcceptExpiredCert => "expired client certificates are accepted",
            Defect::AcceptNotYetValidCert => "client certificates not yet valid are accepted",
            Defect::IgnoreCrl => "the CRL is not consulted: revoked certificates are accepted",
            Defect::TrustAnyRoot => {
                "certificates from unknown roots and self-signed ones are accepted"
            }
            Defect::IgnoreEku => "the extended key usage is not checked (serverAuth-only accepted)",
            Defect::AcceptWeakKey => "RSA keys under 2048 bits are accepted",
            Defect::IgnoreCertSignature => {
                "a certificate whose issuer signature is corrupt is accepted"
            }
            Defect::SkipProofOfPossession => {
                "the client's handshake signature is not verified (no proof of key possession)"
            }
            Defect::IgnoreOrgNumber => {
                "certificates without, or with an unregistered, organisation number are served"
            }
            Defect::NoTenantIsolation => "a client may read another organisation's data",
            Defect::UntrustedServerCert => {
                "the API presents a server certificate from an untrusted CA"
            }
            Defect::AcceptLegacyTls => "a TLS 1.0/1.1 ClientHello is answered with a ServerHello",
            Defect::AcceptWeakSuites => {
                "a TLS 1.2 ClientHello offering only weak suites gets one of those OpenSSL's DEFAULT list still has (plain RSA, CBC-SHA1)"
            }
            Defect::NoIpFilter => "the source-address allowlist is not enforced",
            Defect::TrustsForwardedHeaders => {
                "X-Forwarded-For, X-Real-IP, Forwarded and PROXY protocol headers are believed from any client"
            }
            Defect::CidrOffByOne => "the address just past the end of a registered range is let in",
            Defect::Ipv6Unfiltered => "clients arriving over IPv6 (v4-mapped included) skip the allowlist",
            Defect::AcceptMissingField => "messages missing a required field are accepted",
            Defect::AcceptUnknownEnum => "values outside an enumeration are accepted",
            Defect::CoerceTypes => "values of the wrong type are accepted (coerced)",
            Defect::AcceptExtraFields => "properties the schema forbids are accepted",
            Defect::FiveHundredOnMalformed => "malformed JSON makes the receiver answer 500 instead of refusing it",
            Defect::LeakStackTrace => "error answers carry a stack trace with source paths",
            Defect::NoVersionCheck => "any API version is served as the current one, without deprecation headers",
            Defect::RefuseValidClients => "the protected resource is refused to every client, its owners included (a check that only looks for refusals would pass it)",
            Defect::ShortReadTimeout => {
                "connections that take over 300 ms to complete the TLS handshake are dropped (a slow or lossy link breaks them)"
            }
            Defect::NoRetry => "the sender makes one delivery attempt and never retries",
            Defect::RetryTooFast => "the sender waits a quarter of the declared delay between attempts",
            Defect::RetryOnFourXx => {
                "the sender retries permanent failures (4xx) like temporary ones"
            }
            Defect::NewIdPerAttempt => {
                "each resend carries a new message id (X-Message-Id and the id in the body get -N appended)"
            }
            Defect::IgnoreRetryAfter => "the sender ignores the receiver's Retry-After",
            Defect::GiveUpEarly => "the sender gives up one attempt before the declared limit",
            Defect::SendsInvalidMessages => {
                "the sender puts an undeclared value in the messages it sends (Type 99 in a notification)"
            }
            Defect::IgnoreEntityOrder => {
                "messages about one entity are delivered independently, so a resent one is overtaken by its successors"
            }
            Defect::ResendStorm => {
                "after an outage the backlog is flushed at once (backlog_rate not honoured)"
            }
            Defect::DuplicateProcessing => {
                "the receiver processes a resent message again, and accepts a reused id with a different body"
            }
            Defect::LoseOnRestart => {
                "the outbox is kept in memory only: queued (and routed) messages are lost when the sender restarts"
            }
            Defect::NoAudit => "nothing is written to the audit log",
            Defect::SenderAcceptsBadCert => {
                "the sender does not verify the receiver's server certificate"
            }
            Defect::WindowExcludesStart => {
                "a time window leaves out a change made exactly at its start (from < changedAt instead of from <= changedAt)"
            }
            Defect::WindowLeaksOtherOrgs => {
                "a time window lists every organisation's changes, not only the asking organisation's"
            }
            Defect::NoFailover => {
                "the router never uses a fallback route: it retries only the primary (at the policy's delays)"
            }
            Defect::SlowFailover => {
                "after the primary first fails, the router retries only the primary for 3 s before failing over"
            }
            Defect::LosesInFlight => {
                "an attempt that times out is taken as delivered on that route and never resent"
            }
            Defect::DuplicatesOnFailback => {
                "on failback, every message delivered through a fallback since the last failover is sent again through the primary"
            }
            Defect::NeverFailsBack => {
                "the router never probes the primary after a failover: it stays on the fallback"
            }
            Defect::FallbackWrongIdentity => {
                "on fallback routes the router presents another organisation's certificate (client-5560000002)"
            }
        }
    }
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Defect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Defect::ALL
            .iter()
            .copied()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                let close = closest(s, Defect::ALL.iter().map(|d| d.name()));
                let all: Vec<_> = Defect::ALL.iter().map(|d| d.name()).collect();
                match close {
                    Some(c) => format!(
                        "unknown defect {s:?} (did you mean {c:?}? known: {})",
                        all.join(", ")
                    ),
                    None => format!("unknown defect {s:?} (known: {})", all.join(", ")),
                }
            })
    }
}

/// The set of defects a reference IUT runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defects(BTreeSet<Defect>);

impl Defects {
    pub fn new(list: impl IntoIterator<Item = Defect>) -> Self {
        Defects(list.into_iter().collect())
    }

    pub fn has(&self, d: Defect) -> bool {
        self.0.contains(&d)
    }

    pub fn iter(&self) -> impl Iterator<Item = Defect> + '_ {
        self.0.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The candidate nearest to `input` by edit distance, if any is reasonably near.
pub fn closest<'a>(input: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(input, c), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_defect_round_trips_by_name_and_breaks_something() {
        for d in Defect::ALL {
            assert_eq!(d.name().parse::<Defect>().unwrap(), *d);
            assert!(!d.breaks().is_empty(), "{d}");
        }
    }

    #[test]
    fn unknown_defect_suggests_the_closest() {
        let err = "accept-expired".parse::<Defect>().unwrap_err();
        assert!(
            err.contains("did you mean \"accept-expired-cert\""),
            "{err}"
        );
    }
}
