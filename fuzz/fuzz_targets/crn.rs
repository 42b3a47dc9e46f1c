//! Fuzzes the CRN parser: any text either parses to a CRN that gives the
//! text back unchanged, or is refused with an error whose mark lies within
//! the value. Never a panic, never a hang.

#![no_main]

use kms_sts::values::crn;
use libfuzzer_sys::fuzz_target;

fn check(result: Result<crn::Crn, crn::CrnError>, text: &str) {
    match result {
        Ok(parsed) => {
            assert_eq!(parsed.as_str(), text);
            assert_eq!(parsed.to_string(), text);
            assert_eq!(crn::parse(parsed.as_str()), Ok(parsed.clone()));
        }
        Err(refused) => {
            let (start, len) = refused.span;
            assert!(
                start + len <= refused.value.chars().count() + 1,
                "mark {start}+{len} outside {:?}",
                refused.value
            );
            assert!(!refused.problem.is_empty());
            let _ = refused.to_string();
        }
    }
}

fuzz_target!(|text: &str| {
    check(crn::parse(text), text);
    check(crn::parse_kms_target(text), text);
});
