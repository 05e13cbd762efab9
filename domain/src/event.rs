//! What every aggregate shares: the [`Aggregate`] shape (decide/evolve), the
//! [`DomainEvent`] codec between event enums and stored `(event_type,
//! schema_version, data)`, and the upcasting chain that lets old events be
//! read forever without rewriting them (docs/reference/events.md#schema-versions).

use std::fmt::Debug;

use serde::Serialize;
use serde_json::Value;

use crate::error::DomainError;

/// An event-sourced aggregate: a pure decision function and a pure fold.
pub trait Aggregate {
    /// What the aggregate knows, folded from its events.
    type State: Default + Clone + PartialEq + Debug;
    /// What it can be asked to do.
    type Command;
    /// What it records.
    type Event: DomainEvent + Clone + PartialEq + Debug;

    /// Stream names are `{STREAM_PREFIX}-{id}`.
    const STREAM_PREFIX: &'static str;

    /// Decides what happens. Pure: no I/O, no clock, no randomness — the
    /// time and any new ids come in the command.
    fn decide(state: &Self::State, command: Self::Command)
        -> Result<Vec<Self::Event>, DomainError>;

    /// Applies one recorded event. Total: an event that does not fit the
    /// state (which a correct history never contains) leaves it unchanged.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// Folds a history from the empty state.
    fn replay<'a, I>(events: I) -> Self::State
    where
        I: IntoIterator<Item = &'a Self::Event>,
        Self::Event: 'a,
    {
        events
            .into_iter()
            .fold(Self::State::default(), Self::evolve)
    }

    /// Decides, then applies the new events: the new state and the events to
    /// append.
    fn execute(
        state: Self::State,
        command: Self::Command,
    ) -> Result<(Self::State, Vec<Self::Event>), DomainError> {
        let events = Self::decide(&state, command)?;
        let state = events.iter().fold(state, Self::evolve);
        Ok((state, events))
    }
}

/// Why stored event data could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No event of this aggregate has that type.
    #[error("unknown event type {event_type}")]
    UnknownEventType {
        /// The stored type.
        event_type: String,
    },
    /// Written by a newer build than this one.
    #[error("{event_type} schema version {version} is newer than the supported {current}")]
    UnsupportedVersion {
        /// The stored type.
        event_type: String,
        /// The stored version.
        version: u32,
        /// The newest version this build reads.
        current: u32,
    },
    /// An older version with no upcaster to the next one.
    #[error("no upcaster for {event_type} from schema version {from_version}")]
    MissingUpcaster {
        /// The stored type.
        event_type: String,
        /// The version no upcaster starts from.
        from_version: u32,
    },
    /// An upcaster refused the data.
    #[error("cannot upcast {event_type} from schema version {from_version}: {message}")]
    UpcastFailed {
        /// The stored type.
        event_type: String,
        /// The version being upcast.
        from_version: u32,
        /// The upcaster's reason.
        message: String,
    },
    /// The (upcast) data does not match the current schema.
    #[error("malformed {event_type} data: {message}")]
    Malformed {
        /// The stored type.
        event_type: String,
        /// What serde reported.
        message: String,
    },
}

/// Turns the data of `event_type` at `from_version` into `from_version + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    /// The event type it reads.
    pub event_type: &'static str,
    /// The version it reads; it writes the next one.
    pub from_version: u32,
    /// The mapping. An `Err` carries a short reason.
    pub apply: fn(Value) -> Result<Value, String>,
}

/// Runs the chain of upcasters from `from_version` up to `to_version`, one
/// version at a time, and returns the version reached with its data.
pub fn upcast(
    upcasters: &[Upcaster],
    event_type: &str,
    from_version: u32,
    to_version: u32,
    mut data: Value,
) -> Result<(u32, Value), DecodeError> {
    if from_version > to_version {
        return Err(DecodeError::UnsupportedVersion {
            event_type: event_type.to_owned(),
            version: from_version,
            current: to_version,
        });
    }
    let mut version = from_version;
    while version < to_version {
        let step = upcasters
            .iter()
            .find(|u| u.event_type == event_type && u.from_version == version)
            .ok_or_else(|| DecodeError::MissingUpcaster {
                event_type: event_type.to_owned(),
                from_version: version,
            })?;
        data = (step.apply)(data).map_err(|message| DecodeError::UpcastFailed {
            event_type: event_type.to_owned(),
            from_version: version,
            message,
        })?;
        version += 1;
    }
    Ok((version, data))
}

/// An aggregate's event enum, stored as `(event_type, schema_version, data)`.
///
/// Serializing the enum with serde gives the event's *data* only; the type
/// travels beside it, which is how the event store keeps it.
pub trait DomainEvent: Sized + Serialize {
    /// Every event type of the enum, as stored.
    const EVENT_TYPES: &'static [&'static str];

    /// PascalCase past tense, e.g. `SubscribedToTemplate`.
    fn event_type(&self) -> &'static str;

    /// The version of the data this build writes for the event's type.
    fn schema_version(&self) -> u32;

    /// The version this build writes for `event_type`, if the type is known.
    fn current_version(event_type: &str) -> Option<u32>;

    /// Reads data already at the current version.
    fn decode_current(event_type: &str, data: Value) -> Result<Self, DecodeError>;

    /// The production upcasters of this enum's events.
    fn upcasters() -> &'static [Upcaster];

    /// The event's data, as stored.
    fn to_data(&self) -> Value {
        serde_json::to_value(self)
            .expect("event data are plain structs with string keys, which always serialize")
    }

    /// Reads a stored event, upcasting older versions first.
    fn from_stored(
        event_type: &str,
        schema_version: u32,
        data: Value,
    ) -> Result<Self, DecodeError> {
        Self::from_stored_with(Self::upcasters(), event_type, schema_version, data)
    }

    /// [`DomainEvent::from_stored`] with an explicit upcaster chain.
    fn from_stored_with(
        upcasters: &[Upcaster],
        event_type: &str,
        schema_version: u32,
        data: Value,
    ) -> Result<Self, DecodeError> {
        let current =
            Self::current_version(event_type).ok_or_else(|| DecodeError::UnknownEventType {
                event_type: event_type.to_owned(),
            })?;
        let (_, data) = upcast(upcasters, event_type, schema_version, current, data)?;
        Self::decode_current(event_type, data)
    }
}

/// Declares an event enum whose variants wrap structs of the same name (the
/// name is the stored `event_type`), with its [`DomainEvent`] impl.
macro_rules! domain_events {
    (
        $(#[$meta:meta])*
        pub enum $name:ident (upcasters: $upcasters:expr) {
            $( $(#[$vmeta:meta])* $variant:ident = $version:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize)]
        #[serde(untagged)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($variant) ),+
        }

        impl $crate::event::DomainEvent for $name {
            const EVENT_TYPES: &'static [&'static str] = &[$(stringify!($variant)),+];

            fn event_type(&self) -> &'static str {
                match self {
                    $($name::$variant(_) => stringify!($variant)),+
                }
            }

            fn schema_version(&self) -> u32 {
                match self {
                    $($name::$variant(_) => $version),+
                }
            }

            fn current_version(event_type: &str) -> Option<u32> {
                match event_type {
                    $(stringify!($variant) => Some($version),)+
                    _ => None,
                }
            }

            fn decode_current(
                event_type: &str,
                data: serde_json::Value,
            ) -> Result<Self, $crate::event::DecodeError> {
                let malformed = |e: serde_json::Error| $crate::event::DecodeError::Malformed {
                    event_type: event_type.to_owned(),
                    message: e.to_string(),
                };
                match event_type {
                    $(stringify!($variant) => serde_json::from_value::<$variant>(data)
                        .map($name::$variant)
                        .map_err(malformed),)+
                    _ => Err($crate::event::DecodeError::UnknownEventType {
                        event_type: event_type.to_owned(),
                    }),
                }
            }

            fn upcasters() -> &'static [$crate::event::Upcaster] {
                $upcasters
            }
        }

        enum_from!($name { $($variant),+ });
    };
}
