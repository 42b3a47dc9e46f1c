//! Fuzzes the wizard's answers-file parser: any text either loads to answers
//! that survive being written and read back unchanged, or is refused with an
//! error naming a field. Never a panic, never a hang.

#![no_main]

use kms_sts::error::Error;
use kms_sts::files::answers::Answers;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match Answers::from_yaml(text) {
        Ok(answers) => {
            let written = answers.to_yaml();
            assert_eq!(Answers::from_yaml(&written).ok(), Some(answers));
        }
        Err(Error::InvalidAnswers { field, reason }) => {
            assert!(!field.is_empty() && !reason.is_empty());
        }
        Err(other) => panic!("unexpected error kind: {other}"),
    }
});
