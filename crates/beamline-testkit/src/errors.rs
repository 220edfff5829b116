//! What an error reporter (anyhow, eyre, tracing's error fields) prints: an error and each
//! of its sources, one line each.

use std::error::Error;

/// The messages of `error` and of each of its sources, outermost first, as an error
/// reporter prints them.
pub fn error_chain(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut chain = Vec::new();
    let mut level = Some(error);
    while let Some(e) = level {
        chain.push(e.to_string());
        level = e.source();
    }
    chain
}

/// Asserts that walking `error`'s chain prints each cause once: no message is empty and
/// none contains the message of an error further down its chain (the mistake of a
/// `Display` that repeats its `source`). Returns the chain.
///
/// # Panics
/// When a message repeats a deeper one, or is empty, naming both.
pub fn assert_printed_once(error: &(dyn Error + 'static)) -> Vec<String> {
    let chain = error_chain(error);
    for (i, outer) in chain.iter().enumerate() {
        assert!(!outer.is_empty(), "level {i} of {chain:#?} prints nothing");
        for inner in &chain[i + 1..] {
            assert!(
                !outer.contains(inner.as_str()),
                "{outer:?} repeats its cause {inner:?}; the chain prints it twice: {chain:#?}"
            );
        }
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Wrap(&'static str, Option<std::io::Error>);

    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_ref().map(|e| e as _)
        }
    }

    #[test]
    fn a_chain_is_each_message_outermost_first() {
        let e = Wrap("outer", Some(std::io::Error::other("inner")));
        assert_eq!(assert_printed_once(&e), ["outer", "inner"]);
    }

    #[test]
    #[should_panic(expected = "repeats its cause")]
    fn a_message_that_repeats_its_source_is_caught() {
        assert_printed_once(&Wrap("outer: inner", Some(std::io::Error::other("inner"))));
    }
}
