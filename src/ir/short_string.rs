//! [`ShortString`]: an immutable string kept inline when short. The rate-limit entries of
//! every labelled Mapping hold a few short strings (a descriptor key, a header name, a value);
//! as `String`s each was an allocation made while reading the labels and freed with the
//! translation, a measurable share of what labels cost at thousands of Mappings
//! (BENCHMARKS.md, "Inline strings in rate-limit entries").

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use serde::{Serialize, Serializer};

/// The longest string kept inline: the type is as large as a `String` (24 bytes).
const INLINE: usize = 22;

/// An immutable string: up to 22 bytes inline, longer ones on the heap. It compares, hashes,
/// prints and serializes as the `str` it holds, so swapping it for a `String` changes no output
/// and no version hash.
#[derive(Clone)]
pub struct ShortString(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl ShortString {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // SAFETY: `bytes[..len]` is only ever written by `From<&str>`, as a copy of a whole
            // `&str`, so it is UTF-8. (Checking it on every read took the gain away: routes hash
            // and encode these strings several times; BENCHMARKS.md, "Inline strings in
            // rate-limit entries".)
            Repr::Inline { len, bytes } => unsafe {
                std::str::from_utf8_unchecked(&bytes[..usize::from(*len)])
            },
            Repr::Heap(s) => s,
        }
    }
}

impl From<&str> for ShortString {
    fn from(s: &str) -> ShortString {
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..s.len()].copy_from_slice(s.as_bytes());
                ShortString(Repr::Inline { len, bytes })
            }
            _ => ShortString(Repr::Heap(s.into())),
        }
    }
}

impl From<String> for ShortString {
    fn from(s: String) -> ShortString {
        if s.len() <= INLINE {
            ShortString::from(s.as_str())
        } else {
            ShortString(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl Deref for ShortString {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for ShortString {
    fn eq(&self, other: &ShortString) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ShortString {}

impl PartialEq<str> for ShortString {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl Hash for ShortString {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for ShortString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ShortString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ShortString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::DefaultHasher;

    use super::*;

    fn hash_of<T: Hash + ?Sized>(v: &T) -> u64 {
        let mut h = DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    /// Short and long, ASCII and not, empty: each reads back, hashes, compares, prints and
    /// serializes exactly as the `String` it replaces (the route versions depend on the hash).
    #[test]
    fn behaves_as_the_string_it_holds() {
        let long = "x".repeat(INLINE + 1);
        for s in [
            "",
            "tenant",
            "x-tenant",
            "üñï-çødé",
            "exactly-22-bytes-long!",
            &long,
        ] {
            let short = ShortString::from(s);
            let owned = ShortString::from(s.to_string());
            assert_eq!(short.as_str(), s);
            assert_eq!(owned.as_str(), s);
            assert_eq!(short, owned);
            assert_eq!(short, *s);
            assert_eq!(hash_of(&short), hash_of(&s.to_string()), "{s:?}");
            assert_eq!(format!("{short:?}"), format!("{s:?}"));
            assert_eq!(short.to_string(), s);
            assert_eq!(
                serde_json::to_string(&short).expect("serializes"),
                serde_json::to_string(s).expect("serializes")
            );
        }
        assert_eq!("exactly-22-bytes-long!".len(), INLINE);
        assert!(matches!(
            ShortString::from("exactly-22-bytes-long!").0,
            Repr::Inline { .. }
        ));
        assert!(matches!(ShortString::from(long.as_str()).0, Repr::Heap(_)));
        assert_eq!(
            std::mem::size_of::<ShortString>(),
            std::mem::size_of::<String>()
        );
    }
}
