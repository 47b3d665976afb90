//! Small statistics the deciders share: the median of a set of loads.

/// The median of the values that are present (`None` = no data, never 0); `None` when none is. NaN values are
/// ignored.
pub fn median(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let mut v: Vec<f64> = values
        .into_iter()
        .flatten()
        .filter(|x| !x.is_nan())
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// A percentage for people: one decimal ("29.9%"), or "-" when there is no value.
pub fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_present_values() {
        assert_eq!(median([Some(3.0), None, Some(1.0), Some(2.0)]), Some(2.0));
        assert_eq!(median([Some(4.0), Some(1.0)]), Some(2.5));
        assert_eq!(median([None, None]), None);
        assert_eq!(percent(Some(29.933429461548705)), "29.9%");
        assert_eq!(percent(None), "-");
    }
}
