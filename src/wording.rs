//! How counts read in messages for people: "1 pod", "2 pods", never
//! "1 pods". One function, so every count printed agrees in number.

/// `n` followed by the singular or the plural of a noun.
pub fn count(n: impl Into<i64>, singular: &str, plural: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("{n} {singular}")
    } else {
        format!("{n} {plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(count(1, "pod", "pods"), "1 pod");
        assert_eq!(count(0, "pod", "pods"), "0 pods");
        assert_eq!(count(2, "replica", "replicas"), "2 replicas");
        assert_eq!(count(-1, "pod", "pods"), "-1 pods");
    }
}
