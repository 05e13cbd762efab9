//! OpenAPI schemas (feature `openapi`): the enumerations, as strings whose
//! values are each type's `ALL` — the one description of each, used by
//! request and response bodies alike — and [`DecimalInput`]. The `…Input`
//! types derive theirs where they are declared.

use serde_json::json;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::basket::{
    DifficultyLevel, Expiry, LegAction, OptionType, PricingType, Product, TradingDay, Visibility,
};
use crate::decimal::DecimalInput;
use crate::partner::{ApiKeyStatus, PartnerType, Permission};
use crate::subscription::SubscriptionStatus;

/// The schema of a string enumeration: its values are the type's `ALL`,
/// spelled by its `as_str`.
macro_rules! enum_schema {
    ($name:ty, $description:literal) => {
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some($description))
                    .enum_values(Some(<$name>::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

enum_schema!(
    Product,
    "Product type: intraday (`MIS`) or carry-forward (`NRML`)."
);
enum_schema!(TradingDay, "An exchange trading day.");
enum_schema!(LegAction, "Whether the leg buys or sells.");
enum_schema!(OptionType, "Call (`CE`) or put (`PE`).");
enum_schema!(Expiry, "Which expiry the leg trades.");
enum_schema!(
    Visibility,
    "`PUBLIC` templates are listed in the marketplace; `PRIVATE` ones are subscribable by id only."
);
enum_schema!(PricingType, "Whether subscribers pay a monthly fee.");
enum_schema!(DifficultyLevel, "How demanding the template is.");
enum_schema!(
    SubscriptionStatus,
    "`ACTIVE ⇄ PAUSED`, either `→ CANCELLED` (final)."
);
enum_schema!(PartnerType, "What kind of business the partner is.");
enum_schema!(Permission, "What a partner's keys may do.");
enum_schema!(
    ApiKeyStatus,
    "Whether the key authenticates: `ACTIVE ⇄ SUSPENDED`, either `→ REVOKED` (final)."
);

impl PartialSchema for DecimalInput {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some(
                "A decimal as a JSON number (`2.5`) or its text (`\"2.5\"`); read from its \
                 text, never through floating point.",
            ))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .examples([json!(2.5)]),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^[+-]?[0-9]+(\.[0-9]+)?$"))
                    .examples([json!("2.5")]),
            )
            .into()
    }
}

impl ToSchema for DecimalInput {}
