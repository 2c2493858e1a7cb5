//! "Did you mean" suggestions for misspelt names.

/// The candidate closest to `word`: a case-insensitive match first, else the one
/// with the smallest edit distance if it is small enough to be a typo (at most 2,
/// and less than half the word so short names do not match everything).
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        if candidate.eq_ignore_ascii_case(word) {
            return Some(candidate);
        }
        let distance = levenshtein(word, candidate);
        let limit = 2.min(word.chars().count().max(1).div_ceil(2));
        if distance <= limit && !matches!(best, Some((d, _)) if d <= distance) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("", ""), 0);
        assert_eq!(levenshtein("abc", ""), 3);
        assert_eq!(levenshtein("paymnts", "payments"), 1);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        let names = ["payments", "web", "api-v1"];
        assert_eq!(closest("paymnts", names.iter().copied()), Some("payments"));
        assert_eq!(closest("WEB", names.iter().copied()), Some("web"));
        assert_eq!(closest("api-v2", names.iter().copied()), Some("api-v1"));
        assert_eq!(closest("db", names.iter().copied()), None);
        assert_eq!(closest("x", names.iter().copied()), None);
    }
}
