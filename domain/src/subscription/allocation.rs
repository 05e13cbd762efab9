//! Broker allocations: which broker accounts trade a subscription, and how
//! much.

use serde::{Deserialize, Serialize};

use crate::decimal::DecimalInput;
use crate::error::{item, path, required, Collector, ValidationErrors, ValueError};
use crate::ids::AllocationId;
use crate::values::{BrokerId, ClientId, LotMultiplier};

/// A subscription has at most this many allocations.
pub const MAX_ALLOCATIONS: usize = 10;

/// The field the allocation list has in request bodies; error paths start with it.
pub const ALLOCATIONS_FIELD: &str = "broker_allocations";

/// The order in which allocations are used, 1 first; unique within a
/// subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Priority(u32);

impl Priority {
    /// Validates 1..=10 000.
    pub fn new(priority: i64) -> Result<Self, ValueError> {
        u32::try_from(priority)
            .ok()
            .filter(|p| (1..=10_000).contains(p))
            .map(Self)
            .ok_or_else(|| ValueError::new("must be between 1 and 10000"))
    }

    /// The priority.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Priority {
    type Error = ValueError;

    fn try_from(p: i64) -> Result<Self, Self::Error> {
        Self::new(p)
    }
}

impl From<Priority> for u32 {
    fn from(p: Priority) -> u32 {
        p.0
    }
}

/// The largest order an allocation places; bigger quantities are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct MaxLotsPerOrder(u32);

impl MaxLotsPerOrder {
    /// Validates 1..=10 000.
    pub fn new(lots: i64) -> Result<Self, ValueError> {
        u32::try_from(lots)
            .ok()
            .filter(|l| (1..=10_000).contains(l))
            .map(Self)
            .ok_or_else(|| ValueError::new("must be between 1 and 10000"))
    }

    /// The lots.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl Default for MaxLotsPerOrder {
    /// 50 lots (SPEC §3).
    fn default() -> Self {
        Self(50)
    }
}

impl TryFrom<i64> for MaxLotsPerOrder {
    type Error = ValueError;

    fn try_from(l: i64) -> Result<Self, Self::Error> {
        Self::new(l)
    }
}

impl From<MaxLotsPerOrder> for u32 {
    fn from(l: MaxLotsPerOrder) -> u32 {
        l.0
    }
}

/// One broker account that trades a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BrokerAllocation {
    /// Its id within the subscription.
    pub allocation_id: AllocationId,
    /// The broker.
    pub broker_id: BrokerId,
    /// The customer's account at the broker.
    pub client_id: ClientId,
    /// Multiplies every leg's lots (floored).
    pub lot_multiplier: LotMultiplier,
    /// Unique order of use, 1 first.
    pub priority: Priority,
    /// Orders are split to at most this many lots.
    pub max_lots_per_order: MaxLotsPerOrder,
}

/// An allocation as a request gives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(description = "A broker allocation of a subscription.")
)]
#[serde(deny_unknown_fields)]
pub struct AllocationInput {
    /// Kept when given (to replace a list without renaming what stays); a
    /// new id otherwise.
    #[cfg_attr(feature = "openapi", schema(format = Uuid, example = "0192f3a4-5b6c-7d8e-9f00-112233445566"))]
    pub allocation_id: Option<String>,
    /// 1–64 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, max_length = 64, example = "zebu"))]
    pub broker_id: Option<String>,
    /// The customer's account at the broker, 1–64 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, max_length = 64, example = "ZB1234"))]
    pub client_id: Option<String>,
    /// `0 < m ≤ 100`, at most two decimals; 1 when absent.
    pub lot_multiplier: Option<DecimalInput>,
    /// Unique within the list, at least 1; the allocation's position
    /// (1-based) when absent.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, example = 1))]
    pub priority: Option<i64>,
    /// 1–10 000; 50 when absent.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 10000, example = 50)
    )]
    pub max_lots_per_order: Option<i64>,
}

impl BrokerAllocation {
    /// Validates a request's allocation list (field `broker_allocations`);
    /// `new_id` names allocations that do not bring their own id.
    pub fn parse_list(
        inputs: &[AllocationInput],
        mut new_id: impl FnMut() -> AllocationId,
    ) -> Result<Vec<BrokerAllocation>, ValidationErrors> {
        let mut c = Collector::default();
        if inputs.len() > MAX_ALLOCATIONS {
            c.push(
                ALLOCATIONS_FIELD,
                format!("must have at most {MAX_ALLOCATIONS} allocations"),
            );
        }
        let parsed: Vec<Option<BrokerAllocation>> = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| parse_one(&mut c, i, input, &mut new_id))
            .collect();
        uniqueness(
            &mut c,
            parsed
                .iter()
                .enumerate()
                .filter_map(|(i, a)| a.as_ref().map(|a| (i, a))),
        );
        let parsed: Option<Vec<BrokerAllocation>> = parsed.into_iter().collect();
        match parsed {
            Some(list) => c.finish(list),
            None => Err(c.into_errors()),
        }
    }
}

fn parse_one(
    c: &mut Collector,
    index: usize,
    input: &AllocationInput,
    new_id: &mut impl FnMut() -> AllocationId,
) -> Option<BrokerAllocation> {
    let at = item("", ALLOCATIONS_FIELD, index);
    let allocation_id = c.check(
        path(&at, "allocation_id"),
        input
            .allocation_id
            .as_deref()
            .map_or_else(|| Ok(new_id()), AllocationId::parse),
    );
    let broker_id = c.check(
        path(&at, "broker_id"),
        required(input.broker_id.as_deref()).and_then(BrokerId::parse),
    );
    let client_id = c.check(
        path(&at, "client_id"),
        required(input.client_id.as_deref()).and_then(ClientId::parse),
    );
    let lot_multiplier = c.check(
        path(&at, "lot_multiplier"),
        input
            .lot_multiplier
            .as_ref()
            .map_or(Ok(LotMultiplier::ONE), LotMultiplier::parse),
    );
    let default_priority = i64::try_from(index + 1).unwrap_or(i64::MAX);
    let priority = c.check(
        path(&at, "priority"),
        Priority::new(input.priority.unwrap_or(default_priority)),
    );
    let max_lots_per_order = c.check(
        path(&at, "max_lots_per_order"),
        input
            .max_lots_per_order
            .map_or(Ok(MaxLotsPerOrder::default()), MaxLotsPerOrder::new),
    );
    Some(BrokerAllocation {
        allocation_id: allocation_id?,
        broker_id: broker_id?,
        client_id: client_id?,
        lot_multiplier: lot_multiplier?,
        priority: priority?,
        max_lots_per_order: max_lots_per_order?,
    })
}

/// Records duplicate priorities and ids, at the later of each pair.
fn uniqueness<'a>(c: &mut Collector, list: impl Iterator<Item = (usize, &'a BrokerAllocation)>) {
    let list: Vec<(usize, &BrokerAllocation)> = list.collect();
    for (n, (i, a)) in list.iter().enumerate() {
        let earlier = &list[..n];
        let at = item("", ALLOCATIONS_FIELD, *i);
        if earlier.iter().any(|(_, e)| e.priority == a.priority) {
            c.push(path(&at, "priority"), "duplicate priority");
        }
        if earlier
            .iter()
            .any(|(_, e)| e.allocation_id == a.allocation_id)
        {
            c.push(path(&at, "allocation_id"), "duplicate allocation id");
        }
    }
}

/// The list rules (count, unique priorities and ids) for allocations built
/// in code rather than parsed.
pub fn allocations_rule(list: &[BrokerAllocation]) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    if list.len() > MAX_ALLOCATIONS {
        c.push(
            ALLOCATIONS_FIELD,
            format!("must have at most {MAX_ALLOCATIONS} allocations"),
        );
    }
    uniqueness(&mut c, list.iter().enumerate());
    c.finish(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn ids() -> impl FnMut() -> AllocationId {
        let mut n = 0;
        move || {
            n += 1;
            AllocationId::from_uuid(Uuid::from_u128(n))
        }
    }

    fn input(client: &str) -> AllocationInput {
        AllocationInput {
            broker_id: Some("ZEBU".into()),
            client_id: Some(client.into()),
            ..AllocationInput::default()
        }
    }

    #[test]
    fn defaults_fill_multiplier_priority_and_order_size() {
        let list = BrokerAllocation::parse_list(&[input("C1"), input("C2")], ids()).unwrap();
        assert_eq!(list[0].lot_multiplier, LotMultiplier::ONE);
        assert_eq!(list[1].priority.get(), 2);
        assert_eq!(list[0].max_lots_per_order.get(), 50);
        assert_eq!(
            list[1].allocation_id,
            AllocationId::from_uuid(Uuid::from_u128(2))
        );
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_path() {
        let mut a = input("C1");
        a.priority = Some(1);
        let mut b = input("");
        b.priority = Some(1);
        b.lot_multiplier = Some("100.01".into());
        b.max_lots_per_order = Some(0);
        b.allocation_id = Some("nope".into());
        let err = BrokerAllocation::parse_list(&[a, b], ids()).unwrap_err();
        let fields: Vec<&str> = err.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "broker_allocations[1].allocation_id",
                "broker_allocations[1].client_id",
                "broker_allocations[1].lot_multiplier",
                "broker_allocations[1].max_lots_per_order",
            ]
        );
        let mut a = input("C1");
        a.priority = Some(3);
        let mut b = input("C2");
        b.priority = Some(3);
        let err = BrokerAllocation::parse_list(&[a, b], ids()).unwrap_err();
        assert_eq!(err.errors()[0].field, "broker_allocations[1].priority");
        assert_eq!(err.errors()[0].message, "duplicate priority");
    }

    #[test]
    fn at_most_ten_allocations() {
        let many: Vec<AllocationInput> = (0..11).map(|i| input(&format!("C{i}"))).collect();
        assert!(BrokerAllocation::parse_list(&many, ids())
            .unwrap_err()
            .has_field("broker_allocations"));
    }
}
