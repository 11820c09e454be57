//! The resend policy an IUT declares (FMK-2.6.3-RESEND): when a failed delivery is tried
//! again, how often, and which failures are final. Written in provsten's TOML form or as a
//! Domibus P-Mode `receptionAwareness retry` attribute (`"TIMEOUT;COUNT;STRATEGY"`), and
//! resolved into one [`ResendPolicy`] that both the checks and the reference IUT read.

use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;

/// `[resend]` as written in the IUT config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendSection {
    /// Explicit delays before retry 1, 2, …; the last one repeats.
    #[serde(default)]
    pub delays: Option<Vec<HumanDuration>>,
    #[serde(default)]
    pub exponential: Option<ExponentialSection>,
    /// A Domibus P-Mode `retry` attribute, e.g. "12;4;CONSTANT" (minutes; retries; strategy).
    #[serde(default)]
    pub pmode_retry: Option<String>,
    /// Attempts in all, the first included.
    #[serde(default)]
    pub max_attempts: Option<i64>,
    /// No attempt starts later than this after the first (in the policy's own time).
    #[serde(default)]
    pub max_total: Option<HumanDuration>,
    /// Each delay may vary by ± this fraction.
    #[serde(default)]
    pub jitter: Option<f64>,
    /// Failures that are retried: "5xx", a status such as "503" or 429, "timeout",
    /// "reset", "refused", "tls".
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<OutcomeClass>,
    /// Failures that are final (never retried), e.g. ["400", "422"] or ["4xx"].
    #[serde(default = "default_permanent")]
    pub permanent: Vec<OutcomeClass>,
    #[serde(default = "yes")]
    pub honour_retry_after: bool,
    /// How long one attempt may take before the sender gives up on it.
    #[serde(default = "default_delivery_timeout")]
    pub delivery_timeout: HumanDuration,
    /// The IUT under test runs its delays multiplied by this (0.01: minutes become
    /// hundreds of milliseconds), so a policy of minutes is certified in seconds.
    #[serde(default = "one")]
    pub time_scale: f64,
    /// How far an observed interval may stray from the expected one (real time).
    #[serde(default = "default_tolerance")]
    pub tolerance: HumanDuration,
    /// After an outage, the backlog to one receiver is not sent faster than this
    /// (attempts per second, real time).
    #[serde(default)]
    pub backlog_rate: Option<f64>,
    /// Messages of one entity are delivered in the order they were sent.
    #[serde(default)]
    pub ordered: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExponentialSection {
    pub initial: HumanDuration,
    #[serde(default = "two")]
    pub factor: f64,
    #[serde(default)]
    pub cap: Option<HumanDuration>,
}

/// A class of attempt outcome, as written in `retry_on` / `permanent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum OutcomeClass {
    Status(u16),
    /// 4xx or 5xx.
    StatusRange(u16),
    Timeout,
    Reset,
    Refused,
    Tls,
}

impl From<OutcomeClass> for String {
    fn from(c: OutcomeClass) -> String {
        match c {
            OutcomeClass::Status(s) => s.to_string(),
            OutcomeClass::StatusRange(h) => format!("{}xx", h / 100),
            OutcomeClass::Timeout => "timeout".into(),
            OutcomeClass::Reset => "reset".into(),
            OutcomeClass::Refused => "refused".into(),
            OutcomeClass::Tls => "tls".into(),
        }
    }
}

impl std::str::FromStr for OutcomeClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "timeout" => OutcomeClass::Timeout,
            "reset" => OutcomeClass::Reset,
            "refused" => OutcomeClass::Refused,
            "tls" => OutcomeClass::Tls,
            "4xx" => OutcomeClass::StatusRange(400),
            "5xx" => OutcomeClass::StatusRange(500),
            n => match n.parse::<u16>() {
                Ok(code) if (100..600).contains(&code) => OutcomeClass::Status(code),
                _ => {
                    return Err(format!(
                    "{s:?} is not an outcome (hint: \"5xx\", \"4xx\", a status such as \"503\", \"timeout\", \"reset\", \"refused\" or \"tls\")"
                ))
                }
            },
        })
    }
}

impl<'de> Deserialize<'de> for OutcomeClass {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        let s = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s,
        };
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl OutcomeClass {
    fn matches(&self, o: &Outcome) -> bool {
        match (self, o) {
            (OutcomeClass::Status(s), Outcome::Status { status, .. }) => s == status,
            (OutcomeClass::StatusRange(h), Outcome::Status { status, .. }) => {
                status / 100 == h / 100
            }
            (OutcomeClass::Timeout, Outcome::Timeout)
            | (OutcomeClass::Reset, Outcome::Reset)
            | (OutcomeClass::Refused, Outcome::Refused)
            | (OutcomeClass::Tls, Outcome::Tls) => true,
            _ => false,
        }
    }

    /// Exact statuses before ranges: "503" beats "5xx".
    fn specificity(&self) -> u8 {
        match self {
            OutcomeClass::StatusRange(_) => 0,
            _ => 1,
        }
    }
}

/// What one delivery attempt ended in, as the sender saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    Status {
        status: u16,
        /// The Retry-After the receiver sent, already turned into a delay.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ms")]
        retry_after: Option<Duration>,
    },
    Timeout,
    Reset,
    Refused,
    Tls,
}

/// What the policy says about an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Delivered,
    Retry,
    Permanent,
}

/// The schedule of delays between attempts, in the policy's own (unscaled) time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Schedule {
    Delays {
        #[serde(with = "vec_ms")]
        delays: Vec<Duration>,
    },
    Exponential {
        #[serde(with = "ms")]
        initial: Duration,
        factor: f64,
        #[serde(default, with = "opt_ms")]
        cap: Option<Duration>,
    },
}

/// The resolved policy. Serialised to `{out}/resend-policy.json` for the IUT and into the
/// report; durations in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResendPolicy {
    /// Where it came from: "toml" or "pmode 12;4;CONSTANT".
    pub source: String,
    pub schedule: Schedule,
    pub max_attempts: Option<u32>,
    #[serde(default, with = "opt_ms")]
    pub max_total: Option<Duration>,
    pub jitter: f64,
    pub retry_on: Vec<String>,
    pub permanent: Vec<String>,
    pub honour_retry_after: bool,
    #[serde(with = "ms")]
    pub delivery_timeout: Duration,
    pub time_scale: f64,
    #[serde(with = "ms")]
    pub tolerance: Duration,
    pub backlog_rate: Option<f64>,
    pub ordered: bool,
}

fn default_retry_on() -> Vec<OutcomeClass> {
    ["5xx", "429", "timeout", "reset", "refused", "tls"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}
fn default_permanent() -> Vec<OutcomeClass> {
    vec![OutcomeClass::StatusRange(400)]
}
fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn two() -> f64 {
    2.0
}
fn default_delivery_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_tolerance() -> HumanDuration {
    HumanDuration(Duration::from_millis(200))
}

/// Retries Domibus allows as "count"; more would be a typo.
const MAX_ATTEMPTS_LIMIT: i64 = 10_000;

impl ResendSection {
    /// Checks the section and resolves it; `key` prefixes errors (file and section).
    pub fn resolve(&self, key: &str) -> anyhow::Result<ResendPolicy> {
        let forms = [
            self.delays.is_some(),
            self.exponential.is_some(),
            self.pmode_retry.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if forms == 0 {
            bail!("{key}: no schedule (hint: delays = [\"1s\", \"2s\", \"4s\"], exponential = {{ initial = \"1s\", factor = 2.0, cap = \"1m\" }}, or pmode_retry = \"12;4;CONSTANT\")");
        }
        if forms > 1 {
            bail!("{key}: more than one schedule (hint: keep one of delays, exponential and pmode_retry)");
        }
        let mut source = "toml".to_string();
        let mut max_attempts = self.max_attempts;
        let mut max_total = self.max_total.map(|d| d.0);
        let schedule = if let Some(d) = &self.delays {
            if d.is_empty() {
                bail!("{key}: delays is empty (hint: delays = [\"1s\"], or max_attempts = 1 for no retries)");
            }
            Schedule::Delays {
                delays: d.iter().map(|d| d.0).collect(),
            }
        } else if let Some(e) = &self.exponential {
            if !(e.factor.is_finite() && e.factor >= 1.0) {
                bail!(
                    "{key}: exponential.factor {} must be at least 1 (hint: factor = 2.0)",
                    e.factor
                );
            }
            if e.initial.0.is_zero() {
                bail!("{key}: exponential.initial is 0 (hint: initial = \"1s\")");
            }
            if let Some(cap) = e.cap {
                if cap.0 < e.initial.0 {
                    bail!("{key}: exponential.cap is below exponential.initial (hint: raise cap, or drop it)");
                }
            }
            Schedule::Exponential {
                initial: e.initial.0,
                factor: e.factor,
                cap: e.cap.map(|c| c.0),
            }
        } else {
            let text = self.pmode_retry.as_deref().unwrap_or_default();
            let p = parse_pmode_retry(text).map_err(|e| anyhow!("{key}: pmode_retry: {e}"))?;
            source = format!("pmode {text}");
            if max_attempts.is_some() || max_total.is_some() {
                bail!("{key}: pmode_retry already sets the attempts and the total time (hint: drop max_attempts and max_total)");
            }
            max_attempts = Some(p.max_attempts as i64);
            max_total = p.max_total;
            p.schedule
        };
        if let Some(n) = max_attempts {
            if n < 1 {
                bail!("{key}: max_attempts = {n}: at least 1 (the first attempt counts; 1 means never retry)");
            }
            if n > MAX_ATTEMPTS_LIMIT {
                bail!("{key}: max_attempts = {n} is more than {MAX_ATTEMPTS_LIMIT} (hint: bound the retries by max_total instead)");
            }
        }
        if max_attempts.is_none() && max_total.is_none() {
            bail!("{key}: the policy never gives up (hint: set max_attempts, max_total, or both)");
        }
        let jitter = self.jitter.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&jitter) {
            bail!("{key}: jitter = {jitter}: a fraction from 0 to 1 (hint: jitter = 0.1 for ±10%)");
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0 && self.time_scale <= 1.0) {
            bail!(
                "{key}: time_scale = {}: a factor above 0 and at most 1 (hint: time_scale = 0.01 runs minutes as hundreds of milliseconds)",
                self.time_scale
            );
        }
        if let Some(r) = self.backlog_rate {
            if !(r.is_finite() && r > 0.0) {
                bail!("{key}: backlog_rate = {r}: messages per second, above 0");
            }
        }
        if self.delivery_timeout.0.is_zero() {
            bail!("{key}: delivery_timeout is 0 (hint: delivery_timeout = \"5s\")");
        }
        for c in &self.retry_on {
            if self.permanent.contains(c) {
                bail!(
                    "{key}: {:?} is both in retry_on and in permanent (hint: keep it in one)",
                    String::from(c.clone())
                );
            }
        }
        Ok(ResendPolicy {
            source,
            schedule,
            max_attempts: max_attempts.map(|n| n as u32),
            max_total,
            jitter,
            retry_on: self.retry_on.iter().cloned().map(String::from).collect(),
            permanent: self.permanent.iter().cloned().map(String::from).collect(),
            honour_retry_after: self.honour_retry_after,
            delivery_timeout: self.delivery_timeout.0,
            time_scale: self.time_scale,
            tolerance: self.tolerance.0,
            backlog_rate: self.backlog_rate,
            ordered: self.ordered,
        })
    }
}

/// A translated Domibus `retry` attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct PmodeRetry {
    pub schedule: Schedule,
    pub max_attempts: u32,
    pub max_total: Option<Duration>,
}

/// Translates Domibus's `receptionAwareness retry="TIMEOUT;COUNT;STRATEGY"`: TIMEOUT is the
/// total retry time in minutes, COUNT the retries after the first send. CONSTANT spaces the
/// retries evenly over the timeout (every TIMEOUT/COUNT minutes); SEND_ONCE never retries.
pub fn parse_pmode_retry(text: &str) -> Result<PmodeRetry, String> {
    let parts: Vec<&str> = text.split(';').map(str::trim).collect();
    let hint = "(hint: \"12;4;CONSTANT\" = retry 4 times over 12 minutes)";
    if parts.len() != 3 {
        return Err(format!("{text:?} is not TIMEOUT;COUNT;STRATEGY {hint}"));
    }
    let minutes: u64 = parts[0]
        .parse()
        .map_err(|_| format!("timeout {:?} is not whole minutes {hint}", parts[0]))?;
    let count: u32 = parts[1]
        .parse()
        .map_err(|_| format!("count {:?} is not a whole number {hint}", parts[1]))?;
    match parts[2].to_ascii_uppercase().as_str() {
        "SEND_ONCE" => Ok(PmodeRetry {
            schedule: Schedule::Delays {
                delays: vec![Duration::from_secs(60)],
            },
            max_attempts: 1,
            max_total: None,
        }),
        "CONSTANT" => {
            if minutes == 0 || count == 0 {
                return Err(format!(
                    "{text:?}: CONSTANT needs a timeout and a count above 0 (hint: \"12;4;CONSTANT\", or \"0;0;SEND_ONCE\" for no retries)"
                ));
            }
            let total = Duration::from_secs(minutes * 60);
            Ok(PmodeRetry {
                schedule: Schedule::Delays {
                    delays: vec![total / count],
                },
                max_attempts: count + 1,
                max_total: Some(total),
            })
        }
        other => Err(format!(
            "strategy {other:?} is not supported (hint: CONSTANT or SEND_ONCE; write other schedules as delays = [...] in [resend])"
        )),
    }
}

impl ResendPolicy {
    /// The policy's delay before attempt `n` (2 = the first retry), unscaled, without jitter.
    pub fn nominal_delay(&self, n: u32) -> Duration {
        let k = n.saturating_sub(2) as usize;
        match &self.schedule {
            Schedule::Delays { delays } => {
                delays.get(k).or(delays.last()).copied().unwrap_or_default()
            }
            Schedule::Exponential {
                initial,
                factor,
                cap,
            } => {
                let secs = initial.as_secs_f64() * factor.powi(k.min(1000) as i32);
                let d = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
                match cap {
                    Some(c) => d.min(*c),
                    None => d,
                }
            }
        }
    }

    /// The delay before attempt `n` as the scaled IUT runs it.
    pub fn delay(&self, n: u32) -> Duration {
        self.scaled(self.nominal_delay(n))
    }

    pub fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.time_scale)
    }

    /// What the policy does after an outcome.
    pub fn decide(&self, o: &Outcome) -> Decision {
        if let Outcome::Status { status, .. } = o {
            if (200..300).contains(status) {
                return Decision::Delivered;
            }
        }
        let best = |list: &[String]| {
            list.iter()
                .filter_map(|s| s.parse::<OutcomeClass>().ok())
                .filter(|c| c.matches(o))
                .map(|c| c.specificity())
                .max()
        };
        match (best(&self.retry_on), best(&self.permanent)) {
            (Some(r), Some(p)) if r > p => Decision::Retry,
            (Some(_), None) => Decision::Retry,
            _ => Decision::Permanent,
        }
    }

    /// Offsets (scaled) of attempts 1.. from the first, as long as the limits allow, when
    /// every attempt fails with a retried outcome and no Retry-After.
    pub fn expected_offsets(&self) -> Vec<Duration> {
        let mut out = vec![Duration::ZERO];
        let mut at = Duration::ZERO;
        let mut n = 2u32;
        loop {
            if let Some(m) = self.max_attempts {
                if n > m {
                    break;
                }
            }
            let next = at + self.nominal_delay(n);
            if let Some(t) = self.max_total {
                if next > t {
                    break;
                }
            }
            if n > MAX_ATTEMPTS_LIMIT as u32 {
                break;
            }
            at = next;
            out.push(self.scaled(at));
            n += 1;
        }
        out
    }

    /// How many attempts the policy makes in all when every one fails with a retried
    /// outcome.
    pub fn attempt_limit(&self) -> u32 {
        self.expected_offsets().len() as u32
    }

    /// The allowed distance between an expected and an observed interval.
    pub fn allowance(&self, expected: Duration) -> Duration {
        self.tolerance + expected.mul_f64(self.jitter)
    }

    /// How much later than `expected` an attempt may come. Early is the sender's fault;
    /// late may be the test machine's (a loaded CI runner wakes timers late), so lateness
    /// gets the tolerance again plus half the interval, which still catches a sender that
    /// waits twice as long as declared.
    pub fn late_allowance(&self, expected: Duration) -> Duration {
        self.allowance(expected) + self.tolerance.max(expected / 2)
    }

    /// A plain-text summary for the report and failure messages.
    pub fn describe(&self) -> String {
        let sched = match &self.schedule {
            Schedule::Delays { delays } => format!(
                "delays {}",
                delays
                    .iter()
                    .map(|d| humantime::format_duration(*d).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Schedule::Exponential {
                initial,
                factor,
                cap,
            } => format!(
                "exponential from {} ×{factor}{}",
                humantime::format_duration(*initial),
                cap.map(|c| format!(" capped at {}", humantime::format_duration(c)))
                    .unwrap_or_default()
            ),
        };
        format!(
            "{sched}; {} attempts{}; time scale {}; tolerance {} ± {}% jitter ({})",
            self.max_attempts
                .map(|m| format!("at most {m}"))
                .unwrap_or_else(|| "unbounded".into()),
            self.max_total
                .map(|t| format!(" within {}", humantime::format_duration(t)))
                .unwrap_or_default(),
            self.time_scale,
            humantime::format_duration(self.tolerance),
            (self.jitter * 100.0).round(),
            self.source
        )
    }
}

mod ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod opt_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

mod vec_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(d.iter().map(|d| d.as_millis() as u64))
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Ok(Vec::<u64>::deserialize(d)?
            .into_iter()
            .map(Duration::from_millis)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> ResendSection {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn pmode_constant_spreads_retries_over_the_timeout() {
        let p = section("pmode_retry = \"12;4;CONSTANT\"")
            .resolve("t")
            .unwrap();
        assert_eq!(p.max_attempts, Some(5));
        assert_eq!(p.nominal_delay(2), Duration::from_secs(180));
        let mins: Vec<u64> = p
            .expected_offsets()
            .iter()
            .map(|d| d.as_secs() / 60)
            .collect();
        assert_eq!(mins, vec![0, 3, 6, 9, 12]);
        assert_eq!(p.source, "pmode 12;4;CONSTANT");
    }

    #[test]
    fn exponential_is_capped_and_scaled() {
        let p = section(
            "exponential = { initial = \"1s\", factor = 2.0, cap = \"5s\" }\nmax_attempts = 6\ntime_scale = 0.1",
        )
        .resolve("t")
        .unwrap();
        let d: Vec<u128> = (2..=6).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 500, 500]);
    }

    #[test]
    fn exact_status_beats_range() {
        let p = section("delays = [\"1s\"]\nmax_attempts = 3\nretry_on = [\"5xx\", 429]\npermanent = [\"4xx\", \"501\"]")
            .resolve("t")
            .unwrap();
        let st = |s| Outcome::Status {
            status: s,
            retry_after: None,
        };
        assert_eq!(p.decide(&st(503)), Decision::Retry);
        assert_eq!(p.decide(&st(501)), Decision::Permanent);
        assert_eq!(p.decide(&st(429)), Decision::Retry);
        assert_eq!(p.decide(&st(400)), Decision::Permanent);
        assert_eq!(p.decide(&st(204)), Decision::Delivered);
        assert_eq!(p.decide(&Outcome::Reset), Decision::Permanent);
    }

    #[test]
    fn contradictions_are_config_errors_with_the_fix() {
        for (text, needle) in [
            ("delays = [\"1s\"]\nmax_attempts = 0", "at least 1"),
            (
                "delays = [\"1s\"]\nmax_attempts = 3\njitter = 1.5",
                "jitter",
            ),
            ("delays = [\"1s\"]", "never gives up"),
            ("max_attempts = 2", "no schedule"),
            ("pmode_retry = \"12;4\"", "TIMEOUT;COUNT;STRATEGY"),
            ("pmode_retry = \"12;4;FANCY\"", "not supported"),
            (
                "delays = [\"1s\"]\nmax_attempts = 2\nretry_on = [\"503\"]\npermanent = [\"503\"]",
                "both",
            ),
            (
                "delays = [\"1s\"]\nmax_attempts = 2\ntime_scale = 0",
                "time_scale",
            ),
        ] {
            let err = toml::from_str::<ResendSection>(text)
                .map_err(anyhow::Error::from)
                .and_then(|s| s.resolve("cfg [resend]"))
                .unwrap_err();
            assert!(format!("{err:#}").contains(needle), "{text}: {err:#}");
        }
        let neg = toml::from_str::<ResendSection>("delays = [\"-1s\"]\nmax_attempts = 2");
        assert!(neg.is_err());
    }

    #[test]
    fn resolved_policy_round_trips_through_json() {
        let p = section(
            "delays = [\"250ms\", \"1s\"]\nmax_attempts = 4\nbacklog_rate = 5.0\nordered = true",
        )
        .resolve("t")
        .unwrap();
        let j = serde_json::to_string(&p).unwrap();
        let back: ResendPolicy = serde_json::from_str(&j).unwrap();
        assert_eq!(p, back);
    }

    proptest::proptest! {
        #[test]
        fn offsets_grow_and_respect_the_limits(
            initial_ms in 1u64..10_000, factor in 1.0f64..4.0, attempts in 1i64..20, scale in 0.001f64..1.0
        ) {
            let s = ResendSection {
                delays: None,
                exponential: Some(ExponentialSection { initial: HumanDuration(Duration::from_millis(initial_ms)), factor, cap: None }),
                pmode_retry: None,
                max_attempts: Some(attempts),
                max_total: None,
                jitter: None,
                retry_on: default_retry_on(),
                permanent: default_permanent(),
                honour_retry_after: true,
                delivery_timeout: default_delivery_timeout(),
                time_scale: scale,
                tolerance: default_tolerance(),
                backlog_rate: None,
                ordered: false,
            };
            let p = s.resolve("t").unwrap();
            let o = p.expected_offsets();
            proptest::prop_assert_eq!(o.len() as i64, attempts);
            proptest::prop_assert!(o.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
