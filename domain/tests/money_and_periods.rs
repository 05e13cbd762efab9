//! Money and billing periods against the shared test vectors
//! (`shared/vectors/*.json`) and the business plan's checks (docs/reference/domain.md#revenue-share, docs/reference/domain.md#billing-periods).

use std::path::PathBuf;

use basketry_domain::{period, split, BasisPoints};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde::Deserialize;

fn vector(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/vectors")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn bps(n: u32) -> BasisPoints {
    BasisPoints::new(n).unwrap()
}

#[derive(Deserialize)]
struct SplitVectors {
    cases: Vec<SplitCase>,
}

#[derive(Deserialize)]
struct SplitCase {
    amount: i64,
    partner_bps: u32,
    partner_share: i64,
    platform_share: i64,
}

#[test]
fn every_revenue_split_vector_holds() {
    let vectors: SplitVectors = serde_json::from_str(&vector("revenue_split.json")).unwrap();
    assert!(!vectors.cases.is_empty());
    for case in vectors.cases {
        let got = split(case.amount, bps(case.partner_bps));
        assert_eq!(
            (got.partner_share, got.platform_share),
            (case.partner_share, case.platform_share),
            "amount {} at {} bps",
            case.amount,
            case.partner_bps
        );
    }
}

/// The ledger adds one split per charge, so totals are sums of per-charge splits.
fn totals(subscriptions: i64) -> (i64, i64, i64) {
    let one = split(99_900, bps(3000));
    (
        99_900 * subscriptions,
        one.platform_share * subscriptions,
        one.partner_share * subscriptions,
    )
}

#[test]
fn one_999_rupee_subscription_via_a_70_30_partner_splits_69930_and_29970_paise() {
    assert_eq!(totals(1), (99_900, 69_930, 29_970));
}

#[test]
fn a_hundred_such_subscriptions_give_the_platform_69930_and_the_partner_29970_rupees() {
    let (gross, platform, partner) = totals(100);
    assert_eq!(gross, 9_990_000);
    assert_eq!(platform, 6_993_000);
    assert_eq!(partner, 2_997_000);
}

#[test]
fn a_thousand_such_subscriptions_gross_999000_rupees_split_699300_and_299700() {
    let (gross, platform, partner) = totals(1000);
    assert_eq!(gross, 99_900_000);
    assert_eq!(partner, 29_970_000);
    assert_eq!(platform, 69_930_000);
}

#[derive(Deserialize)]
struct PeriodVectors {
    cases: Vec<PeriodCase>,
}

#[derive(Deserialize)]
struct PeriodCase {
    anchor: DateTime<Utc>,
    periods: Vec<PeriodBounds>,
}

#[derive(Deserialize)]
struct PeriodBounds {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

#[test]
fn every_billing_period_vector_holds() {
    let vectors: PeriodVectors = serde_json::from_str(&vector("billing_periods.json")).unwrap();
    assert!(!vectors.cases.is_empty());
    for case in vectors.cases {
        for (k, want) in case.periods.iter().enumerate() {
            let k = u32::try_from(k).unwrap();
            let got = period(case.anchor, k).unwrap();
            assert_eq!(got.index, k);
            assert_eq!(
                (got.start, got.end),
                (want.start, want.end),
                "anchor {} period {k}",
                case.anchor
            );
        }
    }
}

#[test]
fn a_period_past_the_last_representable_date_is_none() {
    let anchor: DateTime<Utc> = "2026-01-31T10:00:00Z".parse().unwrap();
    assert!(period(anchor, u32::MAX).is_none());
}

proptest! {
    #[test]
    fn shares_always_sum_to_the_amount_and_stay_within_it(
        amount in 0i64..=i64::MAX,
        partner_bps in 0u32..=10_000,
    ) {
        let s = split(amount, bps(partner_bps));
        prop_assert_eq!(s.partner_share + s.platform_share, amount);
        prop_assert!((0..=amount).contains(&s.partner_share));
        prop_assert!((0..=amount).contains(&s.platform_share));
    }

    #[test]
    fn the_partner_share_is_the_exactly_rounded_product(
        amount in 0i64..=10_000_000_000,
        partner_bps in 0u32..=10_000,
    ) {
        // Checked against a second formulation: nearest integer to a×b/10000,
        // halves rounded up, via the remainder.
        let product = i128::from(amount) * i128::from(partner_bps);
        let (q, r) = (product / 10_000, product % 10_000);
        let want = if r >= 5_000 { q + 1 } else { q };
        prop_assert_eq!(i128::from(split(amount, bps(partner_bps)).partner_share), want);
    }

    #[test]
    fn consecutive_periods_touch_and_each_lasts_one_calendar_month(
        secs in 946_684_800i64..4_102_444_800,
        k in 0u32..600,
    ) {
        let anchor = DateTime::from_timestamp(secs, 0).unwrap();
        let this = period(anchor, k).unwrap();
        let next = period(anchor, k + 1).unwrap();
        prop_assert_eq!(this.end, next.start);
        prop_assert!(this.start < this.end);
        let days = (this.end - this.start).num_days();
        prop_assert!((28..=31).contains(&days), "{} days", days);
        prop_assert_eq!(this.start.time(), anchor.time());
    }
}
