//! Hints for structural errors: which form of an enum a mapping meant, and which known key a
//! misspelt one was probably meant to be.

use serde_json::Value;

use super::Found;

/// Each candidate's key when every one is a mapping of one required key (an externally tagged
/// enum), in candidate order.
pub(super) fn single_keys(candidates: &[(Vec<Found>, &Value)]) -> Option<Vec<String>> {
    let key = |branch: &Value| match (branch.get("required")?.as_array()?.as_slice(), branch) {
        ([only], b) if b.get("properties")?.as_object()?.len() == 1 => {
            only.as_str().map(str::to_owned)
        }
        _ => None,
    };
    (candidates.len() > 1)
        .then(|| candidates.iter().map(|(_, b)| key(b)).collect())
        .flatten()
}

/// The property every candidate object branch pins with a `const` (serde's `tag`).
pub(super) fn discriminator(candidates: &[(Vec<Found>, &Value)]) -> Option<String> {
    let first = candidates.first()?.1.get("properties")?.as_object()?;
    let tag = first
        .iter()
        .find(|(_, p)| p.get("const").is_some())
        .map(|(k, _)| k.clone())?;
    candidates
        .iter()
        .all(|(_, b)| b["properties"][tag.as_str()].get("const").is_some())
        .then_some(tag)
}

/// The known key closest to a misspelt one, if it is close enough to be a likely typo.
pub(super) fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}
