//! Declarative helpers for the many small closed enums and validated strings
//! of the domain, so each one is declared once and spelled the same way on
//! the wire, in `Display` and in `parse`.

/// Declares a closed enumeration that travels as a fixed string (upper-case
/// for business enums, e.g. `ACTIVE`), with `ALL`, `as_str`, `parse`,
/// `Display` and `FromStr`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Reads the exact wire spelling; anything else names the allowed values.
            pub fn parse(text: &str) -> Result<Self, $crate::error::ValueError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::error::ValueError::new(format!(
                        "must be one of {}",
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::ValueError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }
    };
}

/// The boilerplate of a validated string newtype `struct $name(String)` that
/// already has `fn parse(&str) -> Result<Self, ValueError>`: serde goes
/// through `parse`, so a value read back from an event is as valid as one
/// read from a request.
macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::error::ValueError;

            fn try_from(text: String) -> Result<Self, Self::Error> {
                Self::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::ValueError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }
    };
}

/// `impl From<Inner> for Enum` for every newtype variant, so a command or an
/// event struct can be turned into its enum with `.into()`.
macro_rules! enum_from {
    ($enum:ident { $($variant:ident),+ $(,)? }) => {
        $(
            impl From<$variant> for $enum {
                fn from(inner: $variant) -> Self {
                    $enum::$variant(inner)
                }
            }
        )+
    };
}
