//! ISO-8601 durations as Key Vault's rotation policy writes them: years,
//! months, days and hours (`P90D`, `P3M`, `P1Y10D`, `PT48H`; keys.json 7.4,
//! `KeyRotationPolicyAttributes.expiryTime`, Azure/azure-rest-api-specs
//! commit 204cfa94e4ab94cc209c58984554411d6ab0e9e5). Minutes and seconds are
//! refused: a rotation policy counts in days.

use k8s_openapi::jiff::{Span, Timestamp, tz::TimeZone};

/// A parsed duration; `hours()` uses 365-day years and 30-day months, as the
/// CRD's CEL rules do, for comparisons. Adding to a time is calendar-exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IsoDuration {
    pub years: i64,
    pub months: i64,
    pub days: i64,
    pub hours: i64,
}

impl IsoDuration {
    /// Parses `P[nY][nM][nD][TnH]` (case-insensitive); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let upper = text.trim().to_ascii_uppercase();
        let rest = upper.strip_prefix('P')?;
        let (date, time) = match rest.split_once('T') {
            Some((d, t)) if !t.is_empty() => (d, Some(t)),
            Some(_) => return None,
            None => (rest, None),
        };
        let mut out = IsoDuration::default();
        let mut any = false;
        let mut number = String::new();
        let mut order = 0;
        for c in date.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let (rank, slot) = match c {
                'Y' => (1, &mut out.years),
                'M' => (2, &mut out.months),
                'D' => (3, &mut out.days),
                _ => return None,
            };
            if rank <= order || number.is_empty() || number.len() > 6 {
                return None;
            }
            *slot = number.parse().ok()?;
            number.clear();
            order = rank;
            any = true;
        }
        if !number.is_empty() {
            return None;
        }
        if let Some(t) = time {
            let digits = t.strip_suffix('H')?;
            if digits.is_empty() || digits.len() > 7 || !digits.chars().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            out.hours = digits.parse().ok()?;
            any = true;
        }
        any.then_some(out)
    }

    /// Length in hours with 365-day years and 30-day months.
    pub fn hours(&self) -> i64 {
        self.years * 8760 + self.months * 720 + self.days * 24 + self.hours
    }

    fn span(&self) -> Option<Span> {
        Span::new()
            .try_years(self.years)
            .ok()?
            .try_months(self.months)
            .ok()?
            .try_days(self.days)
            .ok()?
            .try_hours(self.hours)
            .ok()
    }

    /// `at` plus this duration, on the UTC calendar.
    pub fn after(&self, at: Timestamp) -> Option<Timestamp> {
        let z = at.to_zoned(TimeZone::UTC).checked_add(self.span()?).ok()?;
        Some(z.timestamp())
    }

    /// `at` minus this duration, on the UTC calendar.
    pub fn before(&self, at: Timestamp) -> Option<Timestamp> {
        let z = at.to_zoned(TimeZone::UTC).checked_sub(self.span()?).ok()?;
        Some(z.timestamp())
    }
}

/// Whether two duration texts mean the same (`p90d` is `P90D`).
pub fn same(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => match (IsoDuration::parse(a), IsoDuration::parse(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a.eq_ignore_ascii_case(b),
        },
        _ => false,
    }
}

/// "12d 3h" for messages.
pub fn human(d: k8s_openapi::jiff::SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else {
        format!("{minutes}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_vaults_examples_parse() {
        let p = |s| IsoDuration::parse(s);
        assert_eq!(p("P90D").unwrap().hours(), 90 * 24);
        assert_eq!(p("P3M").unwrap().months, 3);
        assert_eq!(p("PT48H").unwrap().hours(), 48);
        let y = p("P1Y10D").unwrap();
        assert_eq!((y.years, y.days), (1, 10));
        assert_eq!(p("p28d"), p("P28D"));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "", "P", "PT", "90D", "P90", "PT5M", "P1D2Y", "P-1D", "P1.5D", "P1DT", "P1W",
        ] {
            assert_eq!(IsoDuration::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn adding_is_calendar_exact() {
        let t: Timestamp = "2026-01-31T00:00:00Z".parse().unwrap();
        let month = IsoDuration::parse("P1M").unwrap();
        assert_eq!(month.after(t).unwrap().to_string(), "2026-02-28T00:00:00Z");
        let d = IsoDuration::parse("P30D").unwrap();
        assert_eq!(d.before(d.after(t).unwrap()), Some(t));
    }

    #[test]
    fn sameness_reads_the_value() {
        assert!(same(Some("p90d"), Some("P90D")));
        assert!(!same(Some("P90D"), Some("P3M")));
        assert!(!same(Some("P90D"), None));
        assert!(same(None, None));
    }
}
