//! Property tests of user-code normalization. (The state machine's model test
//! is a unit test of the crate: it drives transitions that are not public.)

use device_grant::UserCodePolicy;
use proptest::prelude::*;

const SEPARATORS: &[&str] = &["", "-", " ", ".", "_", "\u{2014}", "\u{3000}", "\t"];

fn full_width(c: char) -> char {
    char::from_u32(c as u32 + 0xFEE0).unwrap()
}

proptest! {
    #[test]
    fn any_spelling_of_a_code_normalizes_to_it(
        picks in proptest::collection::vec(0usize..20, 8),
        seps in proptest::collection::vec(0usize..SEPARATORS.len(), 9),
        lower in proptest::collection::vec(any::<bool>(), 8),
        wide in proptest::collection::vec(any::<bool>(), 8),
    ) {
        let policy = UserCodePolicy::default();
        let alphabet: Vec<char> = UserCodePolicy::CONSONANTS.chars().collect();
        let canonical: String = picks.iter().map(|&i| alphabet[i]).collect();
        let mut typed = String::new();
        for (i, c) in canonical.chars().enumerate() {
            typed.push_str(SEPARATORS[seps[i]]);
            let c = if lower[i] { c.to_ascii_lowercase() } else { c };
            typed.push(if wide[i] { full_width(c) } else { c });
        }
        typed.push_str(SEPARATORS[seps[8]]);
        let code = policy.normalize(&typed).unwrap();
        prop_assert_eq!(code.canonical(), canonical.as_str());
        // The display form normalizes to the same code.
        prop_assert_eq!(policy.normalize(code.display()).unwrap(), code);
    }

    #[test]
    fn normalization_never_panics_and_accepts_only_codes(input in "\\PC{0,80}") {
        let policy = UserCodePolicy::default();
        if let Ok(code) = policy.normalize(&input) {
            prop_assert_eq!(code.canonical().len(), 8);
            prop_assert!(code.canonical().chars().all(|c| UserCodePolicy::CONSONANTS.contains(c)));
        }
        let numeric = UserCodePolicy::numeric();
        if let Ok(code) = numeric.normalize(&input) {
            prop_assert_eq!(code.canonical().len(), 9);
        }
    }
}
