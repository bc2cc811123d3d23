//! The join token parser (`shoal swarm join --token`, and every join request
//! a manager receives): any text either parses or is refused with a short
//! message, and a token that parses prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_security::JoinToken;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match JoinToken::parse(text) {
        Ok(token) => {
            let again = JoinToken::parse(&token.to_string()).expect("a parsed token re-parses");
            assert_eq!(again, token);
            assert!(token.matches(&again));
        }
        // The message may be logged by a manager: it must not echo an
        // attacker's megabyte back (parts are cut to 20 characters).
        Err(e) => assert!(e.to_string().len() < 512, "error too long: {e}"),
    }
});
