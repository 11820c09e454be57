//! Seeded defects of the reference IUT, each next to the requirements it breaks.
//!
//! `provsten defects` prints this table; the defect-matrix test runs the suite once per
//! defect and asserts that exactly `breaks()` fail, so a check that cannot fail shows up.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::shared::RequirementId;

/// Generates `Defect`, `Defect::ALL` (in table order: the order `provsten defects` prints
/// and the matrix runs), `name`, `breaks` and `description` from one table, so a defect is
/// added in one place and none can be missing from `ALL`.
macro_rules! defects {
    ($($variant:ident, $name:literal, [$($req:literal),* $(,)?], $desc:literal;)*) => {
        /// A seeded defect of the reference IUT (`--defect NAME`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Defect {
            $(#[doc = $desc] $variant,)*
        }

        impl Defect {
            /// Every defect, in table order.
            pub const ALL: &'static [Defect] = &[$(Defect::$variant,)*];

            /// The name `--defect` takes.
            pub fn name(self) -> &'static str {
                match self {
                    $(Defect::$variant => $name,)*
                }
            }

            /// The requirements a run against the reference IUT with this defect must
            /// report as `fail`.
            pub fn breaks(self) -> &'static [RequirementId] {
                match self {
                    $(Defect::$variant => {
                        const BREAKS: &[RequirementId] = &[$(RequirementId::of($req)),*];
                        BREAKS
                    })*
                }
            }

            /// What the defect makes the reference IUT do, as `provsten defects` prints it.
            pub fn description(self) -> &'static str {
                match self {
                    $(Defect::$variant => $desc,)*
                }
            }
        }
    };
}

// variant, --defect name, the requirements it must fail (exactly), what it does.
defects! {
    AcceptNoCert, "accept-no-cert", ["EB-AUTH-1", "FMK-2.1-MTLS"],
        "client certificates are requested but not required";
    AcceptExpiredCert, "accept-expired-cert", ["EB-MTLS-1"],
        "expired client certificates are accepted";
    AcceptNotYetValidCert, "accept-not-yet-valid-cert", ["EB-MTLS-1"],
        "client certificates not yet valid are accepted";
    IgnoreCrl, "ignore-crl", ["EB-MTLS-1", "FMK-2.1-REVOKE"],
        "the CRL is not consulted (nor the OCSP responder): revoked certificates are accepted";
    IgnoresOcsp, "ignores-ocsp", ["EB-MTLS-1", "FMK-2.1-REVOKE"],
        "the OCSP responder is not asked: a certificate revoked since the last CRL is accepted";
    TrustAnyRoot, "trust-any-root", ["EB-MTLS-1", "FMK-2.1-CA"],
        "certificates from unknown roots and self-signed ones are accepted";
    IgnoreEku, "ignore-eku", ["EB-MTLS-1"],
        "the extended key usage is not checked (serverAuth-only accepted)";
    AcceptWeakKey, "accept-weak-key", ["EB-MTLS-1"],
        "RSA keys under 2048 bits are accepted";
    IgnoreCertSignature, "ignore-cert-signature", ["EB-MTLS-1", "FMK-2.1-CA"],
        "a certificate whose issuer signature is corrupt is accepted";
    SkipProofOfPossession, "skip-proof-of-possession", ["EB-MTLS-1", "SDK-5.4-KEYS"],
        "the client's handshake signature is not verified (no proof of key possession)";
    IgnoreOrgNumber, "ignore-org-number", ["EB-MTLS-2"],
        "certificates without, or with an unregistered, organisation number are served";
    NoTenantIsolation, "no-tenant-isolation", ["SDK-4.1-ISOLATION", "SDK-4.2-METADATA"],
        "a client may read another organisation's data";
    UntrustedServerCert, "untrusted-server-cert", ["EB-MTLS-1", "FMK-2.1-CA"],
        "the API presents a server certificate from an untrusted CA";
    AcceptLegacyTls, "accept-legacy-tls", ["EB-TLS-1"],
        "a TLS 1.0/1.1 ClientHello is answered with a ServerHello";
    AcceptWeakSuites, "accept-weak-suites", ["EB-TLS-1"],
        "a TLS 1.2 ClientHello offering only weak suites gets one of those OpenSSL's DEFAULT list still has (plain RSA, CBC-SHA1)";
    NoIpFilter, "no-ip-filter", ["EB-IP-1", "EB-IP-2"],
        "the source-address allowlist is not enforced";
    TrustsForwardedHeaders, "trusts-forwarded-headers", ["EB-IP-1"],
        "X-Forwarded-For, X-Real-IP, Forwarded and PROXY protocol headers are believed from any client";
    CidrOffByOne, "cidr-off-by-one", ["EB-IP-1"],
        "the address just past the end of a registered range is let in";
    Ipv6Unfiltered, "ipv6-unfiltered", ["EB-IP-1"],
        "clients arriving over IPv6 (v4-mapped included) skip the allowlist";
    ShortReadTimeout, "short-read-timeout", ["CONT-FAULT-PROC"],
        "connections that take over 1 s to complete the TLS handshake are dropped (a slow or lossy link breaks them)";
    AcceptMissingField, "accept-missing-field", ["EB-SCHEMA-1", "FMK-2.6.2-VALIDATE"],
        "messages missing a required field are accepted";
    AcceptUnknownEnum, "accept-unknown-enum", ["EB-SCHEMA-1", "FMK-2.6.2-VALIDATE"],
        "values outside an enumeration are accepted";
    CoerceTypes, "coerce-types", ["EB-SCHEMA-1", "FMK-2.6.2-VALIDATE"],
        "values of the wrong type are accepted (coerced)";
    AcceptExtraFields, "accept-extra-fields", ["EB-SCHEMA-1", "FMK-2.6.2-VALIDATE"],
        "properties the schema forbids are accepted";
    FiveHundredOnMalformed, "500-on-malformed", ["EB-SCHEMA-1", "FMK-2.6.2-VALIDATE"],
        "malformed JSON makes the receiver answer 500 instead of refusing it";
    LeakStackTrace, "leak-stack-trace", ["EB-SCHEMA-1", "FMK-2.6.2-VALIDATE"],
        "error answers carry a stack trace with source paths";
    NoVersionCheck, "no-version-check", ["EB-VER-1", "FMK-2.5-VER"],
        "any API version is served as the current one, without deprecation headers";
    // Only positive controls catch an IUT that refuses too much.
    RefuseValidClients, "refuse-valid-clients", ["CONT-FAULT-PROC", "EB-AUTH-1", "EB-IP-1", "EB-IP-2", "EB-MTLS-1", "EB-MTLS-2", "FMK-2.1-MTLS", "FMK-2.6.1-NOTIFY", "SDK-2.4-INNER"],
        "the protected resource is refused to every client, its owners included (a check that only looks for refusals would pass it)";
    NoRetry, "no-retry", ["FMK-2.6.3-RESEND"],
        "the sender makes one delivery attempt and never retries";
    RetryTooFast, "retry-too-fast", ["FMK-2.6.3-RESEND"],
        "the sender waits a quarter of the declared delay between attempts";
    RetryOnFourXx, "retry-on-4xx", ["FMK-2.6.3-RESEND"],
        "the sender retries permanent failures (4xx) like temporary ones";
    NewIdPerAttempt, "new-id-per-attempt", ["FMK-2.6.3-RESEND"],
        "each resend carries a new message id (X-Message-Id and the id in the body get -N appended)";
    IgnoreRetryAfter, "ignore-retry-after", ["FMK-2.6.3-RESEND"],
        "the sender ignores the receiver's Retry-After";
    GiveUpEarly, "give-up-early", ["FMK-2.6.3-RESEND"],
        "the sender gives up one attempt before the declared limit";
    ResendStorm, "resend-storm", ["FMK-2.6.3-RESEND"],
        "after an outage the backlog is flushed at once (backlog_rate not honoured)";
    IgnoreEntityOrder, "ignore-entity-order", ["FMK-2.6.3-RESEND"],
        "messages about one entity are delivered independently, so a resent one is overtaken by its successors";
    SendsInvalidMessages, "sends-invalid-messages", ["EB-SCHEMA-1", "FMK-2.6.4-CORRECT"],
        "the sender puts an undeclared value in the messages it sends (Type 99 in a notification)";
    SendsInvalidXml, "sends-invalid-xml", ["SDK-SPEC"],
        "the sender breaks a Schematron rule in the SDK messages it sends (XHE R3: another CustomizationID)";
    SendsUnsignedXml, "sends-unsigned-xml", ["SDK-SPEC", "SDK-5.4-KEYS"],
        "the sender sends SDK messages without signing them";
    SignsAsOtherOrg, "signs-as-other-org", ["SDK-SPEC", "SDK-5.4-KEYS"],
        "the sender signs SDK messages with another organisation's key and names that organisation as the XHE sender";
    DuplicateProcessing, "duplicate-processing", ["FMK-2.6.3-RESEND"],
        "the receiver processes a resent message again, and accepts a reused id with a different body";
    // The router's outbox is the sender's: a killed router loses what it held.
    LoseOnRestart, "lose-on-restart", ["CONT-NOLOSS", "FMK-2.6.3-RESEND"],
        "the outbox is kept in memory only: queued (and routed) messages are lost when the sender restarts";
    NoAudit, "no-audit", ["FMK-2.6.4-LOG", "SDK-5.1-TRACE"],
        "nothing is written to the audit log";
    SenderAcceptsBadCert, "sender-accepts-bad-cert", ["EB-MTLS-1", "FMK-2.1-MTLS", "FMK-2.6.3-RESEND"],
        "the sender does not verify the receiver's server certificate";
    WindowExcludesStart, "window-excludes-start", ["FMK-2.6.1-NOTIFY"],
        "a time window leaves out a change made exactly at its start (from < changedAt instead of from <= changedAt)";
    WindowLeaksOtherOrgs, "window-leaks-other-orgs", ["FMK-2.6.1-NOTIFY"],
        "a time window lists every organisation's changes, not only the asking organisation's";
    // The fault-processing scenarios keep the primary broken: only a fallback
    // delivers there.
    NoFailover, "no-failover", ["CONT-EXERCISE", "CONT-FAULT-PROC", "CONT-NOLOSS", "CONT-ROUTE-1", "CONT-ROUTE-2"],
        "the router never uses a fallback route: it retries only the primary (at the policy's delays)";
    SlowFailover, "slow-failover", ["CONT-EXERCISE", "CONT-ROUTE-1"],
        "after the primary first fails, the router retries only the primary for 3 s before failing over";
    // Never failing over (its timeouts count as deliveries), it loses what the
    // fallback should have carried.
    LosesInFlight, "loses-in-flight", ["CONT-FAULT-PROC", "CONT-NOLOSS", "CONT-ROUTE-1", "CONT-ROUTE-2"],
        "an attempt that times out is taken as delivered on that route and never resent";
    DuplicatesOnFailback, "duplicates-on-failback", ["CONT-EXERCISE", "CONT-NOLOSS"],
        "on failback, every message delivered through a fallback since the last failover is sent again through the primary";
    // Router scenarios each start on the primary; stuck on the fallback after the
    // first outage, the router fails every later one there (each requirement has
    // at least two router scenarios, so which runs first does not matter).
    NeverFailsBack, "never-fails-back", ["CONT-EXERCISE", "CONT-FAILBACK", "CONT-FAULT-PROC", "CONT-NOLOSS", "CONT-ROUTE-1", "CONT-ROUTE-2"],
        "the router never probes the primary after a failover: it stays on the fallback";
    FallbackWrongIdentity, "fallback-wrong-identity", ["CONT-ROUTE-2"],
        "on fallback routes the router presents another organisation's certificate (client-5560000002)";
    // Role client: the reference as a client of a peer's API (POST /admin/call).
    ClientIgnoresServerCertExpiry, "client-ignores-server-cert-expiry", ["EB-MTLS-1"],
        "as a client, the IUT accepts an expired or not yet valid server certificate";
    ClientNoHostnameCheck, "client-no-hostname-check", ["EB-MTLS-1"],
        "as a client, the IUT does not check that the server certificate names the host it called";
    ClientIgnoresRevocation, "client-ignores-revocation", ["EB-MTLS-1", "FMK-2.1-REVOKE"],
        "as a client, the IUT consults neither the CRL nor the OCSP responder: a revoked server certificate is accepted";
    // Checking nothing, it checks no revocation either.
    ClientTrustsAnyRoot, "client-trusts-any-root", ["EB-MTLS-1", "FMK-2.1-CA", "FMK-2.1-REVOKE"],
        "as a client, the IUT accepts any server certificate: unknown roots, self-signed, revoked";
    ClientPresentsOtherOrg, "client-presents-other-org", ["EB-MTLS-2"],
        "as a client, the IUT presents another organisation's certificate (client-5560000002)";
    ClientIgnoresRate, "client-ignores-rate", ["FMK-2.4-LOAD"],
        "as a client, the IUT makes its calls as fast as it can, above its declared request rate";
    HammersOn429, "hammers-on-429", ["FMK-2.4-LOAD"],
        "as a client, the IUT retries a refused call (429, 503) every 5 ms, past its rate limiter";
    ClientIgnoresRetryAfter, "client-ignores-retry-after", ["FMK-2.4-LOAD"],
        "as a client, the IUT retries after its own backoff, ignoring the server's Retry-After";
    FullReread, "full-reread", ["FMK-2.4-LOAD"],
        "as a client, the IUT re-reads everything each time instead of asking what changed since its last read";
    AcceptXsdInvalid, "accept-xsd-invalid", ["SDK-SPEC"],
        "the SDK message endpoint accepts well-formed XML that its XSD (or the required root and payload) refuses";
    IgnoreSchematron, "ignore-schematron", ["SDK-SPEC"],
        "the SDK message endpoint does not apply the Schematron business rules (XHE, SDK Meddelande)";
    AcceptsBadSignature, "accepts-bad-signature", ["SDK-SPEC", "SDK-5.4-KEYS"],
        "the SDK message endpoint does not verify the XML signature: unsigned, altered and wrongly signed messages are accepted";
    AcceptsOtherOrgSignature, "accepts-other-org-signature", ["SDK-SPEC", "SDK-5.4-KEYS"],
        "the SDK message endpoint verifies the XML signature but not that the signer is the sending organisation (FromParty)";
    PlaintextPortOpen, "plaintext-port-open", ["FMK-2.2-FW"],
        "plain HTTP sent to the API's TLS port is served, as the first registered organisation (as if a TLS terminator in front had authenticated it)";
    DebugPortExposed, "debug-port-exposed", ["FMK-2.2-FW"],
        "an undeclared plain-HTTP debug/metrics port (a free loopback port) answers anyone";
    AdminPortUnfiltered, "admin-port-unfiltered", ["FMK-2.2-FW"],
        "the admin port answers every source address, not only the harness's 127.0.0.1";
    InnerPlaintext, "inner-plaintext", ["SDK-2.4-INNER"],
        "the inner endpoint speaks plain HTTP and serves anyone";
    InnerNoClientAuth, "inner-no-client-auth", ["SDK-2.4-INNER"],
        "the inner endpoint's TLS asks for no client certificate and serves anyone";
    InnerLegacyTls, "inner-legacy-tls", ["SDK-2.4-INNER"],
        "the inner endpoint answers a TLS 1.0/1.1 ClientHello with a ServerHello";
    ResolvesExternalEntities, "resolves-external-entities", ["SDK-SPEC"],
        "the SDK message endpoint substitutes entities and loads external ones (file:// and HTTP, DTDs and parameter entities too): an XXE message is accepted with the file's or the URL's content";
    // Capped, so the reference itself survives: the checks see the acceptance.
    ExpandsEntities, "expands-entities", ["SDK-SPEC"],
        "the SDK message endpoint expands internal entities itself (up to 2 MiB of expansion) and accepts the result: billion laughs and quadratic blowup get in";
    FetchesExternalDtd, "fetches-external-dtd", ["SDK-SPEC"],
        "the SDK message endpoint loads the external DTD a DOCTYPE names and the schema an xsi:schemaLocation names, over HTTP (then goes on as the compliant one)";
    WrongReceiptCode, "wrong-receipt-code", ["SDK-SPEC"],
        "the SDK message endpoint's receipts give every refusal the reason code SV (syntax), a broken Schematron rule too";
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
    /// The set of the defects in `list` (duplicates collapse).
    pub fn new(list: impl IntoIterator<Item = Defect>) -> Self {
        Defects(list.into_iter().collect())
    }

    /// Whether `d` is seeded.
    pub fn has(&self, d: Defect) -> bool {
        self.0.contains(&d)
    }

    /// The defects in the set, in table order.
    pub fn iter(&self) -> impl Iterator<Item = Defect> + '_ {
        self.0.iter().copied()
    }

    /// Whether no defect is seeded (the compliant reference IUT).
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

    /// A requirement ID misspelt in the table would make the matrix demand a verdict no
    /// run can give; one not testable could never fail.
    #[test]
    fn every_broken_requirement_is_a_testable_one_of_the_catalogue() {
        let all = crate::requirements::catalogue().unwrap();
        let mut names = BTreeSet::new();
        for d in Defect::ALL {
            assert!(names.insert(d.name()), "{d} twice");
            assert!(!d.description().is_empty(), "{d}");
            let mut seen = BTreeSet::new();
            for id in d.breaks() {
                assert!(seen.insert(id), "{d}: {id} twice");
                let r = all.iter().find(|r| r.id == *id);
                assert!(r.is_some(), "{d}: {id} is not in the requirement catalogue");
                assert!(r.is_some_and(|r| r.testable), "{d}: {id} is not testable");
            }
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
