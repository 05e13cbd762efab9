//! Given/when/then for deciders: `given(history).when(command).then(events)`
//! or `.then_err(error)`. `then` also proves that every new event survives
//! the store's codec, so no decision can emit an event that cannot be read
//! back.

use chrono::{DateTime, Utc};

use crate::error::DomainError;
use crate::event::{Aggregate, DomainEvent};

/// A state built from a history.
pub(crate) struct Given<A: Aggregate> {
    state: A::State,
}

/// Folds `events` into the state the command will see.
pub(crate) fn given_events<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let events: Vec<A::Event> = events.into_iter().collect();
    Given {
        state: A::replay(&events),
    }
}

impl<A: Aggregate> Given<A> {
    /// Decides `command` on the given state.
    pub(crate) fn when(self, command: A::Command) -> Then<A> {
        let result = A::decide(&self.state, command);
        Then {
            state: self.state,
            result,
        }
    }
}

/// The outcome of a decision, to be checked.
pub(crate) struct Then<A: Aggregate> {
    state: A::State,
    result: Result<Vec<A::Event>, DomainError>,
}

impl<A: Aggregate> Then<A> {
    /// Asserts the decision recorded exactly `expected`; returns the state after.
    #[track_caller]
    pub(crate) fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A::State {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        let (state, events) = self.outcome();
        assert_eq!(events, expected, "the decision recorded other events");
        events.iter().fold(state, A::evolve)
    }

    /// Asserts the decision was refused with `expected`.
    #[track_caller]
    pub(crate) fn then_err(self, expected: DomainError) {
        match self.result {
            Ok(events) => panic!("expected {expected:?}, but the decision recorded {events:#?}"),
            Err(e) => assert_eq!(e, expected),
        }
    }

    /// The events recorded, for checks of their own.
    #[track_caller]
    pub(crate) fn events(self) -> Vec<A::Event> {
        self.outcome().1
    }

    /// The state before and the events, after checking they round-trip.
    #[track_caller]
    fn outcome(self) -> (A::State, Vec<A::Event>) {
        let events = match self.result {
            Err(e) => panic!("expected events, but the decision was refused: {e:?}"),
            Ok(events) => events,
        };
        for event in &events {
            let back =
                A::Event::from_stored(event.event_type(), event.schema_version(), event.to_data())
                    .unwrap_or_else(|e| panic!("{} does not decode: {e}", event.event_type()));
            assert_eq!(
                &back,
                event,
                "{} changed through the codec",
                event.event_type()
            );
        }
        (self.state, events)
    }
}

/// Parses an RFC 3339 timestamp.
#[track_caller]
pub(crate) fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad timestamp {text}: {e}"))
        .with_timezone(&Utc)
}
