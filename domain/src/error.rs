//! Errors of the domain: field-level validation errors collected in full,
//! and the closed set of reasons a decision is refused.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::SubscriptionId;

/// One violated rule of an input, addressed by its place in the request body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldError {
    /// Path of the offending value, e.g. `strategies[0].legs[2].lots`; empty
    /// (as in a JSON Pointer) when the rule concerns the body as a whole.
    pub field: String,
    /// What is wrong, short and lower-case, e.g. `must be between 1 and 1000`.
    pub message: String,
}

/// Every rule an input breaks, not just the first, so a client can fix a
/// request in one round trip.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// A single error at `field`.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// The errors, in the order the rules were checked.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// Whether no rule was broken.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some error names exactly this field.
    pub fn has_field(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid input")?;
        for (i, e) in self.0.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            if e.field.is_empty() {
                write!(f, "{sep}{}", e.message)?;
            } else {
                write!(f, "{sep}{}: {}", e.field, e.message)?;
            }
        }
        Ok(())
    }
}

/// Why a single value is invalid, before it is given its place in a body
/// (see [`ValueError::at`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    message: String,
}

impl ValueError {
    /// An error with a short lower-case message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Places the error at `field`.
    pub fn at(self, field: impl Into<String>) -> ValidationErrors {
        ValidationErrors::single(field, self.message)
    }
}

/// Why a decision was refused. Closed: the API layers map each variant to
/// exactly one HTTP status and one stable `code()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// 422 `validation_failed`: the command breaks input rules; all are listed.
    #[error("{0}")]
    Validation(#[from] ValidationErrors),
    /// 404 `not_found`: no such resource, or it is not the caller's — the two
    /// are deliberately indistinguishable so ids cannot be probed.
    #[error("{what} not found")]
    NotFound {
        /// The kind of resource, e.g. `basket`, `strategy`, `api key`.
        what: &'static str,
    },
    /// 403 `forbidden`: the caller is known but may not do this.
    #[error("not allowed")]
    Forbidden,
    /// 409 `already_exists`: the id (or unique key) is taken.
    #[error("{what} already exists")]
    AlreadyExists {
        /// The kind of resource, e.g. `basket`, `partner`, `api key`.
        what: &'static str,
    },
    /// 409 `already_subscribed`: the user already has a live subscription to
    /// the template; the existing one is named so a client can go to it.
    #[error("this person already has a live subscription to this template")]
    AlreadySubscribed {
        /// The live subscription that blocks the new one.
        subscription_id: SubscriptionId,
    },
    /// 409 `invalid_transition`: the status change is not allowed from the
    /// current status (e.g. pausing a cancelled subscription).
    #[error("cannot change status from {from} to {to}")]
    InvalidTransition {
        /// The current status, upper-case.
        from: &'static str,
        /// The status asked for, upper-case.
        to: &'static str,
    },
    /// 409 `template_not_available`: the template is disabled, so it takes no
    /// new subscriptions (existing ones keep running).
    #[error("template is not available for subscription")]
    TemplateNotAvailable,
    /// 409 `template_already_published`: the marketplace is already enabled
    /// for this basket; update it instead.
    #[error("template is already published")]
    TemplateAlreadyPublished,
    /// 409 `template_not_published`: the marketplace is not enabled for this
    /// basket.
    #[error("template is not published")]
    TemplateNotPublished,
    /// 409 `template_needs_strategy`: a published template must keep at
    /// least one strategy, and an empty basket cannot be published.
    #[error("a template needs at least one strategy")]
    TemplateNeedsStrategy,
    /// 409 `subscription_cancelled`: a cancelled subscription is final and
    /// cannot be changed any more.
    #[error("subscription is cancelled")]
    SubscriptionCancelled,
    /// 409 `api_key_revoked`: a revoked key is final.
    #[error("api key is revoked")]
    ApiKeyRevoked,
    /// 409 `reservation_released`: the request took so long that its
    /// reservation of (user, template) was released as abandoned, so its
    /// subscription is void; another request may have subscribed since.
    #[error(
        "this request took too long: its reservation of the template was released and no \
         subscription was made; look at the person's subscriptions before retrying"
    )]
    ReservationReleased,
}

impl DomainError {
    /// Stable snake_case code for the problem document; clients match on it.
    pub const fn code(&self) -> &'static str {
        match self {
            DomainError::Validation(_) => "validation_failed",
            DomainError::NotFound { .. } => "not_found",
            DomainError::Forbidden => "forbidden",
            DomainError::AlreadyExists { .. } => "already_exists",
            DomainError::AlreadySubscribed { .. } => "already_subscribed",
            DomainError::InvalidTransition { .. } => "invalid_transition",
            DomainError::TemplateNotAvailable => "template_not_available",
            DomainError::TemplateAlreadyPublished => "template_already_published",
            DomainError::TemplateNotPublished => "template_not_published",
            DomainError::TemplateNeedsStrategy => "template_needs_strategy",
            DomainError::SubscriptionCancelled => "subscription_cancelled",
            DomainError::ApiKeyRevoked => "api_key_revoked",
            DomainError::ReservationReleased => "reservation_released",
        }
    }

    /// A validation error for a single field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Validation(ValidationErrors::single(field, message))
    }
}

/// Collects the errors of a whole body while its parts are parsed, so every
/// violated rule is reported at once.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    errors: Vec<FieldError>,
}

impl Collector {
    /// Records a broken rule.
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Keeps the value, or records why it is invalid at `field`.
    pub(crate) fn check<T>(
        &mut self,
        field: impl Into<String>,
        result: Result<T, ValueError>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.push(field, e.message);
                None
            }
        }
    }

    /// Keeps the value, or records the errors of a part that placed them itself.
    pub(crate) fn nested<T>(&mut self, result: Result<T, ValidationErrors>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.errors.extend(e.0);
                None
            }
        }
    }

    /// The errors so far, for a body whose parts did not all parse.
    pub(crate) fn into_errors(self) -> ValidationErrors {
        ValidationErrors(self.errors)
    }

    /// `value` when no rule was broken, else every error.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ValidationErrors(self.errors))
        }
    }
}

/// `Some` or the `is required` error.
pub(crate) fn required<T>(value: Option<T>) -> Result<T, ValueError> {
    value.ok_or_else(|| ValueError::new("is required"))
}

/// `prefix.name`, or `name` at the top of a body.
pub(crate) fn path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// `prefix.name[index]`.
pub(crate) fn item(prefix: &str, name: &str, index: usize) -> String {
    format!("{}[{index}]", path(prefix, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_distinct_stable_code() {
        let sub = SubscriptionId::from_uuid(uuid::Uuid::nil());
        let all = [
            DomainError::Validation(ValidationErrors::default()),
            DomainError::NotFound { what: "basket" },
            DomainError::Forbidden,
            DomainError::AlreadyExists { what: "basket" },
            DomainError::AlreadySubscribed {
                subscription_id: sub,
            },
            DomainError::InvalidTransition {
                from: "CANCELLED",
                to: "PAUSED",
            },
            DomainError::TemplateNotAvailable,
            DomainError::TemplateAlreadyPublished,
            DomainError::TemplateNotPublished,
            DomainError::TemplateNeedsStrategy,
            DomainError::SubscriptionCancelled,
            DomainError::ApiKeyRevoked,
            DomainError::ReservationReleased,
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(DomainError::code).collect();
        assert_eq!(codes.len(), all.len());
        assert!(codes
            .iter()
            .all(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')));
    }

    #[test]
    fn validation_errors_display_every_field() {
        let errors = ValidationErrors(vec![
            FieldError {
                field: "name".into(),
                message: "is required".into(),
            },
            FieldError {
                field: String::new(),
                message: "at least one field must be given".into(),
            },
        ]);
        assert_eq!(
            errors.to_string(),
            "invalid input: name: is required; at least one field must be given"
        );
    }

    #[test]
    fn paths_nest_like_the_request_body() {
        let strategy = item("", "strategies", 0);
        let leg = item(&strategy, "legs", 2);
        assert_eq!(path(&leg, "lots"), "strategies[0].legs[2].lots");
    }
}
