//! The hasher behind [`super::Ir::hash_of`]: the content hash xDS versions are made of
//! (docs/design.md#versions).
//!
//! Versions only need to be equal for equal content and, with overwhelming likelihood,
//! different for different content, within one process (every version is prefixed by the
//! boot id). They need no resistance to someone choosing colliding input: the input is the
//! configuration, whose author decides what Envoy is served anyway. So instead of SipHash
//! (std's `DefaultHasher`, which spent most of a snapshot's time at 50,000 clusters) this is a
//! plain 64-bit multiply-xorshift hash over 64-bit words:
//!
//! * every `write_*` call becomes whole words: an integer is one word; a byte slice is its
//!   length, then its bytes 8 at a time (the last word zero-padded). Given the `Hash`
//!   implementation (which decides what call comes next), the words determine the calls, so
//!   different values give different word sequences;
//! * each word is absorbed by `state = xorshift((state ^ word) * K)`, a bijection of the state
//!   for a given word: two sequences of the same length that differ in a single word (one
//!   changed number, or one changed 8-byte chunk of a string of the same length) always end in
//!   different states; for other differences a collision is as unlikely as for any well-mixed
//!   64-bit hash;
//! * `finish` mixes the state once more (SplitMix64's finalizer), itself a bijection.

use std::hash::{BuildHasherDefault, Hasher};

/// [`VersionHasher`] for the hash maps and sets that only check names for membership
/// (`Ir::validate`, the translation's duplicate check): much cheaper than SipHash on short
/// keys, and the keys come from the configuration, which is trusted (see the module docs).
pub(crate) type BuildVersionHasher = BuildHasherDefault<VersionHasher>;

/// An odd constant with well-spread bits (the 64-bit golden ratio), for the multiplications.
const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// See the module docs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VersionHasher {
    state: u64,
}

impl Default for VersionHasher {
    fn default() -> Self {
        VersionHasher {
            state: 0x243f_6a88_85a3_08d3,
        }
    }
}

impl VersionHasher {
    #[inline]
    fn word(&mut self, w: u64) {
        let x = (self.state ^ w).wrapping_mul(K);
        self.state = x ^ (x >> 29);
    }
}

impl Hasher for VersionHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.word(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.word(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.word(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.word(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.word(i);
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.word(i as u64);
        self.word((i >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.word(i as u64);
    }

    #[inline]
    fn write_i8(&mut self, i: i8) {
        self.write_u8(i as u8);
    }

    #[inline]
    fn write_i16(&mut self, i: i16) {
        self.write_u16(i as u16);
    }

    #[inline]
    fn write_i32(&mut self, i: i32) {
        self.write_u32(i as u32);
    }

    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }

    #[inline]
    fn write_i128(&mut self, i: i128) {
        self.write_u128(i as u128);
    }

    #[inline]
    fn write_isize(&mut self, i: isize) {
        self.write_usize(i as usize);
    }

    fn finish(&self) -> u64 {
        // SplitMix64's finalizer.
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::Ir;

    /// Values whose words differ only by a byte slice's length: zero padding of the last
    /// word, or where one string ends and the next begins.
    #[test]
    fn lengths_are_part_of_the_hash() {
        assert_ne!(Ir::hash_of("a"), Ir::hash_of("a\0"));
        assert_ne!(Ir::hash_of(&[1u8][..]), Ir::hash_of(&[1u8, 0][..]));
        assert_ne!(Ir::hash_of("abcdefgh"), Ir::hash_of("abcdefgh\0"));
        assert_ne!(Ir::hash_of(&("ab", "c")), Ir::hash_of(&("a", "bc")));
        assert_ne!(Ir::hash_of(&(1u8, 0u8)), Ir::hash_of(&(0u8, 1u8)));
        assert_ne!(
            Ir::hash_of(&(Some(0u32), 0u32)),
            Ir::hash_of(&(0u32, Some(0u32)))
        );
        assert_eq!(Ir::hash_of("same"), Ir::hash_of(&String::from("same")));
    }

    /// Cluster-name-like strings and small numbers, as a configuration has thousands of:
    /// no two hash alike.
    #[test]
    fn many_similar_values_hash_apart() {
        let mut seen = HashSet::new();
        for i in 0..50_000u32 {
            let name = format!("cluster_127_1_{}_{}_80_ns{}", i / 256, i % 256, i % 7);
            assert!(seen.insert(Ir::hash_of(&name)), "{name}");
            assert!(seen.insert(Ir::hash_of(&(i, 3000u64))), "{i}");
        }
    }
}
